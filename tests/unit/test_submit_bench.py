"""bench/submit.py --callgrind: the instructions a callgrind dump counted, read from its summary line."""

import pytest

from bench.submit import callgrind_total

#: The head of a dump as ``callgrind_control -d`` writes it (callgrind 3.19), then the start of its costs.
DUMP = """# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 1314
cmd:  /work/main/.venv/bin/python -m gateway.cli.main serve
part: 1

desc: I1 cache:
desc: Timerange: Basic block 0 - 1562279343
desc: Trigger: dump

positions: line
events: Ir
summary: 2313628881


ob=(1) /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
fl=(1) ???
fn=(1) 0x000000000001ab70
0 3
"""


def test_the_summary_line_is_the_total(tmp_path):
    dump = tmp_path / "callgrind.out.1"
    dump.write_text(DUMP)
    assert callgrind_total(dump) == 2313628881


def test_a_dump_without_a_summary_is_refused_not_read_as_zero(tmp_path):
    dump = tmp_path / "callgrind.out.1"
    dump.write_text(DUMP.replace("summary: 2313628881\n", ""))
    with pytest.raises(ValueError):
        callgrind_total(dump)
