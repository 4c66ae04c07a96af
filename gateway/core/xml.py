"""The gateway's XML entry point: the hardened parser, schemas and validation.

Every byte string that came from outside is parsed by :func:`parse`, which is
:func:`pki.xmlparse.parse` (no DTD, no entities, no network, bounded size,
depth, attributes, names and namespace URIs; BOM and declaration agree; its
docstring says how) with its refusals raised as the gateway's
:class:`EnvelopeError`, same code, field and status.

Schemas are compiled once through :mod:`importlib.resources` and cached;
validation uses lxml's XMLSchema (libxml2). :func:`explain_invalid` names the
failing field from libxml2's own error (its node path turned into local names),
so explaining a refusal costs no more than the walk down to that node: a
second, pure-Python validator here cost seconds per megabyte of base64 and was
quadratic in the attributes of one element, on the event loop.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from typing import Final

from lxml import etree

from gateway.core.errors import EnvelopeError
from pki import xmlparse
from pki.errors import XmlError
from pki.xmlparse import DEFAULT_MAX_BYTES, make_parser

ENVELOPE_NS: Final = "urn:th:gov:saraban:envelope:1"
DSIG_NS: Final = "http://www.w3.org/2000/09/xmldsig#"


def parse(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, what: str = "envelope") -> etree._Element:
    """Parse untrusted XML bytes into an element tree, or raise :class:`EnvelopeError`.

    The checks and codes are :func:`pki.xmlparse.parse`'s (``<what>.too_large``,
    ``<what>.not_xml``, ``<what>.dtd_forbidden``, ``<what>.encoding_unsupported``,
    ``<what>.too_complex``).
    """
    try:
        return xmlparse.parse(data, max_bytes=max_bytes, what=what)
    except XmlError as exc:
        raise EnvelopeError(exc.message, code=exc.code, field=exc.field) from None


@functools.cache
def load_schema(name: str) -> etree.XMLSchema:
    """Compile ``schemas/<name>`` once (imports between schemas resolve inside the package)."""
    resource = importlib.resources.files("schemas").joinpath(name)
    with importlib.resources.as_file(resource) as path:
        doc = etree.parse(str(path), parser=make_parser())
        return etree.XMLSchema(doc)


_STEP = re.compile(r"(\*|(?:([^:\[\]/]+):)?([^:\[\]/]+))(?:\[(\d+)\])?")


def _node_at(root: etree._Element, node_path: str | None) -> etree._Element | None:
    """The element at libxml2's node path (``/*/*[2]/ram:ID[3]``), the first step being ``root``
    (the element that was validated); None when the path does not lead to an element."""
    node = None
    for step in (node_path or "").strip("/").split("/"):
        m = _STEP.fullmatch(step)
        if m is None:
            return None
        generic, prefix, local, nth = m.group(1) == "*", m.group(2), m.group(3), int(m.group(4) or 1)
        if node is None:
            candidates = [root]
        else:
            kids = [c for c in node if isinstance(c.tag, str)]
            candidates = kids if generic else [c for c in kids
                                               if c.prefix == prefix and etree.QName(c).localname == local]
        if not 0 < nth <= len(candidates):
            return None
        node = candidates[nth - 1]
    return node


def named_path(root: etree._Element, node: etree._Element) -> str:
    """``/Envelope/Header/Recipients/Recipient[2]``: local names from ``root`` down to ``node``, with
    the position among same-named siblings where there are several."""
    parts = []
    while node is not None:
        name = etree.QName(node).localname
        parent = node.getparent() if node is not root else None
        if parent is not None:
            same = [c for c in parent if c.tag == node.tag]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        parts.append(name)
        node = parent
    return "/" + "/".join(reversed(parts))


def explain_invalid(schema_name: str, root: etree._Element,
                    error: etree._LogEntry | None = None) -> tuple[str, str]:
    """For a document that failed validation: (field path, reason), from libxml2's error
    (``error``, else the first error of validating ``root`` again)."""
    if error is None:
        schema = load_schema(schema_name)
        schema.validate(root)
        error = next(iter(schema.error_log), None)
    if error is None:
        return "/", "document does not match the schema"
    node = _node_at(root, error.path)
    field = "/" if node is None else named_path(root, node)
    reason = _strip_ns(re.sub(r"^Element '[^']*'(, attribute '[^']*')?: ", "", error.message or ""))
    if len(reason) > 500:
        reason = reason[:500] + "..."
    return field, reason or "document does not match the schema"


def _strip_ns(text: str) -> str:
    """Drop Clark namespaces (``{urn:...}``), not the ``{5}`` of a pattern or a ``{'a', 'b'}`` set."""
    return re.sub(r"\{[A-Za-z][A-Za-z0-9+.\-]*:[^{}']*\}", "", text)


def validate(schema_name: str, root: etree._Element, *, what: str = "envelope") -> None:
    """Validate against a cached schema; raise ``<what>.schema_invalid`` naming the field."""
    schema = load_schema(schema_name)
    if schema.validate(root):
        return
    error = next(iter(schema.error_log), None)  # the first fault; later ones often follow from it
    field, reason = explain_invalid(schema_name, root, error)
    message = reason if reason else (error.message if error is not None else "invalid")
    raise EnvelopeError(message, code=f"{what}.schema_invalid", field=field)
