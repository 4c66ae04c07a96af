"""End to end on loopback with the real gateway (create_app: embedded PostgreSQL, real
service): an e-CMS client sends to a native pull receiver, and a native sender reaches an
e-CMS client that pulls over SOAP.

Uses the example directory: 20001 is an e-CMS-style 5-digit agency (dev-token-ops-moe),
1550100000 a native pull agency (dev-token-cmi). Runs on the shared test database; the native
letter is signed with the development PKI's key for 1550100000.
"""

from __future__ import annotations

import base64
import datetime as dt
import re

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from lxml import etree

from gateway.core import appkeys as keys
from gateway.core.ecmswire import soap
from gateway.core.envelope import Envelope, Header, Letter, MessageType, Secrecy, Speed
from gateway.core.envelope_builder import build_envelope
from gateway.core.envelope_reader import read_envelope
from gateway.core.settings import Settings
from gateway.core.xml import parse
from gateway.ecms.settings import ECMS_PATH
from gateway.http.app import create_app
from pki.sign import sign_envelope
from tests.ecms.conftest import load_vector
from tests.ecms.helpers import body_child, errors, request

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
async def gateway(database_url, workdir):

    app = create_app(Settings(database_url=database_url, data_dir=workdir, public_url="https://gw.example",
                              tls=False))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


def _vb_letter_from_20001_to_cmi() -> bytes:
    return (load_vector("letter-vb-linqws")
            .replace(b"<ram:ID>11008</ram:ID>", b"<ram:ID>20001</ram:ID>")
            .replace(b"<ram:ID>11002</ram:ID>", b"<ram:ID>1550100000</ram:ID>"))


async def test_ecms_client_to_native_receiver_and_back(gateway):
    url = str(gateway.make_url(ECMS_PATH))
    exchange = gateway.app[keys.EXCHANGE]
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "?token=dev-token-ops-moe", data=_vb_letter_from_20001_to_cmi()) as resp:
            body = await resp.read()
        assert resp.status == 200 and errors(body) == [], body[:500]
        pid = body_child(body).findtext("ProcessID")
        status = await exchange.status.message_status("20001", pid)
        assert [r["recipient"] for r in status["recipients"]] == ["1550100000"]
        items = await exchange.inbox.inbox("1550100000")
        env = read_envelope(parse(items[0].envelope))
        assert env.letter.number == "อก 0905/0007" and env.letter.subject == "ขอเชิญประชุมคณะทำงาน"
        assert {a.role for a in env.attachments} == {"main", "enclosure"}

        # a native sender answers with a letter of its own; the e-CMS client pulls it over SOAP
        native = Envelope(
            header=Header(message_id="cmi-2567-0001", message_type=MessageType.LETTER,
                          created_at=dt.datetime(2024, 5, 2, 9, tzinfo=dt.UTC), sender="1550100000",
                          recipients=("20001",)),
            body=Letter(number="ชม 0017/123", date=dt.date(2024, 5, 2), subject="ตอบรับการประชุม",
                        addressee="ปลัดกระทรวงศึกษาธิการ", speed=Speed.URGENT, secrecy=Secrecy.NORMAL,
                        signer_name="สมศรี ใจดี", signer_position="ผู้ว่าราชการจังหวัดเชียงใหม่"))

        signer = gateway.app[keys.TRUST].dev_pki.agency_signer("1550100000")
        await exchange.accept.submit(sign_envelope(build_envelope(native), signer), agency="1550100000")
        headers = {"Authorization": "Bearer dev-token-ops-moe"}
        async with http.post(url, data=request(soap.U.CorrespondenceLetterInboundRequest()), headers=headers) as resp:
            pulled = body_child(await resp.read())
        r = f"{{{soap.RAM_NS}}}"
        letter = pulled.find(f"{{{soap.RSM_NS}}}GovernmentDocument/{r}CorrespondenceLetter")
        assert letter.findtext(f"{r}ID") == "ชม 0017/123" and letter.findtext(f"{r}SpeedCode") == "002"
        assert letter.findtext(f"{r}SenderParty/{r}FamilyName") == "ใจดี"
        async with http.post(url, data=request(soap.U.CorrespondenceLetterDeleteRequest(
                soap.U.ProcessID(pulled.findtext("ProcessID")))), headers=headers) as resp:
            assert errors(await resp.read()) == []
        async with http.post(url, data=request(soap.U.CorrespondenceLetterInboundRequest()), headers=headers) as resp:
            assert len(body_child(await resp.read())) == 0
        async with http.post(url, data=request(soap.U.GetOrganizationList()), headers=headers) as resp:
            orgs = body_child(await resp.read())
        assert {o.findtext("ECMS-URL") for o in orgs.iter("OrganizationList")} == {"https://gw.example" + ECMS_PATH}


async def test_a_broken_pdf_is_refused_as_error_detail_and_nothing_is_stored(gateway, pool):
    """The main PDF carries a signature dictionary but cannot be read: the intake's PDF check raises
    ``pki.errors.PdfError`` (``pdf.unreadable``), a domain error, which the native API answers with
    422. The e-CMS client gets it as an ErrorDetail in an HTTP 200 answer, never as ECMS-500."""
    broken = base64.b64encode(b"%PDF-1.7\n/ByteRange [0 10 20 30]\nnot really a PDF\n%%EOF\n")
    data = re.sub(rb'(<ram:MainLetterBinaryObject mimeCode="application/pdf">)[^<]*', rb"\g<1>" + broken,
                  _vb_letter_from_20001_to_cmi())
    async with aiohttp.ClientSession() as http:
        async with http.post(str(gateway.make_url(ECMS_PATH)) + "?token=dev-token-ops-moe", data=data) as resp:
            body = await resp.read()
    assert resp.status == 200, body[:500]
    codes = errors(body)
    assert codes == ["ECMS-309"], body[:500]  # refused, the description names the reason
    detail = next(etree.fromstring(body).iter("ErrorDetail"))
    assert detail.findtext("ErrorDescription").startswith("[pdf.unreadable")
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0
