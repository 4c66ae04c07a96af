"""Directory at national size: e-CMS organization look-ups and in-memory search.

Loads ``config/directory.national.json`` (11,000+ agencies, built by config/national/build.py)
into a :class:`Directory` and measures, in this process:

* the e-CMS look-ups answered from the directory (``gateway.ecms.lookups``):
  ``GetOrganizationList`` (every active agency, one row each) and
  ``GetMinistryOrganizationList``: building the answer element and serialising it, p99 in ms,
  and the organization list's size in bytes (target for the issue: <= 500 ms);
* ``gateway.core.directory_search.search`` over a mix of queries (Thai name parts, English
  name parts, code prefixes, kind, province, and combinations; some match nothing, so the
  whole directory is scanned), p99 in ms; the first search builds the per-directory index,
  reported on its own as ``search_index_ms``.

Usage: python bench/directory.py [--quick] [--file PATH]
Prints its figures last, on one line of key=value pairs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import figures, percentile  # noqa: E402
from gateway.core.directory import Directory  # noqa: E402
from gateway.core.directory_search import search  # noqa: E402
from gateway.ecms.lookups import ministries, organizations  # noqa: E402
from gateway.ecms.settings import EcmsSettings  # noqa: E402

NATIONAL = Path(__file__).resolve().parent.parent / "config" / "directory.national.json"
QUERIES: tuple[dict[str, str], ...] = (
    {"q": "เชียงใหม่"}, {"q": "ศาลากลาง"}, {"q": "องค์การบริหารส่วนตำบลหนอง"}, {"q": "สาธารณสุข"},
    {"q": "กรมการปกครอง"}, {"q": "ไม่มีหน่วยงานชื่อนี้"}, {"q": "khon kaen"}, {"q": "Provincial Hall"},
    {"q": "no such agency"}, {"q": "149"}, {"q": "14002"}, {"q": "99999"},
    {"kind": "provincial_administration"}, {"kind": "district_office", "province": "50"},
    {"province": "40"}, {"q": "เทศบาล", "province": "30"}, {"q": "อำเภอ", "kind": "ministry_district_office"},
    {"q": "ตำบลบ้าน", "kind": "local_administration", "province": "41"},
)


def timed(fn, runs: int) -> tuple[list[float], object]:
    out: object = None
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (for a smoke test)")
    parser.add_argument("--file", type=Path, default=NATIONAL)
    args = parser.parse_args()
    runs_lookup, rounds_search = (5, 5) if args.quick else (30, 60)

    t0 = time.perf_counter()
    directory = Directory.load(args.file)
    load_ms = (time.perf_counter() - t0) * 1000
    settings = EcmsSettings(public_url="https://gateway.example.go.th/ecms")
    now = dt.datetime.now(dt.UTC)

    def org_list() -> bytes:
        return etree.tostring(organizations("GetOrganizationListResponse", directory, settings, now))

    def ministry_list() -> bytes:
        return etree.tostring(ministries("GetMinistryOrganizationListResponse", directory, settings, now))

    org_times, org_answer = timed(org_list, runs_lookup)
    min_times, min_answer = timed(ministry_list, runs_lookup)
    assert isinstance(org_answer, bytes) and isinstance(min_answer, bytes)

    t0 = time.perf_counter()
    search(directory, q="warm-up")
    index_ms = (time.perf_counter() - t0) * 1000
    search_times: list[float] = []
    for _ in range(rounds_search):
        for query in QUERIES:
            t0 = time.perf_counter()
            search(directory, **query)
            search_times.append((time.perf_counter() - t0) * 1000)
    print(f"{len(QUERIES) * rounds_search} searches; organization list {org_answer.count(b'<OrganizationList')} "
          f"rows, ministry list {min_answer.count(b'<MinistryOrganizationList')} rows")
    print(figures(agencies=len(directory), load_ms=round(load_ms), ecms_org_list_bytes=len(org_answer),
                  ecms_org_list_p99_ms=round(percentile(org_times, 99), 1),
                  ecms_ministry_list_bytes=len(min_answer),
                  ecms_ministry_list_p99_ms=round(percentile(min_times, 99), 2),
                  search_index_ms=round(index_ms, 1), search_p99_ms=round(percentile(search_times, 99), 2)))


if __name__ == "__main__":
    main()
