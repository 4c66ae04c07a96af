"""Per-request work cut from the HTTP edge, each against the way it replaced."""

import os
import uuid

import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from gateway.core import appkeys as keys
from gateway.core.errors import AuthError
from gateway.core.logging import log_context
from gateway.core.settings import Settings
from gateway.http import api, auth
from gateway.http.console import _console_only


def test_request_ids_are_the_bits_uuid4_makes():
    for b in [bytes(16), b"\xff" * 16, *(os.urandom(16) for _ in range(2000))]:
        assert api.uuid4_hex(b) == uuid.UUID(bytes=b, version=4).hex
    made = {api.new_request_id() for _ in range(1000)}
    assert len(made) == 1000
    assert all(uuid.UUID(hex=i).version == 4 and uuid.UUID(hex=i).variant == uuid.RFC_4122 for i in made)


async def test_console_middlewares_run_for_console_paths_only_and_in_their_order():
    seen: list[tuple[str, str]] = []

    def recording(name):
        @web.middleware
        async def mw(request, handler):
            seen.append((name, request.path))
            response = await handler(request)
            response.headers[f"X-{name}"] = "1"
            return response
        return mw

    async def ok(request):
        return web.Response(text="ok")

    app = web.Application(middlewares=[recording("outer")])
    app.middlewares.extend([recording("session"), recording("templates")])
    _console_only(app, 2)
    app.router.add_get("/console/x", ok)
    app.router.add_get("/v1/x", ok)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        r = await client.get("/console/x")
        assert r.status == 200 and {"X-outer", "X-session", "X-templates"} <= set(r.headers)
        assert seen == [("outer", "/console/x"), ("session", "/console/x"), ("templates", "/console/x")]
        seen.clear()
        r = await client.get("/v1/x")
        assert r.status == 200 and "X-outer" in r.headers and "X-session" not in r.headers
        assert seen == [("outer", "/v1/x")]
    finally:
        await client.close()


def test_request_ids_come_from_the_kernel_a_page_at_a_time_and_never_repeat_across_a_fork():
    pool = api._Random16()
    drawn = [pool.take() for _ in range(api._Random16.PAGE // 16 * 3)]
    assert all(len(b) == 16 for b in drawn) and len(set(drawn)) == len(drawn)  # three pages, no byte reused
    api.new_request_id()  # the module's pool holds a page now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the id it makes next
        os.write(write, api.new_request_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert len(child) == 32 and child != api.new_request_id()  # without the drop at fork both would be equal


def _body_app(limit: int) -> web.Application:
    """The API's error middleware and :func:`api.read_body` under a limit of ``limit`` bytes; the handler
    answers with what it read, beside what ``request.read()`` (the old way) would have read."""
    async def echo(request):
        return web.Response(body=await api.read_body(request))

    app = web.Application(client_max_size=limit, middlewares=[api.error_middleware])
    app[keys.SETTINGS] = Settings(max_body_bytes=limit)
    app.router.add_post("/v1/x", echo)
    return app


async def test_a_body_read_as_it_lies_is_the_body_and_keeps_the_limit():
    client = TestClient(TestServer(_body_app(100)))
    await client.start_server()
    try:
        for body in (b"", b"x", bytes(range(100)), "ไทย".encode() * 11):
            r = await client.post("/v1/x", data=body)  # Content-Length: the body arrives with its headers
            assert (r.status, await r.read()) == (200, body)

        async def chunks(parts):
            for p in parts:
                yield p

        # chunked (no Content-Length): the limit is the only guard, whether the body is all there or trickles
        for parts, status in (([b"a" * 60, b"b" * 40], 200), ([b"a" * 60, b"b" * 41], 413), ([b"c" * 101], 413)):
            r = await client.post("/v1/x", data=chunks(parts))
            assert r.status == status, parts
            if status == 200:
                assert await r.read() == b"".join(parts)
            else:
                assert (await r.json())["code"] == "request.too_large"
    finally:
        await client.close()


def test_log_context_sets_the_variables_structlog_binds_and_merges():
    structlog.contextvars.clear_contextvars()
    with log_context(request_id="r1", method="POST"):
        structlog.contextvars.bind_contextvars(message_id="m1")  # intake binds beside it, structlog's way
        event = structlog.contextvars.merge_contextvars(None, "info", {"event": "x"})
        assert event == {"event": "x", "request_id": "r1", "method": "POST", "message_id": "m1"}
        with log_context(request_id="r2"):
            assert structlog.contextvars.get_contextvars()["request_id"] == "r2"
        assert structlog.contextvars.get_contextvars()["request_id"] == "r1"
    assert structlog.contextvars.get_contextvars() == {"message_id": "m1"}
    structlog.contextvars.clear_contextvars()


async def test_require_agency_refuses_as_require_for_the_agency_role_does():
    for role in auth.ROLES:
        request = make_mocked_request("POST", "/v1/messages")
        request[auth.PRINCIPAL] = auth.Principal(role=role, agency="0100000000" if role == auth.AGENCY else None,
                                                 subject=f"user:{role}", method="token")
        outcomes = []
        for way in (lambda r: auth.require(r, auth.AGENCY), auth.require_agency):
            try:
                outcomes.append(await way(request))
            except AuthError as exc:
                outcomes.append((type(exc).__name__, str(exc), exc.code, exc.field))
        if role == auth.AGENCY:
            assert outcomes == [request[auth.PRINCIPAL], "0100000000"]
        else:
            assert outcomes[0] == outcomes[1] and outcomes[0][2] == "auth.forbidden"
