"""Admission of e-CMS clients that send no credential, on real loopback listeners and real PostgreSQL:
a URL key over the main TLS listener and the legacy TLS listener (TLS 1.0, RSA and CBC), the source
network on the legacy plain-HTTP listener; each admits the right agency, refuses the wrong key,
network or transport, records its mode on the letter, and nothing is stored for a refusal.
"""

from __future__ import annotations

import datetime as dt
import ssl

import aiohttp
import pytest
from lxml import etree

from gateway.core import appkeys as keys
from gateway.core.admission import KeyThrottle, describe_admission, with_key_revoked
from gateway.core.ecmswire import soap
from gateway.ecms.settings import ECMS_PATH
from tests.ecms.admission_world import (
    CMI,
    ECMS_AGENCY,
    keyed,
    legacy_tls_client,
    letter,
    post,
    post_tls,
    start_world,
)
from tests.ecms.helpers import body_child, errors, request

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
async def world(database_url, workdir, dev_pki):
    w, runner = await start_world(database_url, workdir, dev_pki, throttle=KeyThrottle(limit=3))
    yield w
    await runner.cleanup()


def _description(body: bytes) -> str:
    return " ".join(e.findtext("ErrorDescription") or "" for e in etree.fromstring(body).iter("ErrorDetail"))


def _pull() -> bytes:
    return request(soap.U.CorrespondenceLetterInboundRequest())


def _delete(process_id: str) -> bytes:
    return request(soap.U.CorrespondenceLetterDeleteRequest(soap.U.ProcessID(process_id)))


async def test_url_key_over_the_main_tls_listener_admits_its_agency_only(world):
    key = await world.issue_key(ECMS_AGENCY)
    url = keyed(world.main_url, key)
    status, body = await post(url, letter(), ssl_context=world.main_ssl())
    assert status == 200 and errors(body) == [], body[:600]
    pid = body_child(body).findtext("ProcessID")
    facts = await world.accepted_facts(pid)
    assert facts["admission"] == "url_key" and "listener" not in facts and "transport" not in facts  # main, TLS
    assert facts["peer"] == "127.0.0.1" and len(facts["url_key_id"]) == 8 and key not in str(facts)
    assert "กุญแจใน URL" in describe_admission(facts) and "HTTPS" in describe_admission(facts)

    # it sends only as itself: a letter naming another sender is refused, nothing stored
    stored = await world.messages()
    status, body = await post(url, letter(sender="11008"), ssl_context=world.main_ssl())
    assert status == 200 and errors(body) == ["ECMS-201"], body[:600]
    assert await world.messages() == stored

    # ... and pulls only its own inbox: the letter it sent is Chiang Mai's, not its own
    status, body = await post(url, _pull(), ssl_context=world.main_ssl())
    assert status == 200 and errors(body) == [] and body_child(body).findtext("ProcessID") is None
    cmi_item = (await world.app[keys.EXCHANGE].inbox.inbox(CMI))[0]
    status, body = await post(url, _delete(str(cmi_item.delivery_id)), ssl_context=world.main_ssl())
    assert errors(body) == ["ECMS-307"], body[:600]


async def test_unknown_revoked_and_rotated_keys(world):
    old = await world.issue_key(ECMS_AGENCY)
    stored = await world.messages()
    status, body = await post(keyed(world.main_url, "x" * 43), letter(), ssl_context=world.main_ssl())
    assert status == 200 and errors(body) == ["ECMS-200"] and "auth.unknown_key" in _description(body)
    assert await world.messages() == stored

    # a rotation: the old key keeps working until it is revoked, the new one from now on
    new = await world.issue_key(ECMS_AGENCY)
    for key in (old, new):
        status, body = await post(keyed(world.main_url, key), _pull(), ssl_context=world.main_ssl())
        assert errors(body) == [], body[:400]
    old_id = [k for k in await _key_ids(world)][0]
    await world.admission(ECMS_AGENCY, lambda adm: with_key_revoked(adm, old_id, _now()))
    status, body = await post(keyed(world.main_url, old), _pull(), ssl_context=world.main_ssl())
    assert errors(body) == ["ECMS-200"] and "auth.unknown_key" in _description(body)
    status, body = await post(keyed(world.main_url, new), _pull(), ssl_context=world.main_ssl())
    assert errors(body) == []


async def test_repeated_unknown_keys_from_one_address_are_slowed_down_but_a_valid_key_still_works(world):
    key = await world.issue_key(ECMS_AGENCY)
    codes = []
    for i in range(5):
        _, body = await post(keyed(world.main_url, f"guess{i:040d}"), _pull(), ssl_context=world.main_ssl())
        codes.append((errors(body), "auth.too_many_attempts" in _description(body)))
    assert codes[:3] == [(["ECMS-200"], False)] * 3
    assert codes[3:] == [(["ECMS-200"], True)] * 2
    assert "retry in" in _description(body)
    _, body = await post(keyed(world.main_url, key), _pull(), ssl_context=world.main_ssl())
    assert errors(body) == []


async def test_a_url_key_is_refused_over_plain_http(world):
    key = await world.issue_key(ECMS_AGENCY)
    stored = await world.messages()
    status, body = await post(keyed(world.legacy_http, key), letter())
    assert status == 200 and errors(body) == ["ECMS-200"], body[:400]
    assert "auth.key_over_plain_http" in _description(body) and key not in body.decode()
    assert await world.messages() == stored


async def test_legacy_plain_http_admits_by_source_network_from_the_tcp_peer(world):
    await world.set_networks(ECMS_AGENCY, "127.0.0.1/32")
    await world.set_networks(CMI, "127.0.0.3/32")
    url = world.legacy_http + ECMS_PATH

    status, body = await post(url, letter())
    assert status == 200 and errors(body) == [], body[:600]
    facts = await world.accepted_facts(body_child(body).findtext("ProcessID"))
    assert (facts["admission"], facts["listener"], facts["transport"], facts["peer"]) == \
        ("network", "legacy", "http", "127.0.0.1")
    note = describe_admission(facts)
    assert "127.0.0.1" in note and "legacy listener" in note and note.startswith("รับทาง")

    # Chiang Mai from its own network pulls the letter, over the same listener
    status, body = await post(url, _pull(), local="127.0.0.3")
    assert errors(body) == [] and body_child(body).findtext("ProcessID"), body[:600]

    # an address in no registered network is refused, whatever X-Forwarded-For says; nothing stored
    stored = await world.messages()
    status, body = await post(url, letter(number="อก 0905/0008"), local="127.0.0.2",
                                 headers={"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1"})
    assert status == 200 and errors(body) == ["ECMS-200"] and "auth.unknown_network" in _description(body)
    assert "127.0.0.2" in _description(body)
    assert await world.messages() == stored

    # from Chiang Mai's network the caller is Chiang Mai: 20001's letter is not its to send
    status, body = await post(url, letter(number="อก 0905/0009"), local="127.0.0.3")
    assert errors(body) == ["ECMS-201"]
    assert await world.messages() == stored


@pytest.mark.parametrize(("code", "name"), [("002", "ลับ"), ("003", "ลับมาก")])
async def test_secret_letters_are_refused_over_plain_http(world, code, name):
    await world.set_networks(ECMS_AGENCY, "127.0.0.0/8")
    stored = await world.messages()
    status, body = await post(world.legacy_http + ECMS_PATH, letter(secret=code))
    assert status == 200 and errors(body) == ["ECMS-303"], body[:600]
    assert "policy.secret_over_plain_http" in _description(body) and name in _description(body)
    assert await world.messages() == stored


async def test_legacy_tls_1_0_with_rsa_cbc_admits_by_key_and_by_network(world):
    key = await world.issue_key(ECMS_AGENCY)
    client = legacy_tls_client(world.anchors)
    status, body, version = await post_tls(keyed(world.legacy_https, key), letter(secret="002"), client)
    assert status == 200 and errors(body) == [] and version == "TLSv1", (version, body[:600])
    facts = await world.accepted_facts(body_child(body).findtext("ProcessID"))
    assert (facts["admission"], facts["listener"], facts.get("transport")) == ("url_key", "legacy", None)

    # by network over TLS 1.1 too (a letter marked ลับ is fine over TLS)
    await world.set_networks(ECMS_AGENCY, "127.0.0.1/32")
    status, body, version = await post_tls(world.legacy_https + ECMS_PATH, letter(secret="002", number="อก 0905/0010"),
                                           legacy_tls_client(world.anchors, ssl.TLSVersion.TLSv1_1))
    assert status == 200 and errors(body) == [] and version == "TLSv1.1", (version, body[:600])
    facts = await world.accepted_facts(body_child(body).findtext("ProcessID"))
    assert (facts["admission"], facts.get("transport")) == ("network", None)  # over TLS

    # the main listener still offers nothing older than TLS 1.2
    with pytest.raises(OSError):  # a handshake alert (SSLError) or the connection reset
        await post_tls(keyed(world.main_url, key), _pull(), legacy_tls_client(world.anchors))


async def test_the_legacy_listener_serves_the_ecms_endpoint_only(world):
    await world.set_networks(ECMS_AGENCY, "127.0.0.1/32")
    async with aiohttp.ClientSession() as http:
        for method, path in (("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/v1/inbox"),
                             ("POST", "/v1/messages"), ("GET", "/console"), ("GET", "/console/login"),
                             ("GET", "/v1/openapi.json"), ("GET", "/"), ("GET", ECMS_PATH), ("PUT", ECMS_PATH),
                             ("POST", ECMS_PATH + "/x"), ("POST", "/ecms-ws01/service1")):
            async with http.request(method, world.legacy_http + path,
                                    headers={"Authorization": "Bearer dev-token-ops-moe"}) as r:
                text = await r.text()
                assert r.status in (404, 405) and "only the e-CMS endpoint" in text, (method, path, r.status)
    # ... while the main listener still serves them
    async with aiohttp.ClientSession() as http, http.get(world.main_url + "/healthz", ssl=world.main_ssl()) as r:
        assert r.status == 200


@pytest.mark.parametrize("body", [
    b"not xml at all",
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "x">]><x>&e;</x>',
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><Nope/></s:Body></s:Envelope>',
    b"<a>" * 5000,
])
async def test_bad_input_on_the_legacy_listener_is_refused_like_everywhere_else(world, body):
    await world.set_networks(ECMS_AGENCY, "127.0.0.1/32")
    stored = await world.messages()
    status, answer = await post(world.legacy_http + ECMS_PATH, body)
    assert status in (200, 500) and errors(answer), answer[:400]  # an ErrorDetail (a Fault carries one too)
    assert all(code.startswith("ECMS-1") for code in errors(answer)), errors(answer)
    assert await world.messages() == stored


async def test_a_broken_letter_on_the_legacy_listener_names_the_field_and_stores_nothing(world):
    await world.set_networks(ECMS_AGENCY, "127.0.0.1/32")
    stored = await world.messages()
    bad = letter().replace(b"<ram:CorrespondenceDate>2012-09-07</ram:CorrespondenceDate>",
                           b"<ram:CorrespondenceDate>07/09/2555</ram:CorrespondenceDate>")
    status, body = await post(world.legacy_http + ECMS_PATH, bad)
    assert status == 200 and errors(body) == ["ECMS-105"] and "CorrespondenceDate" in _description(body), body[:600]
    assert await world.messages() == stored


async def _key_ids(world) -> list[str]:
    agency = world.app[keys.DIRECTORY].get(ECMS_AGENCY)
    return [k.id for k in agency.ecms_admission.keys]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
