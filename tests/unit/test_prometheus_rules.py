"""The shipped alert rules (config/prometheus/alerts.yml): valid for Prometheus, and each one tested.

``promtool check rules`` checks the file; ``promtool test rules`` runs the synthetic series of
config/prometheus/tests/*.yml, in which every rule must be seen both firing and silent. Whether the
metrics the rules name exist in a real scrape is tests/integration/test_metrics_catalogue.py.
promtool is Debian's ``prometheus`` package (``make system-deps``).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.support import ROOT

PROMETHEUS = ROOT / "config" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None,
                                    reason="promtool is not installed (Debian package prometheus: make system-deps)")
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.yml"))


def rules() -> dict[str, dict]:
    doc = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text(encoding="utf-8"))
    return {r["alert"]: {**r, "group": g["name"]} for g in doc["groups"] for r in g["rules"]}


@needs_promtool
def test_promtool_accepts_the_rules():
    run = subprocess.run([PROMTOOL, "check", "rules", "alerts.yml"], cwd=PROMETHEUS, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(rules())} rules found" in run.stdout


@needs_promtool
@pytest.mark.parametrize("path", TEST_FILES, ids=[p.name for p in TEST_FILES])
def test_promtool_rule_tests_pass(path):
    run = subprocess.run([PROMTOOL, "test", "rules", str(path.relative_to(PROMETHEUS))], cwd=PROMETHEUS,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


@needs_promtool
def test_a_wrong_expectation_fails_promtool(tmp_path):
    """The harness can fail: the same tests with one expected annotation changed are refused."""
    text = TEST_FILES[0].read_text(encoding="utf-8")
    assert "35m 0s" in text
    broken = PROMETHEUS / "tests" / f".broken-{tmp_path.name}.yml"
    broken.write_text(text.replace("35m 0s", "36m 0s"), encoding="utf-8")
    try:
        run = subprocess.run([PROMTOOL, "test", "rules", str(broken.relative_to(PROMETHEUS))], cwd=PROMETHEUS,
                             capture_output=True, text=True, timeout=120)
    finally:
        broken.unlink()
    assert run.returncode != 0 and "GatewayOfficeCircuitOpen" in run.stdout + run.stderr


def test_every_rule_is_seen_firing_and_silent():
    firing: set[str] = set()
    silent: set[str] = set()
    for path in TEST_FILES:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert doc["rule_files"] == ["../alerts.yml"], path
        for t in doc["tests"]:
            for case in t.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = set(rules())
    assert names - firing == set(), "rules never seen firing"
    assert names - silent == set(), "rules never seen silent"
    assert (firing | silent) - names == set(), "tests of rules that do not exist"


def test_every_rule_has_a_severity_and_a_thai_summary_first():
    for name, rule in rules().items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        summary = rule["annotations"]["summary"]
        assert "\u0e00" <= summary[0] <= "\u0e7f", f"{name}: the summary starts in Thai"
        assert "(" in summary, f"{name}: the English words follow in brackets"
