"""gateway envelope check: the offline checker integrators run before sending."""

import base64
import dataclasses
import json
import subprocess
import sys

from gateway.core.envelope_builder import build_envelope
from gateway.intake.offline import check_envelope
from tests.support import letter, letter_bytes


def test_a_valid_letter_reads_with_its_fields():
    report = check_envelope(letter_bytes(subject="ขอเชิญประชุม"))
    assert report.ok
    assert report.summary["subject"] == "ขอเชิญประชุม" and report.summary["date_thai"].endswith("2569")
    assert report.summary["attachments"][0]["mime_type"] == "application/pdf"


def test_a_letter_to_distribution_lists_reads_with_them():
    env = letter(recipients=())
    only_lists = dataclasses.replace(env, header=dataclasses.replace(env.header, recipient_lists=("provincial-halls",)))
    report = check_envelope(build_envelope(only_lists))
    assert report.ok and report.summary["recipients"] == []
    assert report.summary["recipient_lists"] == ["provincial-halls"]
    both = dataclasses.replace(only_lists, header=dataclasses.replace(only_lists.header, recipients=("1550100000",)))
    assert check_envelope(build_envelope(both)).summary["recipients"] == ["1550100000"]
    # neither agencies nor lists: refused by the schema; nor a list name with capitals
    assert not check_envelope(build_envelope(env)).ok
    bad = dataclasses.replace(env, header=dataclasses.replace(env.header, recipient_lists=("Halls",)))
    assert check_envelope(build_envelope(bad)).findings[0].code == "envelope.schema_invalid"


def test_schema_faults_name_the_position_and_what_was_expected():
    bad = letter_bytes().replace(b"<Subject>", b"<Subjekt>").replace(b"</Subject>", b"</Subjekt>")
    (f,) = check_envelope(bad).findings
    assert f.code == "envelope.schema_invalid" and f.field == "/Envelope/Letter"
    assert "Subjekt" in f.reason and "Subject" in f.reason and "expected" in f.reason


def test_parse_and_attachment_faults_have_the_gateways_codes():
    assert check_envelope(b"<!DOCTYPE x []><x/>").findings[0].code == "envelope.dtd_forbidden"
    assert check_envelope(letter_bytes().replace(b"encoding='UTF-8'", b"encoding='ISO-8859-1'")
                          ).findings[0].code == "envelope.encoding_unsupported"
    data = letter_bytes(pdf=b"%PDF-1.4 original")
    tampered = data.replace(base64.b64encode(b"%PDF-1.4 original"), base64.b64encode(b"%PDF-1.4 originaX"))
    assert tampered != data  # same size, other bytes
    assert check_envelope(tampered).findings[0].code == "attachment.digest_mismatch"


def _check(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "gateway.cli.main", "envelope", "check", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _done(proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_the_command_exits_1_on_a_fault_and_prints_json(tmp_path):
    bad, good = tmp_path / "bad.xml", tmp_path / "good.xml"
    bad.write_bytes(letter_bytes().replace(b"<Subject>", b"<Subjekt>").replace(b"</Subject>", b"</Subjekt>"))
    good.write_bytes(letter_bytes())
    # both processes at once: each is mostly the interpreter's start
    faulty, valid = _check("--json", str(bad)), _check(str(good))
    run, ok = _done(faulty), _done(valid)
    assert run.returncode == 1, run.stderr
    assert json.loads(run.stdout)["findings"][0]["field"] == "/Envelope/Letter"
    run = ok
    assert run.returncode == 0 and "envelope valid" in run.stdout and "เรื่อง" in run.stdout, run.stderr
    # speed and secrecy as a clerk reads them, the code beside
    assert "ชั้นความเร็ว ด่วน (urgent)" in run.stdout and "ชั้นความลับ ปกติ (normal)" in run.stdout, run.stdout
