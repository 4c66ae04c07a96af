"""The OpenAPI document kept in the repo describes exactly the routes the app serves."""

import json
import re

from aiohttp import web

from gateway.http.routes import setup_routes
from tests.support import ROOT


def test_every_route_is_documented_and_every_documented_route_exists():
    doc = json.loads((ROOT / "gateway" / "http" / "openapi.json").read_text(encoding="utf-8"))
    assert doc["openapi"].startswith("3.1")
    app = web.Application()
    setup_routes(app)
    served = {(r.method.lower(), re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", r.resource.canonical))
              for r in app.router.routes()
              if r.method != "HEAD" and r.resource is not None and not r.resource.canonical.startswith("/console")}
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented
