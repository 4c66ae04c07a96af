"""A domain error of each package reaches each edge in that edge's form; anything else is a 500.

Domain errors carry a code and no wire form (gateway.core.errors, pki.errors, adapters.errors);
the native API answers its code with the status of gateway.http.errors, the console with a page,
the CLI with one line and the exit status of gateway.cli.main.EXIT_STATUS (the e-CMS endpoint:
tests/ecms). A bug answers 500, logged and counted, never a 4xx.
"""

import ast
import uuid
from pathlib import Path

import pytest

from adapters.errors import AckRefused
from gateway.cli import main as cli
from gateway.core import appkeys as keys
from gateway.core.errors import Conflict, EnvelopeError, NotFound
from gateway.http.console.errors import page_for
from gateway.http.errors import known, status_for
from pki.errors import AgencyError, PdfError
from tests.integration.test_submit import auth
from tests.support import OPM

ROOT = Path(__file__).resolve().parents[2]


def raised_codes() -> set[str]:
    """Every literal code= given to a constructor in gateway/, pki/, adapters/, and every class default."""
    codes = set()
    for path in (p for d in ("gateway", "pki", "adapters") for p in (ROOT / d).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "code" and isinstance(node.value, ast.Constant):
                codes.add(node.value.value)
            if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["code"] \
                    and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                codes.add(node.value.value)
    return {c for c in codes if isinstance(c, str) and not c.startswith("ECMS-")}


def test_every_code_raised_anywhere_has_an_api_status_that_is_not_a_server_error_unless_it_is_ours():
    codes = raised_codes()
    assert len(codes) > 80
    assert sorted(c for c in codes if not known(c)) == []
    ours = {"unavailable", "unavailable.database", "internal", "config.invalid", "key.unavailable", "pki.config", "pdf.font_missing", "ecms.not_supported"}
    assert sorted(c for c in codes if status_for(c) >= 500 and c not in ours) == []


@pytest.mark.parametrize("exc,status", [
    (EnvelopeError("bad", code="envelope.unknown_recipient"), 422),
    (NotFound("none", code="message.not_found"), 404),
    (Conflict("again", code="message.id_reused"), 409),
    (PdfError("broken pdf"), 422),
    (AgencyError("not yours"), 403),
    (AckRefused("bad ack"), 422),
])
async def test_each_package_s_domain_error_reaches_the_api_with_its_code_and_a_4xx(make_client, exc, status):
    client = await make_client()

    async def refuse(*_a, **_kw):
        raise exc

    client.app[keys.EXCHANGE].status.message_status = refuse
    r = await client.get("/v1/messages/m-1", headers=auth(OPM))
    body = await r.json()
    assert (r.status, body["code"], body["message"]) == (status, exc.code, exc.message)
    assert r.headers["X-Request-Id"] == body["request_id"]


async def test_a_bug_answers_500_is_logged_and_counted_never_a_4xx(make_client):
    client = await make_client()

    async def bug(*_a, **_kw):
        raise KeyError("a bug")

    client.app[keys.EXCHANGE].status.message_status = bug
    r = await client.get("/v1/messages/m-1", headers=auth(OPM))
    assert r.status == 500 and (await r.json())["code"] == "internal"
    metrics = (await (await client.get("/metrics")).text())
    assert 'gateway_unhandled_errors_total{edge="api"} 1.0' in metrics


def test_the_console_table_gives_every_family_a_page():
    for code in raised_codes():
        status, thai, english = page_for(code)
        assert 400 <= status < 600 and thai and english


@pytest.mark.parametrize("argv,code,status", [
    (["receipt", "verify", "{bad}", "--cert", "{cert}"], "envelope.not_xml", 65),
    (["deliveries", "requeue", str(uuid.uuid4()), "--database-url", "{db}"], "delivery.not_requeueable", 65),
])
def test_the_cli_prints_one_line_and_a_documented_exit_status(argv, code, status, tmp_path, capsys, dev_pki,
                                                               database_url):
    bad = tmp_path / "receipt.xml"
    bad.write_bytes(b"not xml at all")
    cert = next(dev_pki.directory.rglob("*.pem"))
    argv = [a.format(bad=bad, cert=cert, db=database_url) for a in argv]
    assert cli.main(argv) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"gateway: {code}: ")


def test_the_cli_exit_statuses():
    assert [cli.exit_status(c) for c in ("message.not_found", "unavailable.database", "auth.forbidden",
                                         "config.invalid", "envelope.schema_invalid", "signature.invalid")] \
        == [66, 69, 77, 78, 65, 65]
