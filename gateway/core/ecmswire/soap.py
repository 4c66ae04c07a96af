"""SOAP 1.1 + WS-Addressing for e-CMS: parse requests, build answers and requests.

Parsing goes through :func:`gateway.core.xml.parse` (no DTD, no entities, no
network, bounded size) and then checks the SOAP shape. Real e-CMS clients are
sloppy, so the header is read leniently:

* WS-Addressing in ``http://www.w3.org/2005/08/addressing`` or the misspelt
  ``http://w3.org/2005/08/addressing``;
* ``wsa:To`` or ``wsa:to``; ``MessageID`` missing, empty, or free text
  (one client sends Thai sentences) — it is informative only and never used as
  an identifier;
* ``ID="Body"`` (or any attribute) on ``SOAP-ENV:Body``; any envelope prefix.

Answers are built with lxml's element builders, never from string templates:
the letter answer, hot on every submission, with :func:`child` (lxml's
``SubElement``: each element is made inside its parent's document, where an
``ElementMaker`` call makes a document per element and moves it on append,
about five times the cost), the rarer look-up answers with the ElementMakers
below. The response prefixes are the ones clients match on by *qualified name*
(``GetElementsByTagName("ram:CorrespondenceLetter")``): ``SOAP-ENV`` for the
envelope, ``rsm``/``ram`` for the letter, unqualified operation elements.
``ErrorDetail`` children are ``ErrorCode`` then ``ErrorDescription`` with no
white space between them (one client reads them by position).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from lxml import etree
from lxml.builder import ElementMaker

from gateway.core import xml as gxml
from gateway.core.ecmswire.errors import EcmsError
from gateway.core.errors import EnvelopeError

SOAP11_NS: Final = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NS: Final = "http://www.w3.org/2003/05/soap-envelope"
WSA_NS: Final = "http://www.w3.org/2005/08/addressing"
WSA_NS_SLOPPY: Final = "http://w3.org/2005/08/addressing"
WSA_NAMESPACES: Final = (WSA_NS, WSA_NS_SLOPPY)
RSM_NS: Final = "urn:th:gov:egif:data:standard:GovernmentDocument:1.0"
RAM_NS: Final = "urn:th:gov:egif:data:standard:ReusableAggregateBusinessInformationEntity:1"
DS_NS: Final = "http://www.w3.org/2000/09/xmldsig#"

SCHEMA: Final = "ecms-messages.xsd"
CONTENT_TYPE: Final = "text/xml; charset=utf-8"

#: Operation element -> answer element.
OPERATIONS: Final[dict[str, str]] = {
    "CorrespondenceLetterOutboundRequest": "CorrespondenceLetterOutboundResponse",
    "CorrespondenceLetterInboundRequest": "CorrespondenceLetterInboundResponse",
    "CorrespondenceLetterDeleteRequest": "CorrespondenceLetterDeleteResponse",
    "CorrespondenceLetterInboundSpecialRequest": "CorrespondenceLetterInboundSpecialResponse",
    "CorrespondenceDeleteGovernmentDocumentRequest": "CorrespondenceDeleteGovernmentDocumentResponse",
    "GetMinistryOrganizationList": "GetMinistryOrganizationListResponse",
    "GetOrganizationList": "GetOrganizationListResponse",
    "GetSecretCodes": "GetSecretCodesResponse",
    "GetSpeedCodes": "GetSpeedCodesResponse",
    "GetMimeCodes": "GetMimeCodesResponse",
    "TimeCheckRequest": "TimeCheckResponse",
    "OutboundStatusRequest": "OutboundStatusResponse",
}

SOAP = ElementMaker(namespace=SOAP11_NS, nsmap={"SOAP-ENV": SOAP11_NS})
#: Unqualified elements (operation answers, notifiers, ErrorDetail).
U = ElementMaker()
RSM = ElementMaker(namespace=RSM_NS, nsmap={"rsm": RSM_NS, "ram": RAM_NS})
RAM = ElementMaker(namespace=RAM_NS, nsmap={"ram": RAM_NS})


@dataclass(frozen=True)
class SoapRequest:
    """One parsed e-CMS request."""

    operation: str
    """Local name of the operation element (a key of :data:`OPERATIONS`)."""
    body: etree._Element
    """The operation element (schema-valid when :func:`parse_request` returned)."""
    envelope: etree._Element
    """The whole parsed SOAP envelope (the tree that was checked)."""
    message_id: str | None = None
    """wsa:MessageID as sent (informative; may be empty or free text)."""
    to: str | None = None
    """wsa:To / wsa:to as sent."""

    @property
    def response_name(self) -> str:
        return OPERATIONS[self.operation]


def _header_value(header: dict[str, etree._Element], *names: str) -> str | None:
    """The first of ``names`` present, in either WS-Addressing namespace (``header``: the SOAP
    Header's children by tag, first of each)."""
    for ns in WSA_NAMESPACES:
        for name in names:
            el = header.get(f"{{{ns}}}{name}")
            if el is not None:
                return (el.text or "").strip()
    return None


def _first_children(el: etree._Element | None) -> dict[str, etree._Element]:
    """``el``'s children by tag, the first of each: one pass where ten ``find`` calls went
    through ElementPath on every request."""
    first: dict[str, etree._Element] = {}
    for c in () if el is None else el:
        first.setdefault(c.tag, c)
    return first


def parse_request(data: bytes, *, max_bytes: int = gxml.DEFAULT_MAX_BYTES,
                  validate: bool = True) -> SoapRequest:
    """Parse and check one SOAP request; raise :class:`EcmsError` with a stable domain code.

    Codes: the hardened parser's ``ecms.not_xml``, ``ecms.dtd_forbidden``, ``ecms.too_large``,
    ``ecms.too_complex`` and ``ecms.encoding_unsupported`` (naming the limit or ``/``), then ``ecms.not_soap`` (not a SOAP 1.1 envelope),
    ``ecms.unknown_operation`` (no single, known operation), ``ecms.schema_invalid``.
    """
    try:
        root = gxml.parse(data, max_bytes=max_bytes, what="ecms")
    except EnvelopeError as exc:
        raise EcmsError(exc.message, code=exc.code, field=exc.field) from None
    if root.tag == f"{{{SOAP12_NS}}}Envelope":
        raise EcmsError("SOAP 1.2 is not e-CMS; send a SOAP 1.1 envelope", code="ecms.not_soap",
                        field="Envelope")
    if root.tag != f"{{{SOAP11_NS}}}Envelope":
        raise EcmsError(f"expected a SOAP 1.1 Envelope, got {etree.QName(root).localname!r}"
                        f" in namespace {etree.QName(root).namespace!r}", code="ecms.not_soap",
                        field="Envelope")
    top = _first_children(root)
    header = _first_children(top.get(f"{{{SOAP11_NS}}}Header"))
    body = top.get(f"{{{SOAP11_NS}}}Body")
    if body is None:
        raise EcmsError("the Envelope has no Body", code="ecms.not_soap", field="Body")
    ops = [child for child in body if isinstance(child.tag, str)]
    if len(ops) != 1:
        raise EcmsError(f"the Body must hold exactly one operation, it holds {len(ops)}",
                        code="ecms.unknown_operation", field="Body")
    op = ops[0]
    qname = etree.QName(op)
    if qname.namespace is not None or qname.localname not in OPERATIONS:
        shown = qname.localname if qname.namespace is None else f"{{{qname.namespace}}}{qname.localname}"
        raise EcmsError(f"unknown operation {shown!r}", code="ecms.unknown_operation",
                        field=f"Body/{qname.localname}")
    req = SoapRequest(operation=qname.localname, body=op, envelope=root,
                      message_id=_header_value(header, "MessageID", "messageID", "MessageId"),
                      to=_header_value(header, "To", "to"))
    if validate:
        validate_operation(req)
    return req


def validate_operation(req: SoapRequest) -> None:
    """Check the operation element against ``ecms-messages.xsd`` (``ecms.schema_invalid`` naming the
    field)."""
    try:
        gxml.validate(SCHEMA, req.body, what="ecms")
    except EnvelopeError as exc:
        field = exc.field if exc.field and exc.field != "/" else req.operation
        raise EcmsError(exc.message, code="ecms.schema_invalid", field=field) from None


# --------------------------------------------------------------------------- building


def format_time(at: dt.datetime) -> str:
    """ProcessTime / ECMSTime: ISO 8601 to the second with the zone, e.g. 2024-05-01T09:30:00+07:00."""
    if at.tzinfo is None:
        raise ValueError("times in answers must be zone-aware")
    return at.replace(microsecond=0).isoformat()


def child(parent: etree._Element, tag: str, text: str | None = None, attrib: dict[str, str] | None = None,
          nsmap: dict[str | None, str] | None = None) -> etree._Element:
    """Append one element to ``parent`` and return it; ``text`` "" writes ``<a></a>`` as the
    ElementMakers do (clients see the same bytes whichever builder made an answer)."""
    el = etree.SubElement(parent, tag, attrib, nsmap)
    if text is not None:
        el.text = text
    return el


def envelope(body_child: etree._Element, *, relates_to: str | None = None) -> etree._Element:
    """Wrap one answer element in a SOAP 1.1 envelope (RelatesTo echoes a usable MessageID)."""
    env = etree.Element(f"{{{SOAP11_NS}}}Envelope", nsmap={"SOAP-ENV": SOAP11_NS})
    if relates_to:
        child(child(env, f"{{{SOAP11_NS}}}Header"), f"{{{WSA_NS}}}RelatesTo", relates_to,
              nsmap={"wsa": WSA_NS})
    child(env, f"{{{SOAP11_NS}}}Body").append(body_child)
    return env


def enveloped(answer: etree._Element) -> etree._Element:
    """``answer`` in a SOAP 1.1 envelope, unless it is one already (an answer built whole, e.g.
    :func:`gateway.core.ecmswire.building.build_letter_answer`)."""
    return answer if answer.tag == f"{{{SOAP11_NS}}}Envelope" else envelope(answer)


def serialize(env: etree._Element) -> bytes:
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def error_detail(code: str, description: str, *, parent: etree._Element | None = None) -> etree._Element:
    """``ErrorDetail{ErrorCode, ErrorDescription}``, appended to ``parent`` when given."""
    el = etree.Element("ErrorDetail") if parent is None else child(parent, "ErrorDetail")
    child(el, "ErrorCode", code)
    child(el, "ErrorDescription", description)
    return el


def response(name: str, *children: etree._Element, process_id: str | None, at: dt.datetime,
             errors: Iterable[tuple[str, str]] = (), lowercase_alias: bool = False) -> etree._Element:
    """``<name><ProcessID/><ProcessTime/>children...<ErrorDetail/>...</name>``.

    ``lowercase_alias`` adds a ``processID`` twin right after ``ProcessID``: one public
    client reads the notifier answers with ``SelectSingleNode("processID")``.
    """
    el = etree.Element(name)
    if process_id is not None:
        child(el, "ProcessID", process_id)
        if lowercase_alias:
            child(el, "processID", process_id)
    child(el, "ProcessTime", format_time(at))
    for c in children:
        el.append(c)
    for code, description in errors:
        error_detail(code, description, parent=el)
    return el


def fault(code: str, description: str, *, client: bool = True) -> etree._Element:
    """A SOAP 1.1 Fault whose detail holds an ErrorDetail (for requests that are not e-CMS at all)."""
    return SOAP.Fault(
        U.faultcode("SOAP-ENV:Client" if client else "SOAP-ENV:Server"),
        U.faultstring(description),
        U.detail(error_detail(code, description)),
    )
