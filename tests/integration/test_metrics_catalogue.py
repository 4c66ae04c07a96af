"""Every metric the shipped alert rules and the Grafana dashboard query exists in a real ``/metrics`` scrape.

A rule or a panel on a metric that does not exist is silent forever; this is what catches a rename.
A metric that another issue adds is listed in :data:`PENDING` with that issue, so it is never skipped
silently; once it appears in ``/metrics`` the entry must go (the test says so).
"""

from __future__ import annotations

import importlib.util
import json
import re

import yaml

from tests.support import CMI, OPM, ROOT, TOKENS, letter_bytes

ALERTS = ROOT / "config" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "config" / "grafana" / "saraban-gateway.json"

_spec = importlib.util.spec_from_file_location("grafana_build", ROOT / "config" / "grafana" / "build.py")
assert _spec is not None and _spec.loader is not None
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

#: Metrics that Prometheus itself makes, not the gateway.
PROMETHEUS_OWN = {"up"}
#: Metrics a rule uses that another issue adds, with the issue and the rule group that holds them apart.
PENDING: dict[str, tuple[str, str]] = {}


def metric_names(expr: str) -> set[str]:
    return {m for m in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if m.startswith("gateway_") or m == "up"}


def rule_exprs() -> dict[str, tuple[str, str]]:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return {r["alert"]: (r["expr"], g["name"]) for g in doc["groups"] for r in g["rules"]}


def dashboard_exprs() -> dict[str, str]:
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return {f'{p["title"]} [{t["refId"]}]': t["expr"] for p in doc["panels"] for t in p.get("targets", [])}


def exposed(text: str) -> set[str]:
    """The sample names a scrape can return: each family's TYPE line, with a histogram's series."""
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


async def scrape(make_client) -> str:
    client = await make_client(routes={CMI: {"kind": "push", "url": "http://127.0.0.1:9/x"}})
    headers = {"Authorization": f"Bearer {TOKENS[OPM]}", "Content-Type": "application/xml"}
    assert (await client.post("/v1/messages", data=letter_bytes(recipients=(CMI,)), headers=headers)).status == 202
    assert (await client.post("/v1/messages", data=b"junk", headers=headers)).status == 400
    r = await client.get("/metrics")
    assert r.status == 200
    return await r.text()


async def test_every_metric_an_alert_rule_uses_exists(make_client):
    have = exposed(await scrape(make_client)) | PROMETHEUS_OWN
    missing = {}
    for alert, (expr, group) in rule_exprs().items():
        for name in metric_names(expr) - have:
            if name in PENDING:
                issue, pending_group = PENDING[name]
                assert group == pending_group, f"{alert} uses {name} ({issue}): keep it in group {pending_group}"
                continue
            missing[alert] = name
    assert missing == {}
    assert len(have) > 20


async def test_pending_metrics_are_still_pending(make_client):
    """Explicit, not silent: each metric listed as pending another issue is used by a rule and is not in
    /metrics yet; when it lands, drop it from PENDING so the test above checks it like any other."""
    have = exposed(await scrape(make_client))
    used = set().union(*(metric_names(expr) for expr, _ in rule_exprs().values()))
    for name, (issue, _group) in PENDING.items():
        assert name in used, f"{name} is listed as pending but no rule uses it"
        assert name not in have, f"{name} ({issue}) is in /metrics now: remove it from PENDING"


async def test_every_metric_the_dashboard_queries_exists(make_client):
    have = exposed(await scrape(make_client))
    used = {title: metric_names(expr) for title, expr in dashboard_exprs().items()}
    assert all(used.values()), "a query without a gateway metric"
    assert {title: names - have for title, names in used.items() if names - have} == {}
    # it shows the figures the operators asked for
    every = set().union(*used.values())
    for needed in ("gateway_messages_accepted_total", "gateway_submit_seconds_bucket", "gateway_queue_deliveries",
                   "gateway_queue_oldest_seconds", "gateway_destination_failing_seconds",
                   "gateway_dead_letters_waiting", "gateway_agency_certificates_expiring",
                   "gateway_audit_sealing_lag_seconds", "gateway_database_up"):
        assert needed in every, needed


def test_the_dashboard_is_the_generators_output_with_thai_titles_first():
    assert DASHBOARD.read_text(encoding="utf-8") == build.render(), "run: python config/grafana/build.py"
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    titles = [doc["title"]] + [p["title"] for p in doc["panels"]]
    for title in titles:
        assert "\u0e00" <= title[0] <= "\u0e7f" and "(" in title, title
