"""The conformance runner in each admission mode, as README says a real client's operator runs it: against
the example directory's e-CMS agencies 11008 (A) and 11002 (B), no token, only the URL and the transport
changing: their client certificates or URL keys on the main TLS listener, their source networks on the legacy plain-HTTP
listener (the letter marked ลับ refused there), their URL keys on the legacy TLS listener with TLS 1.0.
"""

from __future__ import annotations

import pytest

from conformance.ecms.runner import run
from pki.certfactory import agency_name
from tests.ecms.admission_world import keyed, start_world

pytestmark = pytest.mark.timeout(240)
A, B = "11008", "11002"


@pytest.fixture
async def world(database_url, workdir, dev_pki):
    w, runner = await start_world(database_url, workdir, dev_pki)
    yield w
    await runner.cleanup()


def _tally(out: str) -> tuple[str, list[str]]:
    lines = out.strip().splitlines()
    return lines[-1], [line for line in lines if line.startswith("FAIL")]


async def test_runner_with_url_keys_on_the_main_listener(world, capsys):
    key_a, key_b = await world.issue_key(A), await world.issue_key(B)
    assert await run(keyed(world.main_url, key_a), None, cafile=str(world.anchors),
                     url_b=keyed(world.main_url, key_b)) == 0
    last, failures = _tally(capsys.readouterr().out)
    assert failures == [] and last.endswith(" 0 failed"), failures
    assert int(last.split()[0]) > 100  # the vectors and both conversations ran


async def test_runner_on_the_legacy_plain_http_listener_by_source_network(world, capsys):
    await world.set_networks(A, "127.0.0.1/32")
    await world.set_networks(B, "127.0.0.3/32")
    assert await run(world.legacy_http, None, source="127.0.0.1", source_b="127.0.0.3", legacy_http=True) == 0
    out = capsys.readouterr().out
    last, failures = _tally(out)
    assert failures == [] and last.endswith(" 0 failed"), failures
    assert "ลับ" in out and out.count("\nskip ") >= 4  # the letter marked ลับ/ลับมาก refused, its pulls left out


async def test_runner_with_url_keys_on_the_legacy_tls_listener_over_tls_1_0(world, capsys):
    key_a, key_b = await world.issue_key(A), await world.issue_key(B)
    assert await run(keyed(world.legacy_https, key_a), None, cafile=str(world.anchors),
                     url_b=keyed(world.legacy_https, key_b), tls10=True) == 0
    last, failures = _tally(capsys.readouterr().out)
    assert failures == [] and last.endswith(" 0 failed"), failures


async def test_runner_with_client_certificates_on_the_main_listener(world, workdir, dev_pki, capsys):
    factory = dev_pki.issuing_factory()
    certs = []
    for code in (A, B):
        issued = factory.issue(agency_name(code, f"Agency {code}"), profile="tls-client")
        pem, key = workdir / f"client-{code}.pem", workdir / f"client-{code}.key"
        issued.write(pem, key, [dev_pki.intermediate_cert])
        certs.append((str(pem), str(key)))
    assert await run(world.main_url, None, cafile=str(world.anchors), cert=certs[0], cert_b=certs[1]) == 0
    last, failures = _tally(capsys.readouterr().out)
    assert failures == [] and last.endswith(" 0 failed"), failures
