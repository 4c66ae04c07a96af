"""Small helpers to build client requests and read answers in the e-CMS tests."""

from __future__ import annotations

from lxml import etree
from lxml.builder import ElementMaker

from gateway.core.ecmswire import soap

WSA = ElementMaker(namespace=soap.WSA_NS_SLOPPY, nsmap={"wsa": soap.WSA_NS_SLOPPY})


def request(op: etree._Element) -> bytes:
    """A request as the BOI-DMS client sends it (misspelt wsa namespace, lower-case wsa:to)."""
    env = soap.SOAP.Envelope(soap.SOAP.Header(WSA.MessageID(""), WSA.to("https://gateway.example/ecms-ws01/service2")),
                             soap.SOAP.Body(op))
    return soap.serialize(env)


def body_child(answer: bytes) -> etree._Element:
    root = etree.fromstring(answer)
    body = root.find(f"{{{soap.SOAP11_NS}}}Body")
    return next(iter(body))


def errors(answer: bytes) -> list[str]:
    return [e.findtext("ErrorCode") for e in etree.fromstring(answer).iter("ErrorDetail")]
