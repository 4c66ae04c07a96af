"""Multiprocess metrics name their files by a process id kept without a system call per increment
(gateway.core.metrics._process_id): a forked child must still get files of its own, and every
process's increments must add up, as with prometheus_client's own ``os.getpid``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from prometheus_client import CollectorRegistry, values
    from prometheus_client.multiprocess import MultiProcessCollector
    from gateway.core.metrics import Metrics

    m = Metrics()
    delivered = m.delivered.labels(route="push")
    seconds = m.delivery_seconds.labels(route="push")
    for _ in range(3):
        delivered.inc()
    seconds.observe(0.003)
    pid = os.fork()
    if pid == 0:  # the child: its own file, starting from nothing
        delivered.inc()
        delivered.inc()
        seconds.observe(0.02)
        os._exit(0 if delivered._value.get() == 2 else 3)
    _, status = os.waitpid(pid, 0)
    delivered.inc()
    merged = CollectorRegistry()
    MultiProcessCollector(merged, path=os.environ["PROMETHEUS_MULTIPROC_DIR"])
    json.dump({"parent": os.getpid(), "child": pid, "child_status": status,
               "multiprocess": values.ValueClass._multiprocess,
               "parent_value": delivered._value.get(),
               "total": merged.get_sample_value("gateway_deliveries_delivered_total", {"route": "push"}),
               "count": merged.get_sample_value("gateway_delivery_attempt_seconds_count", {"route": "push"}),
               "files": sorted(os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"]))}, sys.stdout)
""")


def test_a_forked_child_counts_in_files_of_its_own(tmp_path: Path) -> None:
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=60,
                         cwd=ROOT, check=True)
    got = json.loads(out.stdout)
    assert got["multiprocess"] is True
    assert got["child_status"] == 0  # the child's own value started from 0, not from the parent's 3
    assert got["parent_value"] == 4
    assert got["total"] == 6  # 4 in the parent, 2 in the child: nothing lost, nothing counted twice
    assert got["count"] == 2
    parent, child = got["parent"], got["child"]
    assert f"counter_{parent}.db" in got["files"]
    assert f"counter_{child}.db" in got["files"]
    assert f"histogram_{child}.db" in got["files"]
