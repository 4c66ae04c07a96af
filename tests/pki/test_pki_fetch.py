"""Outbound fetches of the trust store (issue 13, class 5): nobody but the configuration steers them.

* A chain that does not end in a configured anchor causes no fetch at all (no AIA chasing for
  unknown issuers, no OCSP or CRL for a certificate nobody vouches for), and is refused at once.
* Fetches go over http(s) only, to hosts on the allow-list (by default the hosts named in the
  anchors' and intermediates' own AIA and CRL distribution point fields), without redirects.
* One fetch may take 1 s, one validation 2 s of fetching; then revocation is unknown and the
  policy decides (soft-fail: accepted, noted; hard-fail: ``certificate.revocation_unknown``).
* Every fetch and every refusal to fetch is reported to ``on_fetch(kind, outcome)`` (metrics).

Every server here is real, on loopback, started and stopped by the test (:mod:`fetch_servers`).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from aiohttp import web
from fetch_servers import Trap, mint
from lxml import etree
from ocsp_responder import OcspResponder
from signxml import XMLSigner
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureConstructionMethod

from pki import pdf
from pki.certfactory import CertFactory, Issued, agency_name, simple_name
from pki.errors import PkiError
from pki.fetch import FetchPolicy, allow_list_of
from pki.keys import FileSigner
from pki.receipts import verify_signed_ack
from pki.sign import sign_envelope
from pki.trust import TrustStore
from pki.verify import verify_envelope

NAME = agency_name("00001", "สำนักนายกรัฐมนตรี")


class Seen:
    """Records ``on_fetch(kind, outcome)`` calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, kind: str, outcome: str) -> None:
        self.calls.append((kind, outcome))

    def outcomes(self) -> set[str]:
        return {o for _, o in self.calls}


@pytest.fixture
async def trap():
    t = await Trap().start()
    yield t
    await t.stop()


@pytest.fixture
async def trap2():
    t = await Trap().start()
    yield t
    await t.stop()


def rogue_chain(trap: Trap):
    """A leaf for agency 00001 under a CA nobody configured; every URL in it points at the trap."""
    rogue_root = CertFactory.new_root("Rogue Root")
    inter = mint(rogue_root, simple_name("Rogue Issuing CA"), profile="ca",
                 ca_issuers=[trap.url("/root.cer")], ocsp=[trap.url("/ocsp-inter")], crl=[trap.url("/root.crl")])
    rogue_inter = CertFactory(Issued(inter.cert, inter.key))
    leaf = mint(rogue_inter, NAME, ca_issuers=[trap.url("/issuer.cer")], ocsp=[trap.url("/ocsp")],
                crl=[trap.url("/leaf.crl")])
    return leaf, inter


async def refused(trust: TrustStore, cert, **kw) -> PkiError:
    with pytest.raises(PkiError) as info:
        await trust.validate_signer(cert, **kw)
    return info.value


# --------------------------------------------------------------------------- no fetch for untrusted chains


@pytest.mark.parametrize("revocation", ["soft-fail", "hard-fail"])
@pytest.mark.parametrize("with_intermediate", [False, True])
async def test_an_untrusted_chain_is_refused_at_once_without_any_fetch(dev_pki, trap, revocation,
                                                                       with_intermediate):
    leaf, inter = rogue_chain(trap)
    seen = Seen()
    # even with the trap's host allowed: nobody vouches for these URLs
    trust = dev_pki.trust_store(ocsp=True, revocation=revocation, fetch_allow=["127.0.0.1"], on_fetch=seen)
    t0 = time.monotonic()
    error = await refused(trust, leaf.cert, intermediates=[inter.cert] if with_intermediate else [])
    elapsed = time.monotonic() - t0
    assert error.code == "certificate.untrusted"
    assert elapsed < 0.5, elapsed
    assert trap.connections == 0 and trap.received == b""
    assert ("issuer", "refused_untrusted") in seen.calls
    assert seen.outcomes() == {"refused_untrusted"}


async def test_an_untrusted_envelope_signer_and_ack_signer_cause_no_fetch(dev_pki, trap, letter):
    """The same store checks letters and offices' signed acknowledgements: neither path fetches."""
    leaf, inter = rogue_chain(trap)
    trust = dev_pki.trust_store(ocsp=True, revocation="soft-fail", fetch_allow=["127.0.0.1"])
    signer = FileSigner(leaf.key, leaf.cert, [inter.cert])
    t0 = time.monotonic()
    with pytest.raises(PkiError) as info:
        await verify_envelope(sign_envelope(letter, signer), trust, sender="00001")
    assert info.value.code == "certificate.untrusted"
    ack = etree.fromstring(
        b'<DeliveryAck xmlns="urn:th:gov:saraban:envelope:1"><DeliveryId>' + str(uuid.uuid4()).encode()
        + b"</DeliveryId><Sha256>" + b"0" * 64 + b"</Sha256></DeliveryAck>")
    signed = XMLSigner(method=SignatureConstructionMethod.enveloped, signature_algorithm=signer.signature_method,
                       digest_algorithm=DigestAlgorithm.SHA256,
                       c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
                       ).sign(ack, key=signer.xmldsig_key, cert=[leaf.cert, inter.cert])
    with pytest.raises(PkiError) as info:
        await verify_signed_ack(etree.tostring(signed), trust, agency="00001")
    assert info.value.code == "certificate.untrusted"
    assert time.monotonic() - t0 < 1.0
    assert trap.connections == 0


async def test_a_pdf_signed_by_an_untrusted_certificate_causes_no_fetch(dev_pki, trap):
    """The main PDF's signatures are validated with the store's context: the same rules hold."""
    leaf, inter = rogue_chain(trap)
    signed = await pdf.async_sign_pdf(pdf.make_demo_pdf(), FileSigner(leaf.key, leaf.cert, [inter.cert]))
    seen = Seen()
    trust = dev_pki.trust_store(ocsp=True, revocation="hard-fail", fetch_allow=["127.0.0.1"], on_fetch=seen)
    t0 = time.monotonic()
    report = await pdf.validate_pdf(signed, trust)
    assert not report.ok and not report.signatures[0].trusted
    assert time.monotonic() - t0 < 1.0
    assert trap.connections == 0
    assert seen.outcomes() <= {"refused_untrusted"}


# --------------------------------------------------------------------------- the allow-list


def test_allow_list_parsing_and_matching():
    policy = FetchPolicy.parse("ocsp.ca.example, crl.ca.example:8080 ,[::1]:8888, 127.0.0.1")
    assert policy.allows("http://ocsp.ca.example/")
    assert policy.allows("https://OCSP.CA.EXAMPLE:443/x")
    assert policy.allows("http://ocsp.ca.example:9999/")  # a bare host allows every port
    assert policy.allows("http://crl.ca.example:8080/a.crl")
    assert not policy.allows("http://crl.ca.example/a.crl")  # host:port allows that port only
    assert not policy.allows("http://crl.ca.example:8081/a.crl")
    assert policy.allows("http://[::1]:8888/")
    assert not policy.allows("http://[::1]:8889/")
    assert policy.allows("http://127.0.0.1:1234/")
    for url in ("ldap://ocsp.ca.example/", "file:///etc/passwd", "ftp://ocsp.ca.example/", "gopher://127.0.0.1/",
                "http://evil.example/", "http://ocsp.ca.example.evil.example/", "http://user@evil.example/",
                "http://ocsp.ca.example@evil.example/", "not a url", "http:///nohost", "http://ocsp.ca.example:x/"):
        assert not policy.allows(url), url
    assert FetchPolicy.parse("").allow == frozenset()
    with pytest.raises(ValueError):
        FetchPolicy.parse("http://ocsp.ca.example/")  # hosts, not URLs
    with pytest.raises(ValueError):
        FetchPolicy.parse("host:notaport")


def test_default_allow_list_is_the_hosts_the_configured_cas_name(trap):
    root = CertFactory.new_root("Listed Root")
    inter = mint(root, simple_name("Listed Issuing CA"), profile="ca",
                 ca_issuers=["http://pki.ca.example/root.cer", "ldap://ldap.ca.example/cn=root"],
                 ocsp=["http://ocsp.ca.example:8080/"], crl=["https://crl.ca.example/root.crl"])
    assert allow_list_of([root.ca.cert, inter.cert]) == frozenset(
        {"pki.ca.example", "ocsp.ca.example:8080", "crl.ca.example"})
    trust = TrustStore([root.ca.cert], [inter.cert])
    assert trust.fetch_policy.allow == frozenset({"pki.ca.example", "ocsp.ca.example:8080", "crl.ca.example"})
    assert TrustStore([root.ca.cert], [inter.cert], fetch_allow=["127.0.0.1"]).fetch_policy.allow == {"127.0.0.1"}


@pytest.mark.parametrize("revocation, code", [("soft-fail", None), ("hard-fail", "certificate.revocation_unknown")])
async def test_an_ocsp_url_on_a_host_not_allowed_is_not_fetched_and_the_policy_decides(dev_pki, trap, revocation,
                                                                                       code):
    issued = mint(dev_pki.issuing_factory(), NAME, ocsp=[trap.url("/ocsp")], crl=[trap.url("/x.crl")])
    for allow in (None, [f"127.0.0.1:{trap.port + 1 if trap.port < 65535 else 1}"], ["localhost"]):
        seen = Seen()
        trust = dev_pki.trust_store(ocsp=True, revocation=revocation, fetch_allow=allow, on_fetch=seen)
        t0 = time.monotonic()
        if code is None:
            validated = await trust.validate_signer(issued.cert)
            assert validated.revocation == "unknown" and validated.soft_failures
        else:
            assert (await refused(trust, issued.cert)).code == code
        assert time.monotonic() - t0 < 0.5
        assert trap.connections == 0, allow
        assert ("ocsp", "refused_host") in seen.calls and ("crl", "refused_host") in seen.calls


async def test_revocation_is_ok_when_the_allowed_responder_answers(dev_pki):
    responder = OcspResponder(dev_pki.issuing_factory())
    await responder.start()
    try:
        issued = dev_pki.issuing_factory(ocsp_url=responder.url).agency_signing("00001", "A")
        responder.register(issued.cert)
        seen = Seen()
        trust = dev_pki.trust_store(ocsp=True, revocation="hard-fail", fetch_allow=["127.0.0.1"], on_fetch=seen)
        validated = await trust.validate_signer(issued.cert)
        assert validated.revocation == "ok" and validated.soft_failures == ()
        assert seen.calls == [("ocsp", "ok")] and responder.requests == 1
        off = await dev_pki.trust_store(ocsp=False, revocation="off").validate_signer(issued.cert)
        assert off.revocation == "off"
    finally:
        await responder.stop()


async def test_a_redirect_from_an_allowed_responder_is_not_followed(dev_pki, trap):
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(trap.url("/elsewhere"))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        issued = mint(dev_pki.issuing_factory(), NAME, ocsp=[f"http://127.0.0.1:{port}/ocsp"])
        seen = Seen()
        trust = dev_pki.trust_store(ocsp=True, revocation="soft-fail", fetch_allow=[f"127.0.0.1:{port}"],
                                    on_fetch=seen)
        assert (await trust.validate_signer(issued.cert)).revocation == "unknown"
        assert trap.connections == 0 and seen.calls == [("ocsp", "error")]
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------- time limits


@pytest.mark.parametrize("revocation", ["soft-fail", "hard-fail"])
async def test_a_silent_responder_costs_one_second_a_fetch_and_two_a_validation(dev_pki, trap, trap2, revocation):
    """Three URLs on two hosts that never answer: 1 s each would be 3 s; the validation stops at 2 s."""
    issued = mint(dev_pki.issuing_factory(), NAME, ocsp=[trap.url("/a"), trap2.url("/b")], crl=[trap.url("/c.crl")])
    seen = Seen()
    trust = dev_pki.trust_store(ocsp=True, revocation=revocation, fetch_allow=["127.0.0.1"], on_fetch=seen)
    t0 = time.monotonic()
    if revocation == "soft-fail":
        assert (await trust.validate_signer(issued.cert)).revocation == "unknown"
    else:
        assert (await refused(trust, issued.cert)).code == "certificate.revocation_unknown"
    elapsed = time.monotonic() - t0
    assert 0.9 < elapsed < 2.5, elapsed
    assert trap.connections >= 1, "the allowed responder was asked"
    assert ("ocsp", "timeout") in seen.calls
    assert "ok" not in seen.outcomes()


async def test_an_unknown_revocation_is_not_trusted_for_long(dev_pki, trap):
    """A soft-failed check is reused for ``negative_ttl`` only, so the next letters ask again soon."""
    issued = mint(dev_pki.issuing_factory(), NAME, ocsp=[trap.url("/ocsp")])
    trust = dev_pki.trust_store(ocsp=True, revocation="soft-fail", negative_ttl=dt.timedelta(seconds=30))
    validated = await trust.validate_signer(issued.cert)
    assert validated.revocation == "unknown"
    assert validated.valid_until <= validated.checked_at + dt.timedelta(seconds=30)
