"""is_blank: white space (any Unicode white space, as str.strip sees it) and empty texts are blank."""

from __future__ import annotations

import pytest
from lxml import etree

from gateway.core.ecmswire.empties import is_blank


@pytest.mark.parametrize(("xml", "blank"), [
    ("<a></a>", True), ("<a/>", True), ("<a> <b></b>\n<c/></a>", True), ("<a>\u00a0\u3000</a>", True),
    ("<a><b>x</b></a>", False), ("<a><b> </b>y</a>", False), ("<a>JVBERi0=</a>", False),
    ('<a><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/></a>', False),
])
def test_is_blank(xml, blank):
    assert is_blank(etree.fromstring(xml)) is blank
