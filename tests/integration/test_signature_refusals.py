"""Every author-signature refusal through POST /v1/messages on the real app: its own stable code, a 4xx,
and nothing stored (no message, no delivery, no audit event).

The same cases are unit-tested in tests/pki; here they go through the API as an agency sends them, with
certificates minted by the development CA, a CRL served over HTTP and the local OCSP responder.
"""

import base64
import copy
import datetime as dt
import sys
from pathlib import Path

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod

from gateway.core.clock import FakeClock
from gateway.core.xml import DSIG_NS, ENVELOPE_NS
from pki.certfactory import CertFactory, agency_name
from pki.keys import FileSigner
from pki.sign import _sign_envelope, sign_envelope
from tests.support import CMI, KKN, OPM, letter_bytes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pki"))
from ocsp_responder import OcspResponder  # noqa: E402

E, DS = "{%s}" % ENVELOPE_NS, "{%s}" % DSIG_NS


from tests.integration.test_submit import auth, counts  # noqa: E402 - one definition of "nothing stored"


@pytest.fixture
def clock():
    """The machine's time, moved only by the test: this module mints its certificates from the machine's
    clock, and the trust store judges at the app's (gateway.core.signing.build_trust)."""
    return FakeClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


def edit(data: bytes, change) -> bytes:
    root = etree.fromstring(data)
    change(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def flip_attachment_byte(root):
    content = root.find(f"{E}Attachments/{E}Attachment/{E}Content")
    data = bytearray(base64.b64decode(content.text))
    data[3] ^= 0xFF
    content.text = base64.b64encode(bytes(data)).decode()


def wrap_letter(root):
    """Move the signed Letter into a ds:Object of the signature and put a forged one in its place."""
    original = root.find(E + "Letter")
    fake = copy.deepcopy(original)
    fake.find(E + "Subject").text = "โอนเงินด่วน"
    original.addprevious(fake)
    etree.SubElement(root.find(f"{E}Signatures/{DS}Signature"), DS + "Object").append(original)


class CrlServer:
    """Serves one CRL (DER) over HTTP on loopback: the CRL distribution point of minted certificates."""

    def __init__(self) -> None:
        self.crl = b""
        self.requests = 0
        self.url = ""
        self._runner = None

    async def _get(self, request):
        self.requests += 1
        return web.Response(body=self.crl, content_type="application/pkix-crl")

    async def start(self):
        app = web.Application()
        app.router.add_get("/issuing.crl", self._get)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/issuing.crl"

    async def stop(self):
        await self._runner.cleanup()


@pytest.fixture
async def revocation_servers(dev_pki):
    crl, responder = CrlServer(), OcspResponder(dev_pki.issuing_factory())
    await crl.start()
    await responder.start()
    yield crl, responder
    await crl.stop()
    await responder.stop()


def signer_of(issued, dev_pki) -> FileSigner:
    return FileSigner(issued.key, issued.cert, [dev_pki.intermediate_cert])


def sign(data: bytes, signer: FileSigner) -> bytes:
    return sign_envelope(data, signer)


# case -> (revocation policy, expected code, expected status)
CASES = {
    "tampered_letter": ("soft-fail", "signature.invalid", 422),
    "tampered_attachment": ("soft-fail", "attachment.digest_mismatch", 422),
    # the signed Letter moved into a ds:Object: an env:Letter is nothing a signature may carry (pki.sigzone),
    # refused before any reference is resolved (tests/pki keeps the reference check's own wrapping verdict)
    "signature_wrapping": ("soft-fail", "signature.structure", 422),
    "wrong_agency": ("soft-fail", "certificate.wrong_agency", 403),
    "expired": ("soft-fail", "certificate.expired", 422),
    "revoked_by_crl": ("hard-fail", "certificate.revoked", 422),
    "revoked_by_ocsp": ("hard-fail", "certificate.revoked", 422),
    "sha1": ("soft-fail", "signature.algorithm", 422),
    "unknown_ca": ("soft-fail", "certificate.untrusted", 422),
    "key_usage": ("soft-fail", "certificate.key_usage", 422),
}


def make_letter(case: str, dev_pki, servers) -> bytes:
    data = letter_bytes(sender=OPM, recipients=(CMI,), message_id=f"refused-{case}")
    own = dev_pki.agency_signer(OPM)
    factory = dev_pki.issuing_factory()
    name = agency_name(OPM, "สำนักนายกรัฐมนตรี")
    now = dt.datetime.now(dt.UTC)
    if case == "tampered_letter":
        return edit(sign(data, own), lambda r: setattr(r.find(f"{E}Letter/{E}Subject"), "text", "เรื่องที่ถูกแก้ไข"))
    if case == "tampered_attachment":
        return edit(sign(data, own), flip_attachment_byte)
    if case == "signature_wrapping":
        return edit(_sign_envelope(data, own, xades=False), wrap_letter)
    if case == "wrong_agency":
        return sign(data, dev_pki.agency_signer(KKN))
    if case == "expired":
        issued = factory.issue(name, profile="document-signing", not_before=now - dt.timedelta(days=30),
                               not_after=now - dt.timedelta(days=1))
        return sign(data, signer_of(issued, dev_pki))
    if case == "revoked_by_crl":
        crl_server, _ = servers
        issuing = dev_pki.issuing_factory(crl_url=crl_server.url)
        revoked = issuing.issue(name, profile="document-signing")
        crl_server.crl = issuing.crl([revoked.cert]).public_bytes(serialization.Encoding.DER)
        return sign(data, signer_of(revoked, dev_pki))
    if case == "revoked_by_ocsp":
        _, responder = servers
        revoked = dev_pki.issuing_factory(ocsp_url=responder.url).issue(name, profile="document-signing")
        responder.register(revoked.cert, revoked=True)
        return sign(data, signer_of(revoked, dev_pki))
    if case == "sha1":
        return _sign_envelope(data, own, xades=False, signature_method=SignatureMethod.ECDSA_SHA1,
                                      digest_algorithm=DigestAlgorithm.SHA1)
    if case == "unknown_ca":
        rogue = CertFactory.new_root("Rogue Root").intermediate("Rogue Issuing CA")
        issued = rogue.issue(name, profile="document-signing")  # the right agency code, the wrong CA
        return sign(data, FileSigner(issued.key, issued.cert, [rogue.ca.cert]))
    if case == "key_usage":
        return sign(data, signer_of(factory.issue(name, profile="tls-client"), dev_pki))
    raise AssertionError(case)


@pytest.mark.parametrize("case", list(CASES))
async def test_refused_through_the_api_with_its_code_and_nothing_stored(case, make_client, pool, dev_pki,
                                                                       revocation_servers):
    revocation, code, status = CASES[case]
    # the CRL server and the OCSP responder run on loopback, a host the development CAs do not name
    client = await make_client(require_signature=True, seal=True, revocation=revocation, fetch_allow="127.0.0.1")
    data = make_letter(case, dev_pki, revocation_servers)
    r = await client.post("/v1/messages", data=data, headers=auth())
    body = await r.json()
    assert (r.status, body["code"]) == (status, code), body
    assert await counts(pool) == {"messages": 0, "deliveries": 0, "receipts": 0, "audit_events": 0}
    # the attempt itself is evidence: who tried, with which code, and the digest of what was refused
    assert [r["details"]["code"] for r in await pool.fetch(
        "SELECT details FROM audit_events WHERE kind = 'message.rejected'")] == [code]
    crl_server, responder = revocation_servers
    if case == "revoked_by_crl":
        assert crl_server.requests >= 1, "the gateway fetched the CRL named in the certificate"
    if case == "revoked_by_ocsp":
        assert responder.requests >= 1, "the gateway asked the OCSP responder"


async def test_the_same_letter_correctly_signed_is_accepted(make_client, pool, dev_pki):
    """The control: what the refusals above change is what makes them fail."""
    client = await make_client(require_signature=True, seal=True, revocation="soft-fail")
    data = sign(letter_bytes(sender=OPM, recipients=(CMI,), message_id="accepted"), dev_pki.agency_signer(OPM))
    r = await client.post("/v1/messages", data=data, headers=auth())
    assert r.status == 202, await r.text()
    assert (await counts(pool))["messages"] == 1
