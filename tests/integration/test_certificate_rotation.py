"""Certificate rotation with overlap: old and new both accepted until the old one is retired; expired refused.

Two real certificates of one agency are minted by the development CA. The directory registers them
(``Agency.certificates``, entries read from their PEM by ``certificate_entry``); the pins reach
``pki.trust.AgencyBinding`` through ``Directory.pins()``, a live view, so ``Directory.replace`` with the
old certificate retired refuses it at once, through the binding and through POST /v1/messages.
"""

import dataclasses
import datetime as dt
import json
import ssl

import aiohttp
import pytest
from aiohttp import web

from gateway.core import appkeys as keys
from gateway.core.certexpiry import certificate_entry, expiring
from gateway.core.clock import FakeClock
from gateway.core.directory import AgencyCertificate, Directory
from gateway.core.ecmswire import soap
from gateway.core.signing import build_trust, server_ssl_context
from gateway.http.app import create_app
from pki.certfactory import agency_name
from pki.errors import AgencyError, CertificateError
from pki.keys import FileSigner
from pki.sign import sign_envelope
from pki.trust import AgencyBinding
from tests.ecms.helpers import errors as ecms_errors
from tests.ecms.helpers import request as ecms_request
from tests.integration.conftest import make_settings
from tests.integration.test_submit import auth, counts
from tests.support import CMI, OPM, directory_dict, free_port, letter_bytes


@pytest.fixture
def clock():
    """The machine's time, moved only by the test: this module mints its certificates from the machine's
    clock, and the trust store judges at the app's (gateway.core.signing.build_trust)."""
    return FakeClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


NAME = "สำนักนายกรัฐมนตรี"


def directory_with(certs: list[AgencyCertificate]) -> Directory:
    """The test directory, OPM registering ``certs`` (as a directory file would carry them)."""
    data = json.loads(json.dumps(directory_dict()))
    for agency in data["agencies"]:
        if agency["code"] == OPM:
            agency["certificates"] = [c.to_dict() for c in certs]
    return Directory.from_dict(data)


def retire(entry: AgencyCertificate, at: dt.datetime) -> AgencyCertificate:
    return dataclasses.replace(entry, retired_at=at)


@pytest.fixture(scope="module")
def rotation(dev_pki):
    """(old, new): OPM's certificate ending in 20 days and its successor, valid for two years."""
    now = dt.datetime.now(dt.UTC)
    factory = dev_pki.issuing_factory()
    old = factory.agency_signing(OPM, NAME, not_before=now - dt.timedelta(days=700),
                                 not_after=now + dt.timedelta(days=20))
    new = factory.agency_signing(OPM, NAME, not_before=now - dt.timedelta(hours=1),
                                 not_after=now + dt.timedelta(days=730))
    return old, new


def entries(*issued):
    return [certificate_entry(i.cert_pem, "signing", agency=OPM) for i in issued]


def test_binding_accepts_both_during_the_overlap_and_only_the_new_one_after_retiring(rotation):
    old, new = rotation
    old_entry, new_entry = entries(old, new)
    directory = directory_with([old_entry, new_entry])
    binding = AgencyBinding(directory.pins())
    assert binding.check(old.cert, OPM) == OPM
    assert binding.check(new.cert, OPM) == OPM
    directory.replace(directory_with([retire(old_entry, dt.datetime.now(dt.UTC)), new_entry]))
    with pytest.raises(AgencyError) as err:
        binding.check(old.cert, OPM)
    assert (err.value.code, err.value.field) == ("certificate.wrong_agency", "Signatures")
    assert binding.check(new.cert, OPM) == OPM
    # and another agency's pins never admit it
    with pytest.raises(AgencyError):
        binding.check(new.cert, CMI)


def test_the_expiry_report_shows_the_rotation_in_progress(rotation):
    old, new = rotation
    old_entry, new_entry = entries(old, new)
    now = dt.datetime.now(dt.UTC)
    report = expiring(directory_with([old_entry, new_entry]), now)
    assert [(e.agency, e.sha256, e.bucket, e.replaced) for e in report.entries] == [
        (OPM, old_entry.sha256, "30d", True)]
    after = expiring(directory_with([retire(old_entry, now), new_entry]), now)
    assert after.entries == () and after.counts["30d"] == 0


def signed(dev_pki, issued, message_id: str) -> bytes:
    signer = FileSigner(issued.key, issued.cert, [dev_pki.intermediate_cert])
    return sign_envelope(letter_bytes(sender=OPM, recipients=(CMI,), message_id=message_id), signer)


async def test_rotation_through_signed_submissions(make_client, pool, dev_pki, rotation):
    old, new = rotation
    old_entry, new_entry = entries(old, new)
    client = await make_client(require_signature=True, seal=True, revocation="soft-fail")
    directory = client.app[keys.DIRECTORY]
    directory.replace(directory_with([old_entry, new_entry]))
    for who, issued in (("old", old), ("new", new)):
        r = await client.post("/v1/messages", data=signed(dev_pki, issued, f"overlap-{who}"), headers=auth())
        assert r.status == 202, (who, await r.text())
    directory.replace(directory_with([retire(old_entry, dt.datetime.now(dt.UTC)), new_entry]))
    r = await client.post("/v1/messages", data=signed(dev_pki, old, "after-old"), headers=auth())
    body = await r.json()
    assert (r.status, body["code"]) == (403, "certificate.wrong_agency"), body
    r = await client.post("/v1/messages", data=signed(dev_pki, new, "after-new"), headers=auth())
    assert r.status == 202, await r.text()
    assert (await counts(pool))["messages"] == 3
    refused = [r["details"]["code"] for r in await pool.fetch(
        "SELECT details FROM audit_events WHERE kind = 'message.rejected'")]
    assert refused == ["certificate.wrong_agency"]


async def test_an_expired_registered_certificate_is_refused_and_its_agency_reported(make_client, pool, dev_pki):
    now = dt.datetime.now(dt.UTC)
    factory = dev_pki.issuing_factory()
    expired = factory.agency_signing(OPM, NAME, not_before=now - dt.timedelta(days=400),
                                     not_after=now - dt.timedelta(days=2))
    early = factory.issue(agency_name(OPM, NAME), profile="document-signing",
                          not_before=now + dt.timedelta(days=3), not_after=now + dt.timedelta(days=400))
    client = await make_client(require_signature=True, seal=True, revocation="soft-fail")
    directory = client.app[keys.DIRECTORY]
    directory.replace(directory_with(entries(expired, early)))
    for issued, code in ((expired, "certificate.expired"), (early, "certificate.not_yet_valid")):
        r = await client.post("/v1/messages", data=signed(dev_pki, issued, f"refused-{code}"), headers=auth())
        body = await r.json()
        assert (r.status, body["code"]) == (422, code), body
    assert (await counts(pool))["messages"] == 0
    report = expiring(directory, now)
    assert report.agencies("expired") == [OPM] and report.counts["expired"] == 1
    assert report.entries[0].days_left == -2


async def test_the_trust_store_refuses_an_expired_certificate_whatever_the_pins(dev_pki):
    now = dt.datetime.now(dt.UTC)
    expired = dev_pki.issuing_factory().agency_signing(OPM, NAME, not_before=now - dt.timedelta(days=400),
                                                       not_after=now - dt.timedelta(days=1))
    directory = directory_with(entries(expired))
    store = dev_pki.trust_store(ocsp=False, binding=AgencyBinding(directory.pins()))
    assert store.check_agency(expired.cert, OPM) == OPM  # pinned and unretired: the binding admits it
    with pytest.raises(CertificateError) as err:
        await store.validate_signer(expired.cert)
    assert err.value.code == "certificate.expired"


# ---------------------------------------------------------------------------- TLS client certificates


@pytest.fixture
async def mtls_gateway(database_url, workdir, dev_pki):
    """The gateway app on HTTPS with client certificates (the TLS context ``gateway serve`` builds)."""
    settings = make_settings(database_url, workdir, tls=True, client_certs="optional", pki_dir=dev_pki.directory)
    directory = directory_with([])
    app = create_app(settings, directory=directory)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    ctx = server_ssl_context(settings, build_trust(settings, directory))
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx).start()
    yield f"https://127.0.0.1:{port}", directory
    await runner.cleanup()


async def inbox_status(url: str, dev_pki, workdir, issued, name: str) -> tuple[int, str]:
    issued.write(workdir / f"{name}.pem", workdir / f"{name}.key", [dev_pki.intermediate_cert])
    ctx = ssl.create_default_context(cafile=str(dev_pki.anchors))
    ctx.load_cert_chain(str(workdir / f"{name}.pem"), str(workdir / f"{name}.key"))
    async with aiohttp.ClientSession() as session, session.get(f"{url}/v1/inbox", ssl=ctx) as r:
        body = await r.json()
        return r.status, body.get("code", "") if isinstance(body, dict) else ""


async def test_tls_client_rotation_old_and_new_until_the_old_one_is_retired(mtls_gateway, dev_pki, workdir):
    url, directory = mtls_gateway
    factory = dev_pki.issuing_factory()
    old, new, stray = (factory.issue(agency_name(OPM, NAME), profile="tls-client") for _ in range(3))
    old_entry, new_entry = (certificate_entry(i.cert_pem, "tls", agency=OPM) for i in (old, new))
    # nothing registered for TLS: the agency code in the subject binds, as before
    assert (await inbox_status(url, dev_pki, workdir, stray, "stray"))[0] == 200
    directory.replace(directory_with([old_entry, new_entry]))
    assert (await inbox_status(url, dev_pki, workdir, old, "old"))[0] == 200
    assert (await inbox_status(url, dev_pki, workdir, new, "new"))[0] == 200
    assert await inbox_status(url, dev_pki, workdir, stray, "stray") == (401, "auth.certificate.wrong_agency")
    directory.replace(directory_with([retire(old_entry, dt.datetime.now(dt.UTC)), new_entry]))
    assert await inbox_status(url, dev_pki, workdir, old, "old") == (401, "auth.certificate.wrong_agency")
    assert (await inbox_status(url, dev_pki, workdir, new, "new"))[0] == 200


async def ecms_answer(url: str, dev_pki, workdir, issued, name: str) -> list[str]:
    """The e-CMS endpoint's ErrorDetail codes for a look-up made with this client certificate."""
    issued.write(workdir / f"{name}.pem", workdir / f"{name}.key", [dev_pki.intermediate_cert])
    ctx = ssl.create_default_context(cafile=str(dev_pki.anchors))
    ctx.load_cert_chain(str(workdir / f"{name}.pem"), str(workdir / f"{name}.key"))
    async with aiohttp.ClientSession() as session, session.post(
            f"{url}/ecms-ws01/service2", data=ecms_request(soap.U.GetMinistryOrganizationList()), ssl=ctx,
            headers={"Content-Type": "text/xml; charset=utf-8"}) as r:
        assert r.status == 200
        return ecms_errors(await r.read())


async def test_the_ecms_endpoint_admits_a_client_certificate_as_the_native_api_does(mtls_gateway, dev_pki,
                                                                                   workdir):
    """Issue 14: the certificate that opens GET /v1/inbox got ECMS-200 auth.required on every SOAP call."""
    url, directory = mtls_gateway
    factory = dev_pki.issuing_factory()
    old, new = (factory.issue(agency_name(OPM, NAME), profile="tls-client") for _ in range(2))
    assert await ecms_answer(url, dev_pki, workdir, old, "old") == []  # chain + agency in the subject
    old_entry, new_entry = (certificate_entry(i.cert_pem, "tls", agency=OPM) for i in (old, new))
    directory.replace(directory_with([retire(old_entry, dt.datetime.now(dt.UTC)), new_entry]))
    assert await ecms_answer(url, dev_pki, workdir, new, "new") == []
    assert await ecms_answer(url, dev_pki, workdir, old, "old") == ["ECMS-200"]  # retired: refused, as natively
