"""Verifying an evidence bundle at any date, offline: ``gateway audit verify BUNDLE --cert C --at D``.

``--at`` is the verifier's "now". After :func:`gateway.audit.verify.check_bundle` has checked the
chain proofs (so the letter's events are the ones the gateway signed), each validation report the
signed events name is checked:

1. **Integrity.** The report's bytes have the SHA-256 the signed event names; every item it names
   (certificates, OCSP answers, CRLs, the trust snapshot and its certificates) is in the bundle with
   that SHA-256. A missing or changed item is a ``validation`` problem naming the file.
2. **Proven signing time.** The earliest time-stamp over the signature: an RFC 3161 token on a
   checkpoint that covers the event (its genTime), or a time an evidence record proves (the
   ``er_verifier`` hook, see below); without either, the event's time in the gateway's signed chain
   (the report says which it used).
3. **The signature, judged at that time from the bundle alone.** ``received.xml`` goes through the
   same verification as at intake (:func:`pki.verify.validate_author`) with a
   :class:`pki.ltv_verify.PastTrust`: the trust snapshot's anchors, the kept certificates, OCSP answers
   and CRLs, every one with a proof of existence at the signing time, nothing fetched; pyHanko's past
   validation slides the control time back over expiries and later revocations. Any failing fact is a
   ``validation`` problem with its code (``certificate.revocation_unknown`` when an OCSP answer was
   removed, ``signature.invalid`` when a byte changed ...).

**Evidence records (RFC 4998).** ``manifest.json`` lists ``evidence-records/*``; when the caller passes
``er_verifier`` (the evidence-record module's ``verify_evidence_record``), it is called once per listed
record as ``er_verifier(name, data, files)`` with every file of the bundle, and returns
(problems, proven) where ``proven`` maps a SHA-256 (hex) of a covered object to the time the record
proves it existed; the earliest such time over ``received.xml`` becomes a candidate signing time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cryptography import x509

from gateway.audit.ltv_bundle import KINDS, names_of
from gateway.audit.tsa import check_token
from gateway.audit.verify import Problem, Report, check_bundle, parse_export
from gateway.core import xml
from gateway.core.envelope_reader import read_attachments
from gateway.core.errors import GatewayError
from pki.errors import CertificateError, PkiError
from pki.ltv import REPORT_FORMAT, canonical, sha256_hex
from pki.ltv_pdf import past_validate_pdf
from pki.ltv_verify import PastTrust
from pki.receipts import verify_signed_ack
from pki.trust import AgencyBinding
from pki.verify import validate_author
from pki.xmlsig_parts import parse_for_verify

#: ``er_verifier(name, data, files) -> (problems, proven)``: see the module docstring.
ErVerifier = Callable[[str, bytes, Mapping[str, bytes]], Awaitable[tuple[list[str], Mapping[str, dt.datetime]]]]


def _find(files: Mapping[str, bytes], sha: str) -> tuple[str, bytes] | None:
    for name, data in files.items():
        if name.startswith(f"validation/{sha}."):
            return name, data
    return None


async def check_bundle_at(data: bytes, cert: x509.Certificate, *, at: dt.datetime,
                          er_verifier: ErVerifier | None = None) -> Report:
    """:func:`check_bundle` and the long-term validation checks of the module docstring at ``at``."""
    rep = check_bundle(data, cert)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        files = {n: z.read(n) for n in z.namelist()}
    events, checkpoints = [], []
    for name in sorted(n for n in files if n.startswith("chain-") and n.endswith(".jsonl")):
        parsed = parse_export(name, files[name])
        events += [e.content for e in parsed.entries if e.content is not None]
        checkpoints += parsed.checkpoints
    refs = [e for e in events if e.get("kind") in KINDS
            and isinstance((e.get("details") or {}).get("validation_sha256"), str)]
    if not refs:
        rep.problems.append(Problem(None, "validation", "the signed chain names no validation report for this "
                                    "letter: nothing shows the author's signature was valid when accepted"))
        return rep
    received = files.get("received.xml")
    sender = next((e["actor"] for e in events if e.get("kind") == "message.accepted"), None)
    proven = await _proven_times(rep, files, checkpoints, received, er_verifier)
    for event in refs:
        await _check_report(rep, files, event, received, sender, proven, at)
    return rep


async def _proven_times(rep: Report, files: Mapping[str, bytes], checkpoints: list[dict[str, Any]],
                        received: bytes | None, er_verifier: ErVerifier | None) -> list[tuple[int, dt.datetime, str]]:
    """(covers events up to seq, time, what proves it) from checkpoint time-stamps and evidence records."""
    out = []
    for cp in checkpoints:
        if cp.get("tsa_token"):
            token = await check_token(bytes(cp["tsa_token"]), bytes(cp["signature"]))
            if token.ok and token.gen_time is not None:
                out.append((int(cp["seq"]), token.gen_time, f"RFC 3161 time-stamp on checkpoint {cp['seq']} "
                                                            f"({token.tsa})"))
    manifest = json.loads(files.get("manifest.json", b"{}"))
    records = manifest.get("evidence_records", [])
    if records and er_verifier is None:
        rep.notes.append(f"{len(records)} evidence record(s) present but no evidence-record verifier is wired")
    if er_verifier is not None and received is not None:
        digest = hashlib.sha256(received).hexdigest()
        for name in records:
            if name not in files:
                rep.problems.append(Problem(None, "validation", f"{name} is listed in manifest.json but missing"))
                continue
            problems, times = await er_verifier(name, files[name], files)
            rep.problems += [Problem(None, "validation", f"{name}: {p}") for p in problems]
            if digest in times:
                out.append((1 << 62, times[digest], f"evidence record {name}"))
    return out


async def _check_report(rep: Report, files: Mapping[str, bytes], event: dict[str, Any], received: bytes | None,
                        sender: str | None, proven: list[tuple[int, dt.datetime, str]], at: dt.datetime) -> None:
    seq, sha = event["seq"], event["details"]["validation_sha256"]
    found = _find(files, sha)
    if found is None:
        rep.problems.append(Problem(seq, "validation", f"validation report {sha[:16]}… named by the signed event "
                                    "is missing from the bundle"))
        return
    if sha256_hex(found[1]) != sha:
        rep.problems.append(Problem(seq, "validation", f"{found[0]} does not have the SHA-256 the signed event names"))
        return
    report = json.loads(found[1])
    if report.get("format") != REPORT_FORMAT:
        rep.problems.append(Problem(seq, "validation", f"{found[0]}: not a {REPORT_FORMAT} report"))
        return
    items: dict[str, tuple[str, bytes]] = {}
    for name_sha in sorted(names_of(report)):
        got = _find(files, name_sha)
        if got is None or sha256_hex(got[1]) != name_sha:
            what = "missing" if got is None else f"changed ({got[0]} does not have its SHA-256)"
            rep.problems.append(Problem(seq, "validation", f"item {name_sha[:16]}… named by report {sha[:16]}… is "
                                        f"{what}"))
            return
        items[name_sha] = (got[0], got[1])
    snapshot = json.loads(items[report["trust_snapshot"]][1])
    for c in (*snapshot.get("anchors", []), *snapshot.get("intermediates", [])):
        got = _find(files, c)
        if got is None or sha256_hex(got[1]) != c:
            rep.problems.append(Problem(seq, "validation", f"trust snapshot certificate {c[:16]}… is missing or "
                                        "changed"))
            return
        items[c] = got
    if report.get("bottom_line") == "pending" and event["kind"] == "message.accepted":
        rep.notes.append(f"seq {seq}: accepted into validation-pending (revocation not yet established)")
        return
    stamps = [(t, what) for covers, t, what in proven if covers >= seq]
    signing_time, basis = min(stamps) if stamps else (
        dt.datetime.fromisoformat(event["at"]), "the event's time in the gateway's signed audit chain (no "
        "time-stamp covers it)")
    anchors = [x509.load_der_x509_certificate(items[c][1]) for c in snapshot.get("anchors", [])]
    certs = [x509.load_der_x509_certificate(d) for k, (n, d) in items.items() if n.endswith(".cert.der")]
    ocsps = [d for n, d in items.values() if n.endswith(".ocsp.der")]
    crls = [d for n, d in items.values() if n.endswith(".crl.der")]
    roles = {sig.get("role") for sig in report.get("signatures", [])}
    directory = {} if "ack" in roles else _bound_directory(rep, files, event, sender)
    if directory is None:
        return
    pins = (directory.get("entry") or {}).get("certificates") or []
    trust = PastTrust(anchors, certs=certs, ocsps=ocsps, crls=crls, poe_time=signing_time,
                      signing_time=signing_time, at=at,
                      binding=AgencyBinding.from_directory({sender: pins}) if pins and sender else None)
    whose: str | None = None
    if "ack" in roles:
        whose = await _judge_ack(rep, files, event, trust, signing_time, at)
    elif roles & {"author", "signer"}:
        whose = await _judge_author(rep, received, sender, seq, trust, signing_time, at)
    if "pdf" in roles and "ack" not in roles:
        await _judge_pdf(rep, files, received, seq, sender, trust, signing_time, at)
    if whose is None:
        return
    verdict = next(iter(trust.verdicts.values()), None)
    until = verdict.control_time if verdict is not None else None
    relied = ", ".join(f"{n}" for n, _ in sorted(items.values()) if not n.endswith(".cert.der"))
    rep.notes.append(f"{whose} valid at {signing_time.isoformat()}, proven by "
                     f"{basis}; path good until {until.isoformat() if until else '?'}; judged "
                     f"at {at.date().isoformat()} from the bundle only; relied on trust snapshot "
                     f"v{report.get('trust_version')} and {relied}")
    if directory and "ack" not in roles:
        rep.notes.append(f"sender {sender} in directory version {directory.get('version')}: "
                         f"{(directory.get('entry') or {}).get('name_th', '?')}")


def _bound_directory(rep: Report, files: Mapping[str, bytes], event: dict[str, Any],
                     sender: str | None) -> dict[str, Any] | None:
    """``directory.json`` when the signed event binds it (or names no entry digest: an older letter, noted);
    None with a problem added when it is missing, unreadable, of another agency or version, or edited."""
    seq, details = event["seq"], event.get("details") or {}
    bound = details.get("directory_entry_sha256")
    raw = files.get("directory.json")
    if not isinstance(bound, str):
        if raw is not None:
            rep.notes.append(f"seq {seq}: directory.json is not bound by the signed chain (the event names no "
                             "entry digest); it is shown, not relied on")
        return {}
    if raw is None:
        rep.problems.append(Problem(seq, "validation", "directory.json is missing: the signed event binds the "
                                    f"sender's directory entry {bound[:16]}… of version "
                                    f"{details.get('directory_version')}"))
        return None
    try:
        doc = json.loads(raw)
        entry = doc["entry"]
        digest = sha256_hex(canonical(entry))
    except (ValueError, KeyError, TypeError) as exc:
        rep.problems.append(Problem(seq, "validation", f"directory.json cannot be read: {exc}"))
        return None
    if doc.get("version") != details.get("directory_version") or doc.get("code") != sender:
        rep.problems.append(Problem(seq, "validation", f"directory.json is agency {doc.get('code')} version "
                                    f"{doc.get('version')}, the signed event names {sender} version "
                                    f"{details.get('directory_version')}"))
        return None
    if digest != bound:
        rep.problems.append(Problem(seq, "validation", f"directory.json: the sender's entry has SHA-256 "
                                    f"{digest[:16]}…, the signed event names {bound[:16]}… (edited after "
                                    "acceptance)"))
        return None
    rep.notes.append(f"seq {seq}: directory.json bound by the signed chain (entry SHA-256 {bound[:16]}…)")
    return dict(doc)


async def _judge_pdf(rep: Report, files: Mapping[str, bytes], received: bytes | None, seq: int, sender: str | None,
                     trust: PastTrust, signing_time: dt.datetime, at: dt.datetime) -> None:
    """The main PDF's PAdES signatures at ``signing_time`` (:func:`pki.ltv_pdf.past_validate_pdf`: pyHanko's
    AdES past-signature validation from the bundle's material only), and each signer's agency."""
    try:
        root = xml.parse(received or b"")
        main = next((a for a in read_attachments(root) if a.role == "main" and a.mime_type == "application/pdf"),
                    None)
    except (GatewayError, PkiError) as exc:
        rep.problems.append(Problem(seq, "validation", f"the main PDF cannot be read from received.xml: {exc.code}: "
                                    f"{exc.message}"))
        return
    content = files.get(f"parts/{main.id}") if main is not None and main.external else (main and main.content)
    if not content:
        rep.problems.append(Problem(seq, "validation", "the report names the main PDF's signature, but the bundle "
                                    "holds no main PDF"))
        return
    try:
        verdicts = await past_validate_pdf(content, anchors=trust.anchors, certs=trust.kept_certs,
                                           ocsps=trust.kept_ocsps, crls=trust.kept_crls, signing_time=signing_time,
                                           at=at)
    except PkiError as exc:
        rep.problems.append(Problem(seq, "validation", f"the main PDF: {exc.code}: {exc.message}"))
        return
    if not verdicts:
        rep.problems.append(Problem(seq, "validation", "the report names the main PDF's signature, but the PDF in "
                                    "the bundle carries none"))
    for v in verdicts:
        who = v.signer.subject.rfc4514_string() if v.signer is not None else "no certificate"
        if not v.ok:
            rep.problems.append(Problem(seq, "validation", f"the main PDF's signature {v.field_name} ({who}) does not "
                                        f"hold at {signing_time.isoformat()} (verifier's now {at.date().isoformat()}): "
                                        f"{v.indication}: {v.detail}"))
            continue
        try:
            if v.signer is None or sender is None:
                raise CertificateError("the signature names no signer certificate", code="certificate.invalid")
            trust.check_agency(v.signer, sender)
        except PkiError as exc:
            rep.problems.append(Problem(seq, "validation", f"the main PDF's signature {v.field_name}: {exc.code}: "
                                        f"{exc.message}"))
            continue
        rep.notes.append(f"main PDF signature {v.field_name} ({who}) valid at {signing_time.isoformat()}: "
                         f"{v.indication} by pyHanko's AdES past-signature validation, judged at "
                         f"{at.date().isoformat()} from the bundle only")


async def _judge_author(rep: Report, received: bytes | None, sender: str | None, seq: int, trust: PastTrust,
                        signing_time: dt.datetime, at: dt.datetime) -> str | None:
    """The author's signature over ``received.xml`` at ``signing_time``: who signed, or None (a problem added)."""
    if received is None or sender is None:
        rep.problems.append(Problem(seq, "validation", "received.xml or its accepted event is missing"))
        return None
    try:
        result, _ = await validate_author(received, parse_for_verify(received), trust, sender=sender,
                                          allow_sha1=False, require_signature=True)
    except PkiError as exc:
        rep.problems.append(Problem(seq, "validation", f"received.xml cannot be read: {exc.code}: {exc.message}"))
        return None
    if not result.ok:
        failure = result.failure
        rep.problems.append(Problem(seq, "validation", f"the author's signature does not hold at "
                                    f"{signing_time.isoformat()} (verifier's now {at.date().isoformat()}): "
                                    f"{failure.code if failure else 'invalid'}: {failure.message if failure else ''}"))
        return None
    return f"author's signature ({result.signer_subject})"


async def _judge_ack(rep: Report, files: Mapping[str, bytes], event: dict[str, Any], trust: PastTrust,
                     signing_time: dt.datetime, at: dt.datetime) -> str | None:
    """The office's signed acknowledgement of the event's delivery, among ``receipts/*-ack.xml``."""
    seq, delivery_id = event["seq"], event.get("delivery_id")
    recipient = (event.get("details") or {}).get("recipient") or event.get("actor")
    failures = []
    for name in sorted(n for n in files if n.startswith("receipts/") and n.endswith("-ack.xml")):
        try:
            verified = await verify_signed_ack(files[name], trust, agency=str(recipient))
        except PkiError as exc:
            failures.append(f"{name}: {exc.code}: {exc.message}")
            continue
        if verified.delivery_id == delivery_id:
            return f"{name} (signed by {verified.signer.subject.rfc4514_string()})"
    rep.problems.append(Problem(seq, "validation", f"no signed acknowledgement of delivery {delivery_id} holds at "
                                f"{signing_time.isoformat()} (verifier's now {at.date().isoformat()}): "
                                + ("; ".join(failures) or "none in the bundle")))
    return None
