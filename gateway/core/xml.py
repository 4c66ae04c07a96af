"""The one hardened XML entry point of the whole project.

Every byte string that came from outside is parsed here and nowhere else:

* the size is checked before parsing (the HTTP layer also bounds the read);
* no DTD is loaded, no entity is resolved, no network is touched, and a
  document that *declares* a DTD or entities is refused outright (billion
  laughs, XXE, external DTD fetches);
* libxml2's default limits stay on (``huge_tree`` off: depth 256, text nodes
  of 10 MB), so a deep or enormous tree fails fast.

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

#: Default maximum document size in bytes (the API's configured limit may be lower).
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024

ENVELOPE_NS: Final = "urn:th:gov:saraban:envelope:1"
DSIG_NS: Final = "http://www.w3.org/2000/09/xmldsig#"


def _make_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        collect_ids=True,
    )


# XMLParser objects are not thread safe; the gateway parses on the event loop
# thread, and worker threads (PDF validation) get their own through this cache.
_PARSERS: dict[int, etree.XMLParser] = {}


def _parser() -> etree.XMLParser:
    import threading

    ident = threading.get_ident()
    parser = _PARSERS.get(ident)
    if parser is None:
        parser = _PARSERS[ident] = _make_parser()
    return parser


def parse(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, what: str = "envelope") -> etree._Element:
    """Parse untrusted XML bytes into an element tree, or raise :class:`EnvelopeError`.

    Codes: ``<what>.too_large``, ``<what>.not_xml``, ``<what>.dtd_forbidden``; for the native
    envelope (``what="envelope"``, the default) also ``envelope.encoding_unsupported``: the
    standard is UTF-8 (US-ASCII is a subset), so a letter declared ISO-8859-1 or TIS-620, or
    sent as UTF-16, is refused instead of being stored in bytes that receivers must transcode
    (UTF-8 Thai declared as ISO-8859-1 would even read as mojibake). e-CMS bodies keep what
    legacy clients declare: libxml2 decodes them and the gateway re-encodes in UTF-8.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("parse() takes bytes")
    if len(data) > max_bytes:
        raise EnvelopeError(f"document is {len(data)} bytes, the limit is {max_bytes}",
                            code=f"{what}.too_large", status=413)
    # Fast refusal of the usual case; the docinfo check below catches a DOCTYPE
    # placed after a long prolog comment (libxml2 never expands it: entities off).
    if b"<!DOCTYPE" in bytes(data[:4096]):
        raise EnvelopeError("DTDs and entity declarations are not accepted",
                            code=f"{what}.dtd_forbidden")
    try:
        root = etree.fromstring(bytes(data), parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise EnvelopeError(f"not well-formed XML: {exc.msg}", code=f"{what}.not_xml") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise EnvelopeError("DTDs are not accepted", code=f"{what}.dtd_forbidden")
    if what == "envelope":
        declared = (docinfo.encoding or "UTF-8").upper().replace("_", "-")
        utf16 = bytes(data[:2]) in (b"\xff\xfe", b"\xfe\xff") or bytes(data[:1]) == b"\x00" \
            or bytes(data[1:2]) == b"\x00"
        if utf16 or declared not in ("UTF-8", "UTF8", "US-ASCII", "ASCII"):
            raise EnvelopeError(f"envelopes are UTF-8, not {'UTF-16' if utf16 else docinfo.encoding}",
                                code="envelope.encoding_unsupported", field="/")
    return root


@functools.cache
def load_schema(name: str) -> etree.XMLSchema:
    """Compile ``schemas/<name>`` once (imports between schemas resolve inside the package)."""
    resource = importlib.resources.files("schemas").joinpath(name)
    with importlib.resources.as_file(resource) as path:
        doc = etree.parse(str(path), parser=_make_parser())
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


def explain_invalid(schema_name: str, root: etree._Element, error=None) -> tuple[str, str]:
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
