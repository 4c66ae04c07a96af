"""The national example directory (config/directory.national.json) and its generator."""

import json
import re
import subprocess
import sys
from collections import Counter

import pytest

from gateway.core.directory import Directory
from tests.support import ROOT

NATIONAL = ROOT / "config" / "directory.national.json"
RESERVED = re.compile(r"^[0-9]{2}9[0-9]{7}$")  # config/national/README.md: generated codes


@pytest.fixture(scope="module")
def national() -> Directory:
    return Directory.load(NATIONAL)  # also checks every parent and via hub exists


def test_size_and_kinds(national):
    kinds = Counter(a.kind for a in national.all())
    assert len(national) >= 10_000
    assert kinds["provincial_administration"] == 77
    assert kinds["district_office"] == 928
    assert kinds["ministry"] == 20
    assert kinds["local_administration"] >= 7_000
    assert kinds["ministry_provincial_office"] > 0 and kinds["ministry_district_office"] > 0


def test_generated_codes_and_only_they_are_in_the_reserved_range(national):
    generated = [a for a in national.all() if a.generated]
    official = [a for a in national.all() if not a.generated]
    assert generated and official
    assert [a.code for a in generated if not RESERVED.match(a.code)] == []
    assert [a.code for a in official if RESERVED.match(a.code)] == []


def test_areas_are_geothai_codes_and_names_are_thai(national):
    thai = re.compile("[\u0e00-\u0e7f]")
    for a in national.all():
        assert a.name_th.strip() and thai.search(a.name_th), a.code
        assert a.name_en.strip(), a.code
        if a.district is not None:
            assert a.district[:2] == a.province, a.code
    halls = {a.province: a.code for a in national.all() if a.kind == "provincial_administration"}
    assert len(halls) == 77
    for a in national.all():
        if a.kind == "district_office":
            assert a.via == halls[a.province], a.code
            assert national.route_of(a.code) == (halls[a.province], national[halls[a.province]].route)


def test_no_tokens_and_stable_sorted_file(national):
    assert all(not a.token_sha256 for a in national.all())
    codes = [row["code"] for row in json.loads(NATIONAL.read_text(encoding="utf-8"))["agencies"]]
    assert codes == sorted(codes) and len(codes) == len(set(codes))


def test_committed_file_matches_the_generator():
    done = subprocess.run([sys.executable, str(ROOT / "config" / "national" / "build.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_check_fails_on_a_stale_file(tmp_path):
    stale = tmp_path / "directory.json"
    stale.write_text(NATIONAL.read_text(encoding="utf-8").replace("เชียงใหม่", "เชียงใหม", 1), encoding="utf-8")
    done = subprocess.run([sys.executable, str(ROOT / "config" / "national" / "build.py"), "--check",
                           "--out", str(stale)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "out of date" in done.stderr
