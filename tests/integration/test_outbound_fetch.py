"""Outbound fetches through the real app (issue 13, class 5): a letter cannot steer the gateway anywhere.

An untrusted signer's AIA used to make the gateway fetch any URL before refusing with 422, and a
server that never answered held the submission ~5 s. Here, through POST /v1/messages: no connection
for an untrusted chain and a fast refusal; a trusted chain's OCSP URL on a host not allowed is not
fetched and the revocation policy decides (soft-fail: accepted, ``revocation: unknown`` on the
letter); a silent responder on an allowed host costs at most the 2 s budget; hard-fail with nothing
to fetch from refuses to start. Fetches and refusals show in ``gateway_pki_fetches_total``.

Servers are real, on loopback, started and stopped by the test by handle (tests/pki/fetch_servers.py).
"""

import datetime as dt
import json
import re
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.core.clock import FakeClock
from gateway.core.directory import Directory
from gateway.core.errors import ConfigError
from gateway.core.settings import Settings
from gateway.core.signing import build_trust
from pki.certfactory import CertFactory, Issued, agency_name, simple_name
from pki.fetch import FetchPolicy
from pki.keys import FileSigner
from pki.sign import sign_envelope
from tests.support import CMI, OPM, TOKENS, directory_dict, letter_bytes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pki"))
from fetch_servers import Trap, mint  # noqa: E402


@pytest.fixture
def clock():
    """The machine's time, moved only by the test: this module mints its certificates from the machine's
    clock, and the trust store judges at the app's (gateway.core.signing.build_trust)."""
    return FakeClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


NAME = agency_name(OPM, "สำนักนายกรัฐมนตรี")


def auth():
    return {"Authorization": f"Bearer {TOKENS[OPM]}", "Content-Type": "application/xml"}


@pytest.fixture
async def trap():
    t = await Trap().start()
    yield t
    await t.stop()


async def fetch_metrics(client) -> dict[tuple[str, str], float]:
    text = await (await client.get("/metrics")).text()
    return {(k, o): float(v) for k, o, v in
            re.findall(r'gateway_pki_fetches_total\{kind="(\w+)",outcome="(\w+)"\} ([0-9.]+)', text)}


async def accepted_facts(pool) -> dict:
    details = await pool.fetchval("SELECT details FROM audit_events WHERE kind = 'message.accepted'")
    return json.loads(details) if isinstance(details, str) else details


def rogue_letter(trap: Trap, message_id: str) -> bytes:
    """Signed for OPM by a CA nobody configured; every URL in the chain points at the trap."""
    root = CertFactory.new_root("Rogue Root")
    inter = mint(root, simple_name("Rogue Issuing CA"), profile="ca", ca_issuers=[trap.url("/root.cer")])
    leaf = mint(CertFactory(Issued(inter.cert, inter.key)), NAME, ca_issuers=[trap.url("/issuer.cer")],
                ocsp=[trap.url("/ocsp")], crl=[trap.url("/leaf.crl")])
    data = letter_bytes(sender=OPM, recipients=(CMI,), message_id=message_id)
    return sign_envelope(data, FileSigner(leaf.key, leaf.cert, [inter.cert]))


def trusted_letter(dev_pki, message_id: str, **urls) -> bytes:
    issued = mint(dev_pki.issuing_factory(), NAME, **urls)
    data = letter_bytes(sender=OPM, recipients=(CMI,), message_id=message_id)
    return sign_envelope(data, FileSigner(issued.key, issued.cert, [dev_pki.intermediate_cert]))


@pytest.mark.parametrize("revocation", ["soft-fail", "hard-fail"])
async def test_an_untrusted_signer_makes_no_connection_and_is_refused_at_once(make_client, pool, trap,
                                                                             revocation):
    # the trap's host is even allowed: what matters is that nobody vouches for the chain
    client = await make_client(require_signature=True, seal=True, revocation=revocation, fetch_allow="127.0.0.1")
    elapsed = []
    for n in range(3):  # three letters, each with a fresh rogue chain
        t0 = time.monotonic()
        r = await client.post("/v1/messages", data=rogue_letter(trap, f"rogue-{n}"), headers=auth())
        elapsed.append(time.monotonic() - t0)
        assert (r.status, (await r.json())["code"]) == (422, "certificate.untrusted")
    assert trap.connections == 0 and trap.received == b""
    # refused at once: no letter waited for anything. A fetch from the trap, which never answers, costs every
    # letter at least the fetch timeout; so would any other wait before the refusal. The fastest of three, not
    # each (a fixed bound on each letter, 0.5 s, failed when other work held the machine's two cores).
    assert min(elapsed) < FetchPolicy().timeout, elapsed
    counted = await fetch_metrics(client)
    assert counted[("issuer", "refused_untrusted")] >= 2
    assert counted[("ocsp", "refused_untrusted")] >= 2 and counted[("crl", "refused_untrusted")] >= 2
    assert not any(o in ("ok", "error", "timeout") for _, o in counted)


async def test_an_ocsp_host_not_allowed_is_not_asked_and_soft_fail_records_it(make_client, pool, trap, dev_pki):
    client = await make_client(require_signature=True, seal=True, revocation="soft-fail")  # default allow-list
    elapsed = []
    for n in range(2):
        t0 = time.monotonic()
        r = await client.post("/v1/messages", headers=auth(),
                              data=trusted_letter(dev_pki, f"soft-unknown-{n}", ocsp=[trap.url("/ocsp")]))
        elapsed.append(time.monotonic() - t0)
        assert r.status == 202, await r.text()
    assert min(elapsed) < FetchPolicy().timeout, elapsed  # as above: asking the trap costs at least the timeout
    assert trap.connections == 0
    rows = await pool.fetch("SELECT details FROM audit_events WHERE kind = 'message.accepted'")
    assert [(json.loads(d) if isinstance(d, str) else d)["revocation"] for (d,) in rows] == ["unknown", "unknown"]
    assert (await fetch_metrics(client))[("ocsp", "refused_host")] == 2


async def test_an_ocsp_host_not_allowed_under_hard_fail_is_revocation_unknown(make_client, pool, trap, dev_pki):
    client = await make_client(require_signature=True, seal=True, revocation="hard-fail",
                               fetch_allow="ocsp.ca.example")
    r = await client.post("/v1/messages", data=trusted_letter(dev_pki, "hard-unknown", ocsp=[trap.url("/ocsp")]),
                          headers=auth())
    assert (r.status, (await r.json())["code"]) == (422, "certificate.revocation_unknown")
    assert trap.connections == 0
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0


async def test_a_silent_responder_on_an_allowed_host_costs_at_most_the_budget(make_client, pool, dev_pki):
    traps = [await Trap().start() for _ in range(2)]
    try:
        client = await make_client(require_signature=True, seal=True, revocation="soft-fail",
                                   fetch_allow="127.0.0.1")
        data = trusted_letter(dev_pki, "slow-ocsp", ocsp=[t.url("/ocsp") for t in traps], crl=[traps[0].url("/c")])
        t0 = time.monotonic()
        r = await client.post("/v1/messages", data=data, headers=auth())
        elapsed = time.monotonic() - t0
        assert r.status == 202, await r.text()
        assert elapsed < 2.7, elapsed  # 2 s of fetching, plus the rest of the submission
        assert traps[0].connections >= 1, "the allowed responder was asked"
        assert (await accepted_facts(pool))["revocation"] == "unknown"
        assert (await fetch_metrics(client))[("ocsp", "timeout")] >= 1
    finally:
        for t in traps:
            await t.stop()


async def test_a_trusted_letter_says_its_revocation_was_checked(make_client, pool, dev_pki):
    client = await make_client(require_signature=True, seal=True, revocation="soft-fail")
    r = await client.post("/v1/messages", data=trusted_letter(dev_pki, "plain"), headers=auth())
    assert r.status == 202, await r.text()
    assert (await accepted_facts(pool))["revocation"] == "ok"


def test_hard_fail_without_any_host_to_fetch_from_refuses_to_start(dev_pki, workdir):
    directory = Directory.from_dict(directory_dict())
    env = {"GATEWAY_PKI_DIR": str(dev_pki.directory), "GATEWAY_DATA_DIR": str(workdir),
           "GATEWAY_REVOCATION": "hard-fail"}
    # the development CAs name no OCSP or CRL host, so the derived allow-list is empty
    for extra in ({}, {"GATEWAY_FETCH_ALLOW": "none"}):
        with pytest.raises(ConfigError) as info:
            build_trust(Settings.from_env({**env, **extra}), directory)
        assert info.value.field == "GATEWAY_FETCH_ALLOW"
        assert "hard-fail" in info.value.message and "GATEWAY_FETCH_ALLOW" in info.value.message
    trust = build_trust(Settings.from_env({**env, "GATEWAY_FETCH_ALLOW": "ocsp.ca.example, crl.ca.example:8080"}),
                        directory)
    assert trust.store.fetch_policy.allow == {"ocsp.ca.example", "crl.ca.example:8080"}
    assert build_trust(Settings.from_env({**env, "GATEWAY_REVOCATION": "soft-fail"}), directory).store.fetch_policy \
        .allow == frozenset()
    with pytest.raises(ConfigError) as info:
        build_trust(Settings.from_env({**env, "GATEWAY_FETCH_ALLOW": "http://ocsp.ca.example/"}), directory)
    assert info.value.field == "GATEWAY_FETCH_ALLOW"


def test_the_default_allow_list_is_what_the_configured_cas_name(workdir):
    root = CertFactory.new_root("Listed Root")
    inter = mint(root, simple_name("Listed Issuing CA"), profile="ca", ocsp=["http://ocsp.ca.example/"],
                 crl=["http://crl.ca.example:8080/root.crl"], ca_issuers=["http://pki.ca.example/root.cer"])
    (workdir / "listed-root.pem").write_bytes(root.ca.cert_pem)
    (workdir / "listed-inter.pem").write_bytes(inter.cert.public_bytes(Encoding.PEM))
    settings = Settings(data_dir=workdir, seal=False, revocation="hard-fail",
                        trust_anchors=str(workdir / "listed-root.pem"),
                        trust_intermediates=str(workdir / "listed-inter.pem"))
    trust = build_trust(settings, Directory.from_dict(directory_dict()))
    assert trust.store.fetch_policy.allow == {"ocsp.ca.example", "crl.ca.example:8080", "pki.ca.example"}
