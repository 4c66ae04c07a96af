from gateway.core.directory import Directory
from gateway.core.directory_search import search


def _agency(code, th, en, kind="department", parent=None, province=None):
    out = {"code": code, "name_th": th, "name_en": en, "kind": kind, "route": {"kind": "pull"}}
    if parent:
        out["parent"] = parent
    if province:
        out["province"] = province
    return out


def _directory():
    return Directory.from_dict({"agencies": [
        _agency("14000", "กระทรวงมหาดไทย", "Ministry of Interior", kind="ministry"),
        _agency("14002", "กรมการปกครอง", "Department of Provincial Administration", parent="14000"),
        _agency("1491500000", "ศาลากลางจังหวัดเชียงใหม่", "Chiang Mai Provincial Hall",
                kind="provincial_administration", parent="14000", province="50"),
        _agency("1491400000", "ศาลากลางจังหวัดขอนแก่น", "Khon Kaen Provincial Hall",
                kind="provincial_administration", parent="14000", province="40"),
        _agency("1993500000", "สำนักงานสาธารณสุขจังหวัดเชียงใหม่", "Chiang Mai Provincial Public Health Office",
                kind="ministry_provincial_office", parent="14000", province="50"),
    ]})


def codes(agencies):
    return [a.code for a in agencies]


def test_thai_substring_english_any_case_and_code_prefix():
    d = _directory()
    assert codes(search(d, q="เชียงใหม่")) == ["1491500000", "1993500000"]
    assert codes(search(d, q="  chiang   MAI provincial hall ")) == ["1491500000"]
    assert codes(search(d, q="149")) == ["1491400000", "1491500000"]
    assert codes(search(d, q="14002")) == ["14002"]
    assert search(d, q="ไม่มีหน่วยงานนี้") == []
    assert codes(search(d, q="จังหวัด", limit=1)) == ["1491400000"]
    assert codes(search(d, q="o", limit=3)) == ["14000", "14002", "1491400000"]  # one hit per agency


def test_kind_province_and_limit_combine():
    d = _directory()
    assert codes(search(d, kind="provincial_administration")) == ["1491400000", "1491500000"]
    assert codes(search(d, province="50")) == ["1491500000", "1993500000"]
    assert codes(search(d, q="เชียงใหม่", kind="provincial_administration", province="50")) == ["1491500000"]
    assert codes(search(d, kind="provincial_administration", province="40")) == ["1491400000"]
    assert codes(search(d, limit=2)) == ["14000", "14002"]
    assert search(d, kind="school") == [] and search(d, province="99") == [] and search(d, limit=0) == []


def test_query_never_matches_across_code_and_name():
    d = _directory()
    assert search(d, q="0 กรม") == [] and search(d, q="0\x00กรม") == []


def test_replaced_directory_is_searched_not_a_stale_index():
    d = _directory()
    assert codes(search(d, q="ขอนแก่น")) == ["1491400000"]
    renamed = Directory.from_dict(_directory().to_dict() | {"agencies": [
        a if a["code"] != "1491400000" else a | {"name_th": "ศาลากลางจังหวัดขอนแก่น (ใหม่)"}
        for a in _directory().to_dict()["agencies"]]})
    assert (len(renamed), renamed.version) == (len(d), d.version)  # same size and version: only on_change tells
    d.replace(renamed)
    assert [a.name_th for a in search(d, q="ขอนแก่น")] == ["ศาลากลางจังหวัดขอนแก่น (ใหม่)"]
    assert codes(search(d, q="ใหม่")) == ["1491400000", "1491500000", "1993500000"]
