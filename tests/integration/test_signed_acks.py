"""Offices' signed DeliveryAcks: verified against the trust store, bound to the office's agency,
checked against the delivered bytes, and recorded; a bad one is not an acknowledgement.

Push offices are real HTTP servers on loopback; acks are signed with the development PKI's
agency keys by stock signxml, as an office's own software would sign them.
"""

import hashlib
import json
import uuid

import pytest
from lxml import etree
from signxml import XMLSigner
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureConstructionMethod

from gateway.core import appkeys as keys
from pki.certfactory import CertFactory
from pki.keys import FileSigner
from pki.trust import fingerprint
from tests.support import CMI, KKN, OPM, TOKENS, Office, delivery_ack, letter_bytes

ENV = "{urn:th:gov:saraban:envelope:1}"


def auth(agency=OPM):
    return {"Authorization": f"Bearer {TOKENS[agency]}", "Content-Type": "application/xml"}


def sign_ack(signer: FileSigner, delivery_id: str, *, sha256: str | None = None, root_id: str | None = None,
             ) -> bytes:
    root = etree.fromstring(delivery_ack(delivery_id=uuid.UUID(delivery_id), sha256_hex=sha256))
    if root_id:
        root.set("Id", root_id)
    signed = XMLSigner(method=SignatureConstructionMethod.enveloped, signature_algorithm=signer.signature_method,
                       digest_algorithm=DigestAlgorithm.SHA256,
                       c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
                       ).sign(root, key=signer.xmldsig_key, cert=[signer.certificate, *signer.chain])
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def tamper(ack: bytes) -> bytes:
    """Change a signed field after signing (a ReceivedAt the office never signed)."""
    root = etree.fromstring(ack)
    sig = root.find("{http://www.w3.org/2000/09/xmldsig#}Signature")
    sig.addprevious(etree.Element(ENV + "ReceivedAt"))
    sig.getprevious().text = "2026-01-01T00:00:00+07:00"
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@pytest.fixture(scope="module")
def outsider(dev_pki):
    """A certificate for CMI issued by a CA the gateway does not trust (forged identity)."""
    root = CertFactory.new_root("Forged Root CA")
    inter = root.intermediate("Forged Issuing CA")
    issued = inter.agency_signing(CMI, "เชียงใหม่ (forged)")
    return FileSigner(issued.key, issued.cert, [inter.ca.cert])


async def cycle(client):
    d = client.app[keys.DISPATCHER]
    n = await d.dispatch_once()
    await d.drain()
    return n


async def delivered_events(pool):
    """Details of every delivery.delivered audit event."""
    rows = await pool.fetch("SELECT details FROM audit_events WHERE kind = 'delivery.delivered'")
    return [json.loads(r["details"]) if isinstance(r["details"], str) else r["details"] for r in rows]


@pytest.fixture
async def office():
    made = []

    async def make(answer):
        o = await Office(name="cmi", answer=answer).start()
        made.append(o)
        return o

    yield make
    for o in made:
        await o.stop()


async def test_push_office_with_a_signed_ack_is_delivered_and_the_audit_records_the_verified_signer(
        make_client, office, pool, dev_pki):
    cmi_signer = dev_pki.agency_signer(CMI)
    cmi = await office(lambda did, body: sign_ack(cmi_signer, did, sha256=hashlib.sha256(body).hexdigest()))
    client = await make_client(routes={CMI: {"kind": "push", "url": cmi.url}})
    assert (await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,)), headers=auth())).status == 202
    assert await cycle(client) == 1
    assert await pool.fetchval("SELECT status::text FROM deliveries WHERE recipient = $1", CMI) == "delivered"
    [details] = await delivered_events(pool)
    assert details["ack_signed"] is True and details["ack_verified"] is True
    assert details["ack_signer_sha256"] == fingerprint(cmi_signer.certificate)
    assert details["ack_signer_agency"] == CMI and details["ack_sha256_checked"] is True
    kept = await pool.fetchval("SELECT ack FROM receipts_full WHERE kind = 'delivery'")
    assert b"SignatureValue" in kept, "the signed ack is kept as evidence, as received"


async def test_signxml_default_reference_to_the_ack_id_is_accepted(make_client, office, pool, dev_pki):
    cmi_signer = dev_pki.agency_signer(CMI)
    cmi = await office(lambda did, body: sign_ack(cmi_signer, did, root_id="ack-1"))
    client = await make_client(routes={CMI: {"kind": "push", "url": cmi.url}})
    await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,)), headers=auth())
    await cycle(client)
    assert await pool.fetchval("SELECT status::text FROM deliveries WHERE recipient = $1", CMI) == "delivered"


BAD_ACKS = {
    "tampered": (lambda pki, forged, did, body: tamper(sign_ack(pki.agency_signer(CMI), did)),
                 "ack.signature_invalid"),
    "unknown_ca": (lambda pki, forged, did, body: sign_ack(forged, did), "ack.signature_invalid"),
    "other_agency": (lambda pki, forged, did, body: sign_ack(pki.agency_signer(KKN), did), "ack.wrong_agency"),
    "wrong_sha256": (lambda pki, forged, did, body: sign_ack(pki.agency_signer(CMI), did,
                                                             sha256=hashlib.sha256(b"other").hexdigest()),
                     "ack.digest_mismatch"),
    "unsigned_wrong_sha256": (lambda pki, forged, did, body: delivery_ack(
        delivery_id=uuid.UUID(did), sha256_hex=hashlib.sha256(body + b" ").hexdigest()), "ack.digest_mismatch"),
}


@pytest.mark.parametrize("case", list(BAD_ACKS))
async def test_push_office_with_an_invalid_ack_is_not_delivered(case, make_client, office, pool, dev_pki,
                                                                outsider):
    make_ack, code = BAD_ACKS[case]
    cmi = await office(lambda did, body: make_ack(dev_pki, outsider, did, body))
    client = await make_client(routes={CMI: {"kind": "push", "url": cmi.url}})
    await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,)), headers=auth())
    await cycle(client)
    assert len(cmi.received) == 1, "the office got the letter; its answer is what fails"
    row = await pool.fetchrow("SELECT status::text AS status, last_error FROM deliveries WHERE recipient = $1", CMI)
    assert row["status"] == "retry_wait"
    assert code in row["last_error"]
    assert await pool.fetchval("SELECT count(*) FROM receipts") == 0
    assert await delivered_events(pool) == []


async def pulled(client):
    await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,)), headers=auth())
    [item] = (await (await client.get("/v1/inbox", headers=auth(CMI))).json())["items"]
    body = await (await client.get(item["href"], headers=auth(CMI))).read()
    return item["delivery_id"], body


async def test_pull_ack_with_a_valid_signature_is_recorded(make_client, pool, dev_pki):
    client = await make_client()
    did, body = await pulled(client)
    ack = sign_ack(dev_pki.agency_signer(CMI), did, sha256=hashlib.sha256(body).hexdigest())
    r = await client.post(f"/v1/inbox/{did}/ack", data=ack, headers=auth(CMI))
    assert r.status == 200, await r.text()
    [details] = await delivered_events(pool)
    assert details["ack_verified"] is True
    assert details["ack_signer_sha256"] == fingerprint(dev_pki.agency_signer(CMI).certificate)


@pytest.mark.parametrize("case", ["tampered", "unknown_ca", "other_agency", "wrong_sha256", "unsigned_wrong_sha256"])
async def test_pull_ack_that_is_not_valid_is_refused_with_its_code(case, make_client, pool, dev_pki, outsider):
    make_ack, code = BAD_ACKS[case]
    client = await make_client()
    did, body = await pulled(client)
    r = await client.post(f"/v1/inbox/{did}/ack", data=make_ack(dev_pki, outsider, did, body), headers=auth(CMI))
    assert r.status == 422
    assert (await r.json())["code"] == code
    assert await pool.fetchval("SELECT status::text FROM deliveries WHERE id = $1", uuid.UUID(did)) == "inbox"
    assert await delivered_events(pool) == []


async def test_pull_ack_unsigned_stays_accepted(make_client, pool):
    client = await make_client()
    did, body = await pulled(client)
    ack = delivery_ack(delivery_id=uuid.UUID(did), sha256_hex=hashlib.sha256(body).hexdigest())
    r = await client.post(f"/v1/inbox/{did}/ack", data=ack, headers=auth(CMI))
    assert r.status == 200
    [details] = await delivered_events(pool)
    assert details["ack_signed"] is False and details["ack_sha256_checked"] is True
