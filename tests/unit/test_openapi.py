"""The OpenAPI document kept in the repo describes exactly the routes the app serves."""

import json
import re

from gateway.http import auditor_api
from gateway.http.api import routes
from tests.support import ROOT


def test_every_route_is_documented_and_every_documented_route_exists():
    doc = json.loads((ROOT / "gateway" / "http" / "openapi.json").read_text(encoding="utf-8"))
    assert doc["openapi"].startswith("3.1")
    served = {(r.method.lower(), re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", r.path))
              for r in list(routes) + list(auditor_api.routes)}
    served.add(("post", "/ecms-ws01/service2"))
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented
