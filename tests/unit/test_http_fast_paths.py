"""Per-request work cut from the HTTP edge, each against the way it replaced."""

import os
import uuid

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.http import api
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
