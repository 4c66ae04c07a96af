"""API fuzzing from the OpenAPI document: schemathesis against a real gateway.

Every operation of ``gateway/http/openapi.json`` (the bytes ``GET /v1/openapi.json`` serves, checked
below) is fuzzed with schemathesis's phases (the document's examples, coverage of each constraint's
edges, then random valid and invalid requests) on a real gateway (real aiohttp server on loopback,
real PostgreSQL, a few seeded letters). Each request goes as the operation's own role (agency,
auditor, operator; none for the public ones) or, now and then, as another one or nobody.

The oracle, for every answer: no 5xx (the e-CMS endpoint: a 500 only as a SOAP *Client* fault,
as SOAP 1.1 has it), and the status, content type, headers and body exactly as documented for
that operation (error bodies ``{code, field?, message, request_id}`` with a code from the
status's enumeration).

Examples per operation: 50 in ``make test``; ``SCHEMATHESIS_EXAMPLES=1000`` (``make fuzz-explore``)
explores with random seeds. A failure prints the request as a curl command.

Generation leans on what an attacker tries first: a fuzz dictionary of hostile values (NUL bytes,
times at the edges of the calendar, int64 bounds, long Thai text, real ids) and hooks that put one
into a path, query or header value one time in four.

The requests the fuzzer found answered wrongly while issue 13 was open are pinned in
tests/fuzz/found.py (:func:`test_found_requests`). ``test-artifacts/fuzz/schemathesis.json``
counts the answers per operation and status.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from importlib.resources import files
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from lxml import etree
from schemathesis import Case, Response
from schemathesis.specs.openapi import checks as oas_checks

from gateway.core.ecmswire import soap
from gateway.http.errors import status_for
from pki.devca import DevPki
from tests.fuzz import found
from tests.fuzz import live as live_gateway
from tests.fuzz.properties import ARTIFACTS
from tests.integration.test_error_edges import raised_codes
from tests.support import CMI, KKN, OPM

DOCUMENT = files("gateway.http").joinpath("openapi.json")
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "50"))
#: Above the default count: random seeds and shrinking (a developer hunting); else the same examples every run.
EXPLORE = EXAMPLES > 50
#: (operation, answer status) -> requests sent; written to test-artifacts/fuzz/schemathesis.json.
SEEN: Counter[tuple[str, int]] = Counter()

#: Values an attacker tries first, mixed into every string and integer schemathesis generates (a
#: fuzz dictionary: valid ones in positive mode, the others in negative mode): NUL bytes, times at
#: the edges of the calendar (plain and inside a keyset cursor), bounds of int64, long Thai text,
#: and real ids of the seeded letters and agencies, so that requests get past "not found".
HOSTILE = [
    "\x00", "x\x00", "\x00" * 3, "ก\x00ข", "%00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2404-02-29", "0001-01-01", "infinity", "-infinity",
    base64.urlsafe_b64encode(b"0001-01-01T00:00:00+14:00|1").decode(),
    base64.urlsafe_b64encode(b"9999-12-31T23:59:59-14:00|9223372036854775807").decode(),
    base64.urlsafe_b64encode(b"x\x00|1").decode(), "ก" * 256, "A" * 257, "\u202e\ufeff", "../../etc/passwd",
    "' OR 1=1--", "seeded-0", "seeded-1", OPM, CMI, KKN, "11008", "message.accepted",
]
INTEGERS = [0, -1, 1, 1000, 1001, 9223372036854775807, 9223372036854775808, -9223372036854775809]
FORBIDDEN_IN_HEADERS = "".join(map(chr, [*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F]))
config = schemathesis.Config.from_dict({
    "dictionaries": {"hostile": {"values": HOSTILE}, "integers": {"values": INTEGERS}},
    # characters RFC 9110 forbids in a field value: aiohttp's parser answers them before the app sees the request
    "generation": {"max-examples": EXAMPLES, "exclude-header-characters": FORBIDDEN_IN_HEADERS, "dictionaries": {
        "string": {"dictionary": "hostile", "probability": 0.25},
        "integer": {"dictionary": "integers", "probability": 0.2}}},
})
schema = schemathesis.openapi.from_path(str(DOCUMENT), config=config)
schema.config.update(base_url="http://127.0.0.1")  # replaced per call by the live gateway's address
#: Header values that are not UTF-8 once sent (requests sends a header as Latin-1), or not printable.
HOSTILE_HEADERS = ["\xff\xfe", "caf\xe9", "x" * 300]


def _hostile(values: dict[str, Any] | None, pool: list[str]) -> st.SearchStrategy[dict[str, Any] | None]:
    """The generated values, or (one time in four) the same with one string replaced by a hostile one."""
    keys = sorted(k for k, v in (values or {}).items() if isinstance(v, str))
    if values is None or not keys:
        return st.just(values)
    return st.integers(0, 3).flatmap(lambda n: st.just(values) if n else st.tuples(
        st.sampled_from(keys), st.sampled_from(pool)).map(lambda kv: {**values, kv[0]: kv[1]}))


@schema.hook
def flatmap_path_parameters(context: schemathesis.HookContext,
                            path_parameters: dict[str, Any] | None) -> st.SearchStrategy[dict[str, Any] | None]:
    return _hostile(path_parameters, HOSTILE)  # (schemathesis alone rarely puts a NUL in a path)


@schema.hook
def flatmap_query(context: schemathesis.HookContext,
                  query: dict[str, Any] | None) -> st.SearchStrategy[dict[str, Any] | None]:
    return _hostile(query, HOSTILE)


@schema.hook
def flatmap_headers(context: schemathesis.HookContext,
                    headers: dict[str, Any] | None) -> st.SearchStrategy[dict[str, Any] | None]:
    return _hostile(headers, HOSTILE_HEADERS)


#: The checks of the oracle (schemathesis's own; ``not_a_server_error`` is ours for the e-CMS endpoint).
CHECKS = [oas_checks.status_code_conformance, oas_checks.content_type_conformance,
          oas_checks.response_headers_conformance, oas_checks.response_schema_conformance]


@pytest.fixture(scope="module")
def live(module_database_url: str, tmp_path_factory: pytest.TempPathFactory,
         dev_pki: DevPki) -> Iterator[live_gateway.LiveGateway]:
    loop, gw, gateway = live_gateway.start(module_database_url, tmp_path_factory.mktemp("st"), dev_pki.directory)
    yield gateway
    live_gateway.stop(loop, gw, gateway)
    if SEEN:  # what was sent, per operation and answer status (for the explore profile's report)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        summary: dict[str, dict[str, int]] = {}
        for (label, status), n in sorted(SEEN.items()):
            summary.setdefault(label, {})[str(status)] = n
        (ARTIFACTS / "schemathesis.json").write_text(
            json.dumps({"answers": summary}, indent=1, ensure_ascii=False) + "\n",
            encoding="utf-8")


#: Who calls an operation, by its first tag.
ROLE_OF_TAG = {"agency": "agency", "auditor": "auditor", "operator": "operator", "admin": "admin", "operations": None,
               "e-CMS": "e-CMS"}
OTHERS = ["nobody", "bogus", "agency", "recipient", "auditor", "operator", "clerk", "admin"]


def _authorization(live: live_gateway.LiveGateway, case: Case, who: str) -> dict[str, str]:
    if who == "own":
        role = ROLE_OF_TAG[case.operation.tags[0] if case.operation.tags else "operations"]
        if role is None:
            return {}
        if role == "e-CMS":
            return {"Authorization": "Bearer t-11008"}
        return {"Authorization": f"Bearer {live.tokens[role]}"}
    if who == "nobody":
        return {}
    if who == "bogus":
        return {"Authorization": "Bearer not-a-token"}
    return {"Authorization": f"Bearer {live.tokens[who]}"}


def _soap_client_fault(response: Response) -> bool:
    try:
        root = etree.fromstring(response.content)
    except etree.XMLSyntaxError:
        return False
    fault = root.find(f"{{{soap.SOAP11_NS}}}Body/{{{soap.SOAP11_NS}}}Fault")
    return fault is not None and fault.findtext("faultcode") == "SOAP-ENV:Client"


def oracle(case: Case, response: Response) -> None:
    ecms = case.operation.path.startswith(("/ecms-", "/ecms/"))  # the e-CMS endpoint, with or without a URL key
    if response.status_code >= 500 and not (ecms and response.status_code == 500 and _soap_client_fault(response)):
        raise AssertionError(f"{case.operation.label}: HTTP {response.status_code}\n{case.as_curl_command()}\n"
                             f"{response.text[:500]}")
    case.validate_response(response, checks=CHECKS)


WHO = st.sampled_from(["own"] * 24 + OTHERS)  # three in four as the operation's own role


@schema.parametrize()
@schema.given(who=WHO)
@settings(max_examples=EXAMPLES, deadline=None, derandomize=not EXPLORE, database=None,
          suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.generate, Phase.target] + ([Phase.shrink] if EXPLORE else []))
def test_every_operation_answers_as_documented(case: Case, who: str, live: live_gateway.LiveGateway) -> None:
    headers = _authorization(live, case, who)
    try:
        response = case.call(base_url=live.url, session=live.session, headers=headers, timeout=30)
    except requests.RequestException as exc:  # e.g. a streamed answer cut after its 200 header
        SEEN[(case.operation.label, 0)] += 1
        raise AssertionError(f"{case.operation.label}: the answer broke off: {exc!r}\n"
                             f"{case.as_curl_command()}") from None
    SEEN[(case.operation.label, response.status_code)] += 1
    oracle(case, response)


@pytest.mark.parametrize("sent", [pytest.param(c, id=f"{c.label} {c.query or c.path_parameters or c.headers}"[:120])
                                  for c in found.CASES])
def test_found_requests(sent: found.FoundCase, live: live_gateway.LiveGateway) -> None:
    """The requests the fuzzer found answered wrongly (one per class and operation), with the same oracle."""
    case = schema[sent.path][sent.method.lower()].Case(
        path_parameters=sent.path_parameters, query=sent.query, headers=dict(sent.headers),
        **({"body": sent.body, "media_type": sent.media_type} if sent.media_type else {}))
    try:
        response = case.call(base_url=live.url, session=live.session, headers=_authorization(live, case, sent.role),
                             timeout=30)
    except requests.RequestException as exc:
        raise AssertionError(f"{sent.label} ({sent.why}): the answer broke off: {exc!r}") from None
    assert response.status_code < 500, (sent.why, response.status_code, response.text[:200])
    oracle(case, response)


def test_the_fuzzed_document_is_the_one_the_gateway_serves(live: live_gateway.LiveGateway) -> None:
    served = live.session.get(f"{live.url}/v1/openapi.json", timeout=10)
    assert served.status_code == 200 and served.headers["Content-Type"].startswith("application/json")
    assert served.content == DOCUMENT.read_bytes()


def test_no_default_responses_and_every_parameter_bounded() -> None:
    doc = schema.raw_schema

    def resolve(node: dict) -> dict:
        while "$ref" in node:
            _, section, kind, name = node["$ref"].split("/")
            node = doc[section][kind][name]
        return node

    assert re.match(r"3\.1\.", doc["openapi"])
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "default" not in op["responses"], (method, path)
            for p in map(resolve, op.get("parameters", [])):
                s = p["schema"]
                assert "type" in s, (method, path, p["name"])
                if s["type"] == "string" and "enum" not in s:
                    assert "maxLength" in s, (method, path, p["name"])
            for status, answer in op["responses"].items():
                answer = resolve(answer)
                if int(status) >= 400 and path not in ("/ecms-ws01/service2", "/ecms/{key}/ecms-ws01/service2",
                                                        "/readyz"):
                    (content,) = answer["content"].values()
                    assert "Error" in json.dumps(content["schema"]), (method, path, status)
                    assert answer["headers"]["X-Request-Id"]["required"], (method, path, status)


#: Codes built at run time (f-strings), so not found as literals: the documents the API reads, the router's.
BUILT_CODES = {"envelope.dtd_forbidden", "ack.too_large", "request.too_large", "method_not_allowed"}
#: Codes only the console raises (its forms' CSRF token): never an API answer.
CONSOLE_ONLY = {"auth.csrf"}
#: Codes only the e-CMS edge answers, as an ErrorDetail (how a client without a credential is let in:
#: gateway.core.admission, gateway.ecms.auth): never a native API answer.
ECMS_ONLY = {"auth.key_over_plain_http", "auth.unknown_key", "auth.unknown_network", "policy.secret_over_plain_http"}
API_FAMILIES = ("request", "envelope", "recipient", "attachment", "signature", "certificate", "pdf", "policy", "ack",
                "auth", "throttled", "message", "letter", "inbox", "delivery", "stamp", "not_found",
                "method_not_allowed", "conflict", "unavailable", "agency")


def test_each_error_status_enumerates_exactly_the_codes_that_answer_it() -> None:
    """The document's code enumerations follow gateway/http/errors.py and the codes raised in the tree
    (a new code of an API family must be added to ``ErrorCode<status>`` in openapi.json)."""
    doc = schema.raw_schema
    documented: dict[int, set[str]] = {}
    for name, s in doc["components"]["schemas"].items():
        if name.startswith("ErrorCode"):
            enum = s["anyOf"][0]["enum"] if "anyOf" in s else s["enum"]
            documented[int(name.removeprefix("ErrorCode"))] = set(enum)
    for status, codes in documented.items():
        assert {c: status_for(c) for c in codes if status_for(c) != status} == {}, status
    raised = {c for c in raised_codes() | BUILT_CODES if c.split(".", 1)[0] in API_FAMILIES} - CONSOLE_ONLY - ECMS_ONLY
    missing = sorted((status_for(c), c) for c in raised
                     if (status_for(c) < 500 or status_for(c) == 503) and c not in documented.get(status_for(c), ()))
    assert missing == [], f"add to openapi.json components.schemas.ErrorCode<status>: {missing}"
    unknown = sorted(c for codes in documented.values() for c in codes if c not in raised)
    assert unknown == [], f"documented codes nothing raises: {unknown}"
