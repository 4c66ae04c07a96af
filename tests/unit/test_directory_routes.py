"""A route URL (push, e-CMS node) is an http(s) URL with a host: whoever sets it (file, import, API, console)."""

import pytest

from gateway.core.directory import agency_from_dict
from gateway.core.errors import ConfigError


def _agency(url: str):
    return agency_from_dict({"code": "1234567890", "name_th": "ทดสอบ", "name_en": "Test",
                             "route": {"kind": "push", "url": url}}, "x")


@pytest.mark.parametrize("url", ["ftp://h/x", "file:///etc/passwd", "https://u:p@h/x", "https:///x", "http://[::1",
                                 "https://h:99999/x", "gopher://h/", "//h/x"])
def test_a_route_url_that_is_not_http_with_a_host_is_refused_naming_the_field(url):
    with pytest.raises(ConfigError) as refused:
        _agency(url)
    assert refused.value.field == "x.route.url"


@pytest.mark.parametrize("url", ["https://cmi.example/saraban/inbox", "http://10.1.2.3:8080/in", "https://[::1]:8443/x"])
def test_http_urls_with_a_host_are_routes(url):
    assert _agency(url).route.settings["url"] == url


def test_5_digit_codes_99xxx_are_reserved_for_lists():
    with pytest.raises(ConfigError, match="reserved"):
        agency_from_dict({"code": "99001", "name_th": "ก", "name_en": "a"}, "x")
