"""The e-CMS endpoint on the real service: create_app on a real PostgreSQL database, requests
over HTTP to /ecms-ws01/service2 and the native API side by side (agencies of tests/support)."""

from __future__ import annotations

import datetime as dt
import ssl

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import XMLSigner, methods
from signxml.algorithms import DigestAlgorithm, SignatureMethod

from conformance.ecms.runner import run
from gateway.core import xml as gxml
from gateway.core.directory import Directory
from gateway.core.ecmswire import soap
from gateway.core.envelope_reader import read_envelope
from gateway.ecms.settings import ECMS_PATH
from gateway.http.app import create_app
from pki.devca import init_dev_pki
from tests.ecms.helpers import body_child, errors, request
from tests.integration.conftest import make_settings
from tests.support import CMI, KKN, OPM, ROOT, TOKENS, letter_bytes, notifier_bytes, trickle

U = soap.U
R = f"{{{soap.RAM_NS}}}"


def auth(agency=OPM, content_type="application/xml"):
    return {"Authorization": f"Bearer {TOKENS[agency]}", "Content-Type": content_type}


async def soap_call(client, agency, data: bytes) -> bytes:
    r = await client.post(ECMS_PATH, data=data, headers=auth(agency, "text/xml"))
    assert r.status == 200, await r.text()
    return await r.read()


async def test_receipts_never_hide_a_letter_from_an_ecms_client(make_client, clock):
    client = await make_client()
    for i in range(60):
        r = await client.post("/v1/messages", data=letter_bytes(message_id=f"m-{i}"), headers=auth(OPM))
        assert r.status == 202, await r.text()
    items = (await (await client.get("/v1/inbox?limit=100", headers=auth(CMI))).json())["items"]
    assert len(items) == 60
    for item in items:  # each acknowledgement puts a delivery receipt into OPM's inbox
        assert (await client.post(f"/v1/inbox/{item['delivery_id']}/ack", headers=auth(CMI))).status == 200
    clock.advance(1)  # the letter is queued after every receipt
    r = await client.post("/v1/messages", headers=auth(CMI),
                          data=letter_bytes(sender=CMI, recipients=(OPM,), message_id="cmi-1", subject="ตอบรับ"))
    assert r.status == 202, await r.text()

    answer = await soap_call(client, OPM, request(U.CorrespondenceLetterInboundRequest()))
    assert errors(answer) == []
    pulled = body_child(answer)
    letter = pulled.find(f"{{{soap.RSM_NS}}}GovernmentDocument/{R}CorrespondenceLetter")
    assert letter is not None and letter.findtext(f"{R}Subject") == "ตอบรับ"
    # the receipts stay for the native inbox, ahead of the letter
    native = (await (await client.get("/v1/inbox?limit=100", headers=auth(OPM))).json())["items"]
    assert [i["type"] for i in native] == ["receipt"] * 60 + ["letter"]
    assert native[-1]["delivery_id"] == pulled.findtext("ProcessID")

    answer = await soap_call(client, OPM, request(U.CorrespondenceLetterDeleteRequest(
        U.ProcessID(pulled.findtext("ProcessID")))))
    assert errors(answer) == []
    # nothing left in e-CMS form: an empty answer although 60 receipts still wait
    assert len(body_child(await soap_call(client, OPM, request(U.CorrespondenceLetterInboundRequest())))) == 0


# ------------------------------------------------------------------ signature policy

VECTORS = ROOT / "conformance" / "ecms" / "vectors"


def ecms_letter(subject: str = "ขอเชิญประชุมคณะทำงาน") -> bytes:
    """The VB.NET client's letter (unsigned), sent by OPM to CMI."""
    return ((VECTORS / "letter-vb-linqws.xml").read_bytes()
            .replace(b"<ram:ID>11008</ram:ID>", f"<ram:ID>{OPM}</ram:ID>".encode())
            .replace(b"<ram:ID>11002</ram:ID>", f"<ram:ID>{CMI}</ram:ID>".encode())
            .replace("ขอเชิญประชุมคณะทำงาน".encode(), subject.encode()))


def signed_ecms_letter(*, key, cert, method: str, digest: str, subject: str = "ลงนามแล้ว") -> bytes:
    """The same letter with a legacy XML-DSig over #Letter in its GovernmentSignature."""

    class LegacySigner(XMLSigner):
        def check_deprecated_methods(self):  # test-only: produce what legacy clients produce
            pass

    root = etree.fromstring(ecms_letter(subject))
    gov = next(root.iter(f"{{{soap.RSM_NS}}}GovernmentDocument"))
    for old in gov.findall(f"{R}GovernmentSignature"):
        gov.remove(old)
    signature = LegacySigner(method=methods.detached, signature_algorithm=SignatureMethod(method),
                             digest_algorithm=DigestAlgorithm(digest),
                             c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#").sign(
        gov, key=key, cert=[cert], reference_uri="#Letter", id_attribute="ID")
    gov.append(soap.RAM.GovernmentSignature(soap.RAM.TypeCode("DSIG"), signature))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def self_signed_rsa():

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{OPM} legacy signer")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    return key, cert


RSA_SHA1 = ("http://www.w3.org/2000/09/xmldsig#rsa-sha1", "http://www.w3.org/2000/09/xmldsig#sha1")


async def messages_from(pool, sender):
    return await pool.fetchval("SELECT count(*) FROM messages WHERE sender = $1", sender)


async def test_unsigned_ecms_letter_refused_unless_accepted(make_client, pool):
    strict = await make_client(ecms_accept_unsigned=False)
    answer = await soap_call(strict, OPM, ecms_letter())
    assert errors(answer) == ["ECMS-402"]
    assert "signature.required" in next(etree.fromstring(answer).iter("ErrorDescription")).text
    assert await messages_from(pool, OPM) == 0
    lenient = await make_client()  # development default
    answer = await soap_call(lenient, OPM, ecms_letter())
    assert errors(answer) == []
    assert await messages_from(pool, OPM) == 1


async def test_rsa_sha1_legacy_signature_only_with_the_legacy_setting(make_client, pool):
    key, cert = self_signed_rsa()
    default = await make_client()
    answer = await soap_call(default, OPM, signed_ecms_letter(key=key, cert=cert, method=RSA_SHA1[0],
                                                              digest=RSA_SHA1[1]))
    assert errors(answer) == ["ECMS-401"]
    assert await messages_from(pool, OPM) == 0
    legacy = await make_client(ecms_allow_legacy_sha1=True)
    answer = await soap_call(legacy, OPM, signed_ecms_letter(key=key, cert=cert, method=RSA_SHA1[0],
                                                             digest=RSA_SHA1[1]))
    assert errors(answer) == []
    # GATEWAY_ALLOW_SHA1 alone is the legacy profile too
    follows = await make_client(allow_sha1=True)
    answer = await soap_call(follows, OPM, signed_ecms_letter(key=key, cert=cert, method=RSA_SHA1[0],
                                                              digest=RSA_SHA1[1], subject="อีกฉบับ"))
    assert errors(answer) == ["ECMS-306"]  # got past the signature check: same number and date, not withdrawn
    assert await messages_from(pool, OPM) == 1


async def test_a_native_receiver_gets_the_people_send_date_and_legacy_signature(make_client, pool, dev_pki):
    """Nothing the e-CMS client said is lost for a native receiver: the parties' names and titles,
    SendDate, and the author's ds:Signature as received (evidence about the original SOAP letter)."""

    client = await make_client(ecms_require_trusted_signature=True)
    signer = dev_pki.agency_signer(OPM)
    soap_bytes = signed_ecms_letter(key=signer._key, cert=signer.certificate,
                                    method="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
                                    digest="http://www.w3.org/2001/04/xmlenc#sha256")
    assert errors(await soap_call(client, OPM, soap_bytes)) == []
    forwarded = await pool.fetchval("SELECT forwarded_bytes(received, forwarded, forwarded_edits, forwarded_inserts) FROM messages WHERE sender = $1", OPM)
    letter = read_envelope(gxml.parse(forwarded)).letter
    sent = etree.fromstring(soap_bytes)
    ds = next(sent.iter("{http://www.w3.org/2000/09/xmldsig#}Signature"))
    assert letter.legacy_signature is not None
    assert etree.fromstring(letter.legacy_signature.signature).findtext(
        ".//{http://www.w3.org/2000/09/xmldsig#}SignatureValue") == ds.findtext(
        "{http://www.w3.org/2000/09/xmldsig#}SignatureValue")
    ram = "{urn:th:gov:egif:data:standard:ReusableAggregateBusinessInformationEntity:1}"
    assert letter.sent_at == "2012-09-07T09:30:00"  # the vector's SendDate, not the gateway's time
    sender_party = next(sent.iter(f"{ram}SenderParty"))
    assert letter.sender_party.given_name == sender_party.findtext(f"{ram}GivenName").strip() == "อัครวัฒน์"
    assert letter.sender_party.job_title == sender_party.findtext(f"{ram}JobTitle").strip()
    assert [p.agency for p in letter.receiver_parties] == [CMI]


async def test_required_trust_validates_the_legacy_signer_against_the_trust_store(make_client, pool, dev_pki):
    client = await make_client(ecms_require_trusted_signature=True)
    key, cert = self_signed_rsa()  # intact, but no path to an anchor
    answer = await soap_call(client, OPM, signed_ecms_letter(
        key=key, cert=cert, method="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        digest="http://www.w3.org/2001/04/xmlenc#sha256"))
    assert errors(answer) == ["ECMS-403"]
    assert "certificate." in next(etree.fromstring(answer).iter("ErrorDescription")).text
    assert await messages_from(pool, OPM) == 0
    signer = dev_pki.agency_signer(OPM)  # issued by the development CA to OPM
    answer = await soap_call(client, OPM, signed_ecms_letter(
        key=signer._key, cert=signer.certificate, method="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        digest="http://www.w3.org/2001/04/xmlenc#sha256"))
    assert errors(answer) == [], answer[:800]
    assert await messages_from(pool, OPM) == 1
    # a certificate of another agency is not trusted for OPM
    other = dev_pki.agency_signer(CMI)
    answer = await soap_call(client, OPM, signed_ecms_letter(
        key=other._key, cert=other.certificate, method="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        digest="http://www.w3.org/2001/04/xmlenc#sha256", subject="ปลอม"))
    assert errors(answer) == ["ECMS-403"]


# ------------------------------------------------------------------ withdraw


def ecms_withdraw(number="อก 0905/0007", date="2012-09-07", sender=OPM, accept=CMI) -> bytes:
    return request(U.CorrespondenceDeleteGovernmentDocumentRequest(
        U.LetterID(number), U.CorrespondenceDate(date), U.SenderDepartment(U.Code(sender)),
        U.AcceptDepartment(U.Code(accept))))


async def take_native_inbox(client, agency):
    """The agency's native system takes (and acknowledges) everything waiting for it."""
    items = (await (await client.get("/v1/inbox?limit=100", headers=auth(agency))).json())["items"]
    for item in items:
        assert (await client.post(f"/v1/inbox/{item['delivery_id']}/ack", headers=auth(agency))).status == 200
    return items


async def test_withdraw_refused_once_delivered_and_registered(make_client, pool):
    client = await make_client()
    assert (await client.post("/v1/messages", data=letter_bytes(message_id="m-w"), headers=auth(OPM))).status == 202
    await take_native_inbox(client, CMI)
    # delivered, no answer yet: the letter is on the recipient's side, it stays
    r = await client.post("/v1/messages/m-w/withdraw", headers=auth(OPM))
    assert r.status == 409 and (await r.json())["code"] == "message.not_withdrawable"
    r = await client.post("/v1/messages", headers=auth(CMI),
                          data=notifier_bytes(sender=CMI, recipient=OPM, ref="m-w", registry_number="รับ 88/2569"))
    assert r.status == 202, await r.text()
    r = await client.post("/v1/messages/m-w/withdraw", headers=auth(OPM))
    body = await r.json()
    assert r.status == 409 and body["code"] == "message.not_withdrawable" and "accepted" in body["message"]
    answer = await soap_call(client, OPM, ecms_withdraw(number="นร 0105/ว 123", date="2026-11-22"))
    assert errors(answer) == ["ECMS-310"]
    status = await (await client.get("/v1/messages/m-w", headers=auth(OPM))).json()
    (cmi,) = status["recipients"]
    assert (cmi["status"], cmi["answer"], cmi["registry_number"]) == ("delivered", "accepted", "รับ 88/2569")
    assert [e["event"] for e in cmi["history"]] == ["delivered"] and cmi["withdrawn_at"] is None
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE kind = 'delivery.withdrawn'") == 0


async def test_withdraw_before_delivery_is_allowed_and_all_or_nothing(make_client):
    client = await make_client()
    r = await client.post("/v1/messages", data=letter_bytes(message_id="m-2", recipients=(CMI, KKN)),
                          headers=auth(OPM))
    assert r.status == 202
    kkn = (await (await client.get("/v1/inbox", headers=auth(KKN))).json())["items"]
    assert (await client.post(f"/v1/inbox/{kkn[0]['delivery_id']}/ack", headers=auth(KKN))).status == 200
    # KKN has it (delivered, no rejection): withdrawing from everyone changes nothing
    r = await client.post("/v1/messages/m-2/withdraw", headers=auth(OPM))
    assert r.status == 409 and KKN in (await r.json())["message"]
    status = await (await client.get("/v1/messages/m-2", headers=auth(OPM))).json()
    assert {x["recipient"]: x["status"] for x in status["recipients"]} == {CMI: "inbox", KKN: "delivered"}
    # CMI has not taken it yet: that delivery can be withdrawn
    r = await client.post("/v1/messages/m-2/withdraw", json={"recipients": [CMI]}, headers=auth(OPM))
    assert r.status == 200 and (await r.json())["withdrawn"] == 1
    assert (await (await client.get("/v1/inbox", headers=auth(CMI))).json())["items"] == []


async def test_reject_withdraw_resend_and_the_status_shows_the_history(make_client, clock):
    client = await make_client()
    sent = body_child(await soap_call(client, OPM, ecms_letter()))
    first = sent.findtext("ProcessID")
    await take_native_inbox(client, CMI)
    clock.advance(60)
    reject = request(U.CorrespondenceLetterOutboundRequest(U.RejectLetterNotifier(
        U.LetterID("อก 0905/0007"), U.CorrespondenceDate("2012-09-07"), U.Subject("ขอเชิญประชุมคณะทำงาน"))))
    assert errors(await soap_call(client, CMI, reject)) == []
    clock.advance(60)
    answer = await soap_call(client, OPM, ecms_withdraw())
    assert errors(answer) == [] and body_child(answer).findtext("LetterID") == "อก 0905/0007"
    clock.advance(60)
    resent = body_child(await soap_call(client, OPM, ecms_letter())).findtext("ProcessID")
    assert resent != first and resent.endswith(".r1")

    status = await (await client.get(f"/v1/messages/{first}", headers=auth(OPM))).json()
    (cmi,) = status["recipients"]
    assert (cmi["status"], cmi["answer"]) == ("withdrawn", "rejected")
    assert [e["event"] for e in cmi["history"]] == ["delivered", "withdrawn"]
    assert cmi["withdrawn_at"] == cmi["history"][-1]["at"] and cmi["history"][-1]["by"] == OPM
    assert [x["message_id"] for x in status["resent_as"]] == [resent]
    new = await (await client.get(f"/v1/messages/{resent}", headers=auth(OPM))).json()
    assert new["resent_as"] == [] and new["recipients"][0]["status"] == "inbox"
    assert new["recipients"][0]["answer"] is None  # the rejection answered the withdrawn letter, not this one
    # the new letter is live and undelivered: it can be withdrawn; the old one is gone already
    assert errors(await soap_call(client, OPM, ecms_withdraw())) == []
    assert errors(await soap_call(client, OPM, ecms_withdraw())) == ["ECMS-305"]


async def test_another_letter_under_a_used_number_is_refused_as_it_is_stored(make_client, pool):
    """The resend rule is checked by the statement that stores the letter: a different letter under
    the same number and date is refused (ECMS-306 naming the receiver, nothing stored, the refusal
    audited), a retry of the first one still gets its ProcessID, and after a withdrawal it goes."""
    client = await make_client()
    first = body_child(await soap_call(client, OPM, ecms_letter())).findtext("ProcessID")
    answer = await soap_call(client, OPM, ecms_letter(subject="แก้ไขวาระการประชุม"))
    assert errors(answer) == ["ECMS-306"]
    description = next(etree.fromstring(answer).iter("ErrorDescription")).text
    assert description.startswith("[ecms.already_sent @ GovernmentDocument/CorrespondenceLetter/ID]") and CMI in description
    assert await messages_from(pool, OPM) == 1
    refusal = await pool.fetchval("SELECT details FROM audit_events WHERE kind = 'message.rejected'")
    assert (refusal["code"], refusal["channel"]) == ("letter.sent_otherwise", "ecms")
    assert body_child(await soap_call(client, OPM, ecms_letter())).findtext("ProcessID") == first
    assert errors(await soap_call(client, OPM, ecms_withdraw())) == []
    again = body_child(await soap_call(client, OPM, ecms_letter(subject="แก้ไขวาระการประชุม")))
    assert errors(etree.tostring(again)) == [] and again.findtext("ProcessID") not in ("", first)
    assert await messages_from(pool, OPM) == 2


# ------------------------------------------------------------------ conformance kit


async def test_readme_conformance_command_passes_against_the_example_directory(database_url, workdir, clock,
                                                                                capsys):
    """What README's line runs: the runner over HTTPS (development root via --cafile), a bare
    gateway URL, the token of 11008 from config/directory.example.json."""



    example = ROOT / "config" / "directory.example.json"
    dev = init_dev_pki(workdir / "pki", {a.code: a.name_th for a in Directory.load(example).all()})
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(str(dev.tls_server_cert), str(dev.tls_server_key))
    app = create_app(make_settings(database_url, workdir, pki_dir=workdir / "pki", directory_path=example),
                     clock=clock)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=tls)
    try:
        base = f"https://127.0.0.1:{server.port}"
        assert await run(base, "dev-token-ega", cafile=str(dev.anchors)) == 0
        assert "0 failed" in capsys.readouterr().out
        with pytest.raises(aiohttp.ClientConnectorCertificateError):  # without --cafile: the private root
            await run(base, "dev-token-ega")
    finally:
        await server.close()


async def test_a_trickled_soap_body_gets_ecms_106_and_nothing_stored(make_client, pool):
    """The native API's body deadline holds for the e-CMS endpoint too (slowloris)."""

    client = await make_client(body_timeout_s=0.3, body_min_rate=1_000_000)
    head, body, _ = await trickle(client.server.host, client.server.port,
                                  b"POST /ecms-ws01/service2 HTTP/1.1\r\nHost: gateway\r\nContent-Type: text/xml\r\n"
                                  b"Content-Length: 5000\r\n\r\n", b"<SOAP-ENV:Envelope")
    assert head.startswith(b"HTTP/1.1 408") and b"Connection: close" in head, head
    assert errors(body) == ["ECMS-106"]
    assert await messages_from(pool, OPM) == 0
