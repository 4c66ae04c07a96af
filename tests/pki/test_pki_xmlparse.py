"""The hardened parser in pki: its refusals are PkiErrors, and the gateway raises them as its own type."""

from __future__ import annotations

import pytest

from gateway.core import xml as gxml
from gateway.core.errors import EnvelopeError
from gateway.http.errors import status_for
from pki import xmlparse, xmlsig_parts
from pki.errors import PkiError, XmlError


@pytest.mark.parametrize(("data", "kwargs", "code", "status"), [
    (b"%PDF-1.4 not xml", {}, "envelope.not_xml", 400),
    (b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', {}, "envelope.dtd_forbidden", 400),
    (b"<x>" + b"a" * 100 + b"</x>", {"max_bytes": 50, "what": "ack"}, "ack.too_large", 413),
    (b'<?xml version="1.0" encoding="ISO-8859-1"?><x/>', {}, "envelope.encoding_unsupported", 400),
])
def test_refusals_are_pki_errors_and_the_gateways_envelope_errors(data, kwargs, code, status):
    with pytest.raises(XmlError) as pki_error:
        xmlparse.parse(data, **kwargs)
    assert isinstance(pki_error.value, PkiError)
    assert (pki_error.value.code, status_for(pki_error.value.code)) == (code, status)
    with pytest.raises(EnvelopeError) as gateway_error:
        gxml.parse(data, **kwargs)
    assert (gateway_error.value.code, status_for(gateway_error.value.code), gateway_error.value.field) == \
        (code, status, pki_error.value.field)


def test_pki_and_the_gateway_name_the_same_namespaces():
    assert (xmlsig_parts.ENVELOPE_NS, xmlsig_parts.DSIG_NS) == (gxml.ENVELOPE_NS, gxml.DSIG_NS)
