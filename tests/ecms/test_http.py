"""Real HTTP on loopback: the SOAP route with token auth, and the legacy-node adapter
against an aiohttp server playing an e-CMS node."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from lxml import etree

from adapters.base import Delivered, OutboundDelivery, Permanent, Retry
from adapters.ecms_node import EcmsNodeAdapter
from conformance.ecms.runner import run
from gateway.core.directory import Route
from gateway.core.ecmswire import mapping, reading, soap
from gateway.core.envelope_builder import build_envelope
from gateway.ecms.endpoint import setup_routes
from gateway.ecms.handler import EcmsFacade
from gateway.ecms.settings import ECMS_PATH, EcmsSettings
from tests.ecms.conftest import T0, load_vector
from tests.ecms.helpers import body_child, errors, request


@pytest.fixture
async def gateway_url(facade):
    app = web.Application()
    setup_routes(app, facade)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url(ECMS_PATH))
    await server.close()


async def test_soap_over_http_with_token_in_url_or_header(gateway_url):
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway_url + "?token=t-11008", data=load_vector("letter-vb-linqws"),
                             headers={"Content-Type": "text/xml"}) as resp:
            assert resp.status == 200 and resp.content_type == "text/xml"
            body = await resp.read()
        assert errors(body) == [] and body_child(body).findtext("ProcessID").startswith("ecms.")
        async with http.post(gateway_url, data=request(soap.U.CorrespondenceLetterInboundRequest()),
                             headers={"Authorization": "Bearer t-11002"}) as resp:
            pulled = body_child(await resp.read())
        assert next(pulled.iter(f"{{{soap.RAM_NS}}}ID")).text == "อก 0905/0007"
        async with http.post(gateway_url, data=request(soap.U.GetSpeedCodes()),
                             headers={"Authorization": "Bearer wrong"}) as resp:
            assert errors(await resp.read()) == ["ECMS-200"]
        # not XML: e-CMS clients throw on anything but 200 and never read the body, so 200 + ErrorDetail
        async with http.post(gateway_url, data=b"<a/>" * 10) as resp:
            assert resp.status == 200 and errors(await resp.read()) == ["ECMS-100"]
        # a generated SOAP stack (it sends SOAPAction) reads SOAP 1.1 faults from HTTP 500
        async with http.post(gateway_url, data=b"<a/>" * 10, headers={"SOAPAction": '""'}) as resp:
            body = await resp.read()
            assert resp.status == 500 and errors(body) == ["ECMS-100"] and b"Fault" in body


async def test_oversize_body_is_413(exchange, clock):
    app = web.Application()
    setup_routes(app, EcmsFacade(exchange, settings=EcmsSettings(max_bytes=1000), clock=clock.now))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(server.make_url(ECMS_PATH), data=load_vector("letter-vb-linqws")) as resp:
                assert resp.status == 413 and errors(await resp.read()) == ["ECMS-102"]
    finally:
        await server.close()


# ----------------------------------------------------------------- legacy node adapter


class LegacyNode:
    """An e-CMS node that fails the first ``failures`` attempts with ``fail_status``, then accepts;
    it remembers wsa:MessageIDs and answers a repeat with its duplicate ErrorCode."""

    def __init__(self, failures: int = 0, fail_status: int = 503, duplicate_code: str = "E-DUP") -> None:
        self.failures = failures
        self.fail_status = fail_status
        self.duplicate_code = duplicate_code
        self.seen: dict[str, bytes] = {}
        self.requests: list[bytes] = []
        self.stall = False

    async def handle(self, request: web.Request) -> web.Response:
        data = await request.read()
        self.requests.append(data)
        if self.stall:
            await asyncio.sleep(5)
        if self.failures > 0:
            self.failures -= 1
            return web.Response(status=self.fail_status, text="busy")
        root = etree.fromstring(data)
        mid = root.findtext(f".//{{{soap.WSA_NS}}}MessageID")
        if mid in self.seen:
            answer = soap.response("CorrespondenceLetterOutboundResponse", process_id="", at=T0,
                                   errors=[(self.duplicate_code, "already received")])
        else:
            self.seen[mid] = data
            answer = soap.response("CorrespondenceLetterOutboundResponse", process_id=f"P{len(self.seen)}", at=T0)
        return web.Response(body=soap.serialize(soap.envelope(answer)), content_type="text/xml")


@pytest.fixture
async def node():
    legacy = LegacyNode()
    app = web.Application()
    app.router.add_post(ECMS_PATH, legacy.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    legacy.url = str(server.make_url(ECMS_PATH))
    yield legacy
    await server.close()


def _delivery(node, directory, attempt=1, **settings) -> OutboundDelivery:
    req = soap.parse_request(load_vector("letter-vb-linqws"))
    letter = reading.read_letter(req.body.find(f"{{{soap.RSM_NS}}}GovernmentDocument"))
    env = mapping.letter_to_envelope(letter, sender="11008", message_id="ecms.test", created_at=T0,
                                     directory=directory)
    return OutboundDelivery(delivery_id=uuid.UUID(int=7), message_id="ecms.test", sender="11008",
                            recipient="11002", envelope=build_envelope(env),
                            route=Route("ecms", {"url": node.url, "timeout_s": 2, **settings}), attempt=attempt)


async def test_node_fails_twice_then_accepts_and_dedups(node, directory):
    node.failures = 2
    async with aiohttp.ClientSession() as http:
        adapter = EcmsNodeAdapter(http)
        d = _delivery(node, directory, duplicate_codes=["E-DUP"])
        outcomes = [await adapter.deliver(d) for _ in range(3)]
        assert [type(o) for o in outcomes] == [Retry, Retry, Delivered]
        assert outcomes[0].reason == "http 503"
        # a retry after a lost answer: the node knows the delivery id and says so
        again = await adapter.deliver(d)
        assert isinstance(again, Delivered)
    sent = etree.fromstring(node.requests[-1])
    assert sent.findtext(f".//{{{soap.WSA_NS}}}MessageID") == f"urn:uuid:{uuid.UUID(int=7)}"
    assert next(sent.iter(f"{{{soap.RAM_NS}}}ID")).text == "อก 0905/0007"
    # what the node got validates against the e-CMS schema the gateway itself enforces
    soap.parse_request(node.requests[-1])


async def test_node_refusals_are_permanent(node, directory):
    async with aiohttp.ClientSession() as http:
        adapter = EcmsNodeAdapter(http)
        node.failures, node.fail_status = 1, 400
        assert isinstance(await adapter.deliver(_delivery(node, directory)), Permanent)
        node.failures, node.fail_status = 1, 429
        assert isinstance(await adapter.deliver(_delivery(node, directory)), Retry)
        await adapter.deliver(_delivery(node, directory))  # accepted
        refused = await adapter.deliver(_delivery(node, directory))  # duplicate code not configured
        assert isinstance(refused, Permanent) and "E-DUP" in refused.reason


async def test_node_timeout_and_connection_refused_retry(node, directory):
    async with aiohttp.ClientSession() as http:
        adapter = EcmsNodeAdapter(http)
        node.stall = True
        out = await adapter.deliver(_delivery(node, directory, timeout_s=0.2))
        assert out == Retry("timeout")
        d = _delivery(node, directory)
        closed = OutboundDelivery(**{**d.__dict__, "route": Route("ecms", {"url": "http://127.0.0.1:9/ecms-ws01/service2"})})
        assert isinstance(await adapter.deliver(closed), Retry)


async def test_conformance_runner_against_the_facade(gateway_url, capsys):

    assert await run(gateway_url, "t-11008") == 0
    assert "0 failed" in capsys.readouterr().out


async def test_conformance_conversations_against_the_facade(gateway_url, capsys):
    """The kit's client conversations (conformance/ecms/conversations, recorded from the replays in
    test_clients_*.py) pass against the facade, twice in a row on the same gateway."""
    assert await run(gateway_url, "t-11008", token_b="t-11002") == 0
    assert await run(gateway_url, "t-11008", token_b="t-11002") == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "boi-dms 34 A refused: truncated XML" in out and "mil-doc 38 B refused" in out
