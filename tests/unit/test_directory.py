import pytest

from gateway.core.directory import Directory
from gateway.core.errors import ConfigError
from gateway.storage.receipts import pulls_over_ecms_only
from tests.support import CMI, ROOT, TOKENS, directory_dict


def test_loads_and_authenticates_tokens():
    d = Directory.from_dict(directory_dict())
    assert d.agency_for_token(TOKENS[CMI]) == CMI
    assert d.agency_for_token("nope") is None
    assert d[CMI].ministry == "15"


def test_example_directory_is_valid():

    d = Directory.load(ROOT / "config" / "directory.example.json")
    assert len(d) >= 5


def test_the_example_e_cms_agencies_pull_over_e_cms_only():
    """Their systems speak e-CMS only, which has no form for a delivery receipt: none is queued for them."""
    d = Directory.load(ROOT / "config" / "directory.example.json")
    ecms = sorted(a.code for a in d.all() if "(e-CMS)" in a.name_en)
    assert ecms == ["11000", "11002", "11008", "20001"]
    assert [c for c in ecms if not pulls_over_ecms_only(d, c)] == []
    assert not pulls_over_ecms_only(d, "1550100000")  # a native pull agency keeps getting its receipts


@pytest.mark.parametrize("mutate,field", [
    (lambda a: a.update(code="123"), "agencies[0].code"),
    (lambda a: a.update(route={"kind": "carrier-pigeon"}), "agencies[0].route.kind"),
    (lambda a: a.update(route={"kind": "push"}), "agencies[0].route.url"),
    (lambda a: a.pop("name_th"), "agencies[0].name_th"),
])
def test_errors_name_the_agency_and_field(mutate, field):
    data = directory_dict()
    mutate(data["agencies"][0])
    with pytest.raises(ConfigError) as e:
        Directory.from_dict(data)
    assert e.value.field == field


def test_duplicate_code_is_refused():
    data = directory_dict()
    data["agencies"].append(dict(data["agencies"][0]))
    with pytest.raises(ConfigError, match="twice"):
        Directory.from_dict(data)
