"""Trust configuration: CRL files from GATEWAY_CRL_FILES, every GATEWAY_TRUST_ANCHORS file for TLS clients."""

import datetime as dt
import ssl

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization

from gateway.core.clock import FakeClock
from gateway.core.directory import Directory
from gateway.core.errors import ConfigError
from gateway.core.settings import Settings
from gateway.core.signing import build_trust, server_ssl_context
from pki.certfactory import CertFactory, agency_name
from pki.keys import FileSigner
from pki.sign import sign_envelope
from tests.support import CMI, OPM, TOKENS, directory_dict, free_port, letter_bytes

# A CRL distribution point nobody answers: only the configured file can say the certificate is revoked.


@pytest.fixture
def clock():
    """The machine's time, moved only by the test: this module mints its certificates from the machine's
    clock, and the trust store judges at the app's (gateway.core.signing.build_trust)."""
    return FakeClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


UNREACHABLE_CRL = "http://127.0.0.1:9/issuing.crl"


def auth(agency=OPM):
    return {"Authorization": f"Bearer {TOKENS[agency]}", "Content-Type": "application/xml"}


@pytest.fixture(scope="module")
def revoked_signer(dev_pki, tmp_path_factory):
    """An OPM signer revoked by the development intermediate's CRL, and that CRL as PEM and DER files."""
    issuing = dev_pki.issuing_factory(crl_url=UNREACHABLE_CRL)
    issued = issuing.issue(agency_name(OPM, "สำนักนายกรัฐมนตรี"), profile="document-signing")
    crl = issuing.crl([issued.cert])
    d = tmp_path_factory.mktemp("crls")
    (d / "issuing.crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    (d / "issuing.crl").write_bytes(crl.public_bytes(serialization.Encoding.DER))
    return FileSigner(issued.key, issued.cert, [dev_pki.intermediate_cert]), d


@pytest.mark.parametrize("crl_file, code", [
    (None, "certificate.revocation_unknown"),  # the control: hard-fail cannot reach the URL
    ("issuing.crl.pem", "certificate.revoked"),
    ("issuing.crl", "certificate.revoked"),  # DER works as well
])
async def test_crl_files_setting_reaches_the_trust_store(crl_file, code, revoked_signer, make_client, pool):
    signer, d = revoked_signer
    kw = {"crl_files": str(d / crl_file)} if crl_file else {}
    # hard-fail needs a host to fetch from (the development CAs name none): the CRL's own, which never answers;
    # no validation-pending time, so that the unreachable control is refused at once (tests/ltv holds it instead)
    client = await make_client(require_signature=True, seal=True, revocation="hard-fail",
                               fetch_allow="127.0.0.1:9", validation_pending_hours=0, **kw)
    data = sign_envelope(letter_bytes(sender=OPM, recipients=(CMI,)), signer)
    r = await client.post("/v1/messages", data=data, headers=auth())
    assert r.status == 422 and (await r.json())["code"] == code
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0


async def test_hard_fail_with_crl_files_and_no_host_to_fetch_from_starts_and_judges_by_the_files(
        revoked_signer, make_client, pool):
    """An installation whose CAs publish CRLs it copies in (no OCSP, no reachable CRL host): hard-fail
    with GATEWAY_CRL_FILES and GATEWAY_FETCH_ALLOW=none starts, and the file decides."""
    signer, d = revoked_signer
    client = await make_client(require_signature=True, seal=True, revocation="hard-fail", fetch_allow="none",
                               crl_files=str(d / "issuing.crl.pem"))
    r = await client.post("/v1/messages", data=sign_envelope(letter_bytes(sender=OPM, recipients=(CMI,)), signer),
                          headers=auth())
    assert r.status == 422 and (await r.json())["code"] == "certificate.revoked"


def test_crl_files_are_read_from_the_environment_and_checked_at_start_up(revoked_signer, dev_pki, workdir):
    _, d = revoked_signer
    directory = Directory.from_dict(directory_dict())
    env = {"GATEWAY_CRL_FILES": f"{d / 'issuing.crl.pem'}, {d / 'issuing.crl'}",
           "GATEWAY_PKI_DIR": str(dev_pki.directory), "GATEWAY_DATA_DIR": str(workdir)}
    trust = build_trust(Settings.from_env(env), directory)
    assert len(trust.store._crls) == 2
    bad = d / "not-a-crl.pem"
    bad.write_bytes(b"-----BEGIN X509 CRL-----\nnot base64\n-----END X509 CRL-----\n")
    with pytest.raises(ConfigError) as info:
        build_trust(Settings.from_env({**env, "GATEWAY_CRL_FILES": str(bad)}), directory)
    assert info.value.field == "GATEWAY_CRL_FILES" and str(bad) in info.value.message


async def test_every_trust_anchor_file_verifies_tls_client_certificates(dev_pki, workdir):
    """Two anchor files: a client certificate issued under the second one passes the mutual TLS handshake."""
    second = CertFactory.new_root("Second Agency Root").intermediate("Second Agency Issuing CA")
    client = second.issue(agency_name(CMI, "เชียงใหม่"), profile="tls-client")
    (workdir / "second-root.pem").write_bytes(second.root.ca.cert_pem)
    (workdir / "second-intermediate.pem").write_bytes(second.ca.cert_pem)
    client.write(workdir / "client.pem", workdir / "client.key", [second.ca.cert])
    settings = Settings(
        data_dir=workdir, seal=False, client_certs="required", tls_cert=dev_pki.tls_server_cert,
        tls_key=dev_pki.tls_server_key,
        trust_anchors=f"{dev_pki.anchors},{workdir / 'second-root.pem'}",
        trust_intermediates=f"{dev_pki.intermediates},{workdir / 'second-intermediate.pem'}")
    trust = build_trust(settings, Directory.from_dict(directory_dict()))
    assert len(trust.store.anchors) == 2 and len(trust.anchors_pem) == 2

    async def whoami(request):
        peer = request.transport.get_extra_info("peercert")
        return web.json_response({"subject": peer["subject"] if peer else None})

    app = web.Application()
    app.router.add_get("/whoami", whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_ssl_context(settings, trust)).start()
    try:
        ctx = ssl.create_default_context(cafile=str(dev_pki.anchors))
        ctx.load_cert_chain(str(workdir / "client.pem"), str(workdir / "client.key"))
        async with aiohttp.ClientSession() as session:
            async with session.get(f"https://127.0.0.1:{port}/whoami", ssl=ctx) as resp:
                assert resp.status == 200
                assert f"GOVTH-{CMI}" in str((await resp.json())["subject"]), "the server saw the client's leaf"
            # a client certificate from a CA in no anchor file is refused in the handshake
            rogue = CertFactory.new_root("Rogue Root").intermediate("Rogue CA").issue(
                agency_name(CMI, "x"), profile="tls-client")
            rogue.write(workdir / "rogue.pem", workdir / "rogue.key")
            bad = ssl.create_default_context(cafile=str(dev_pki.anchors))
            bad.load_cert_chain(str(workdir / "rogue.pem"), str(workdir / "rogue.key"))
            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"https://127.0.0.1:{port}/whoami", ssl=bad) as resp:
                    await resp.read()
    finally:
        await runner.cleanup()
