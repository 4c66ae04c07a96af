"""Distribution lists: parsing a directory file's "lists", and expanding them against a directory."""

import pytest

from gateway.core.directory import Directory
from gateway.core.errors import ConfigError
from gateway.core.lists import DistributionList, Rule, check_against, expand, lists_from_dict, members_digest


def _agency(code, kind, province=None, parent=None, active=True):
    return {"code": code, "name_th": f"หน่วยงาน {code}", "name_en": f"Agency {code}", "kind": kind,
            "province": province, "parent": parent, "route": {"kind": "pull"}, "active": active}


DIRECTORY = Directory.from_dict({"agencies": [
    _agency("1500000000", "ministry"),
    _agency("1550100000", "provincial_administration", "50", "1500000000"),
    _agency("1550200000", "provincial_administration", "40", "1500000000"),
    _agency("1550300000", "provincial_administration", "10", "1500000000", active=False),
    _agency("2100000000", "ministry"),
    _agency("2150100000", "ministry_provincial_office", "50", "2100000000"),
    _agency("1550101000", "district_office", "50", "1550100000"),
    _agency("1550102000", "district_office", "50", "1550100000"),
    _agency("1550201000", "district_office", "40", "1550200000"),
]})


def test_a_rule_list_takes_active_agencies_of_the_kind_sorted():
    halls = DistributionList("provincial-halls", "ศาลากลางจังหวัดทุกจังหวัด", None, Rule("provincial_administration"))
    assert expand(halls, DIRECTORY) == ("1550100000", "1550200000")  # the inactive hall is left out


@pytest.mark.parametrize(("rule", "expected"), [
    (Rule("district_office", province="50"), ("1550101000", "1550102000")),
    (Rule("district_office", parent="1550200000"), ("1550201000",)),
    (Rule("ministry_provincial_office", ministry="21"), ("2150100000",)),
    (Rule("ministry_provincial_office", ministry="15"), ()),
    (Rule("district_office", province="50", parent="1550200000"), ()),
])
def test_a_rule_narrows_by_province_ministry_and_parent(rule, expected):
    assert expand(DistributionList("x", "x", None, rule), DIRECTORY) == expected


def test_a_static_list_keeps_only_known_active_members_sorted_once():
    lst = DistributionList("two", "สอง", ("1550200000", "9999999999", "1550300000", "1550100000"), None)
    assert expand(lst, DIRECTORY) == ("1550100000", "1550200000")


def test_members_digest_is_of_the_sorted_codes():
    assert members_digest(["2", "1"]) == members_digest(["1", "2"]) != members_digest(["1"])


def test_lists_from_a_directory_file():
    lists = lists_from_dict({"agencies": [], "lists": [
        {"name": "provincial-halls", "name_th": "ศาลากลางจังหวัดทุกจังหวัด",
         "rule": {"kind": "provincial_administration"}, "ecms_code": "99001"},
        {"name": "north", "name_th": "ภาคเหนือ", "members": ["1550100000", "1550100000", "2150100000"]},
    ]})
    assert lists[0].rule == Rule("provincial_administration") and lists[0].ecms_code == "99001"
    assert lists[1].members == ("1550100000", "2150100000") and lists[1].rule is None
    assert lists_from_dict({"agencies": []}) == ()
    assert lists_from_dict({"lists": [x.to_dict() for x in lists]}) == lists


@pytest.mark.parametrize(("entry", "field"), [
    ({"name_th": "ก", "members": ["1550100000"]}, "lists[0].name"),
    ({"name": "Bad Name", "name_th": "ก", "members": ["1550100000"]}, "lists[0].name"),
    ({"name": "a", "members": ["1550100000"]}, "lists[0].name_th"),
    ({"name": "a", "name_th": "ก"}, "lists[0].members"),
    ({"name": "a", "name_th": "ก", "members": ["1550100000"], "rule": {"kind": "school"}}, "lists[0].members"),
    ({"name": "a", "name_th": "ก", "members": ["15501"], "rule": None}, None),
    ({"name": "a", "name_th": "ก", "members": ["1x"]}, "lists[0].members[0]"),
    ({"name": "a", "name_th": "ก", "rule": {"kind": "castle"}}, "lists[0].rule.kind"),
    ({"name": "a", "name_th": "ก", "rule": {"kind": "school", "province": "5"}}, "lists[0].rule.province"),
    ({"name": "a", "name_th": "ก", "rule": {"kind": "school", "colour": "red"}}, "lists[0].rule.colour"),
    ({"name": "a", "name_th": "ก", "rule": {"kind": "school"}, "ecms_code": "12345"}, "lists[0].ecms_code"),
])
def test_a_bad_list_entry_names_its_field(entry, field):
    if field is None:  # a valid entry (a 5-digit code, rule given as null)
        assert lists_from_dict({"lists": [entry]})[0].members == ("15501",)
        return
    with pytest.raises(ConfigError) as err:
        lists_from_dict({"lists": [entry]})
    assert err.value.code == "config.invalid" and err.value.field == field


def test_names_and_ecms_codes_are_unique():
    one = {"name": "a", "name_th": "ก", "rule": {"kind": "school"}, "ecms_code": "99001"}
    with pytest.raises(ConfigError) as err:
        lists_from_dict({"lists": [one, {**one, "ecms_code": "99002"}]})
    assert err.value.field == "lists[1].name"
    with pytest.raises(ConfigError) as err:
        lists_from_dict({"lists": [one, {**one, "name": "b"}]})
    assert err.value.field == "lists[1].ecms_code"
    with pytest.raises(ConfigError) as err:
        lists_from_dict({"lists": {"a": 1}})
    assert err.value.field == "lists"


def test_checking_lists_against_the_directory_names_the_unknown_agency():
    ok = [DistributionList("a", "ก", ("1550300000",), None), DistributionList("b", "ข", None, Rule("school"))]
    check_against(ok, DIRECTORY)  # an inactive member is known
    with pytest.raises(ConfigError) as err:
        check_against([*ok, DistributionList("c", "ค", ("1550100000", "9999999999"), None)], DIRECTORY)
    assert err.value.field == "lists[2].members[1]"
    with pytest.raises(ConfigError) as err:
        check_against([DistributionList("d", "ง", None, Rule("school", parent="9999999999"))], DIRECTORY)
    assert err.value.field == "lists[0].rule.parent"
