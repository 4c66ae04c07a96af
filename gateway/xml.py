"""The one hardened XML entry point of the whole project.

Every byte string that came from outside is parsed here and nowhere else:

* the size is checked before parsing (the HTTP layer also bounds the read);
* no DTD is loaded, no entity is resolved, no network is touched, and a
  document that *declares* a DTD or entities is refused outright (billion
  laughs, XXE, external DTD fetches);
* libxml2's default limits stay on (``huge_tree`` off: depth 256, text nodes
  of 10 MB), so a deep or enormous tree fails fast.

Schemas are compiled once through :mod:`importlib.resources` and cached;
validation on the hot path uses lxml's XMLSchema (libxml2, ~25x faster than
xmlschema). :func:`explain_invalid` uses xmlschema only after a document has
already failed, for its clearer error paths.
"""

from __future__ import annotations

import functools
import importlib.resources
from typing import Final

from lxml import etree

from gateway.errors import EnvelopeError

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

    Codes: ``<what>.too_large``, ``<what>.not_xml``, ``<what>.dtd_forbidden``.
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
    return root


@functools.cache
def load_schema(name: str) -> etree.XMLSchema:
    """Compile ``schemas/<name>`` once (imports between schemas resolve inside the package)."""
    resource = importlib.resources.files("schemas").joinpath(name)
    with importlib.resources.as_file(resource) as path:
        doc = etree.parse(str(path), parser=_make_parser())
        return etree.XMLSchema(doc)


@functools.cache
def _xmlschema(name: str):
    import xmlschema

    resource = importlib.resources.files("schemas").joinpath(name)
    with importlib.resources.as_file(resource) as path:
        return xmlschema.XMLSchema(str(path))


def explain_invalid(schema_name: str, root: etree._Element) -> tuple[str, str]:
    """For a document that failed validation: (field path, reason), from xmlschema."""
    try:
        schema = _xmlschema(schema_name)
        for error in schema.iter_errors(root):
            path = error.path or "/"
            reason = error.reason or str(error.message)
            return _strip_ns(path), reason
    except Exception:  # xmlschema is only an explainer; never let it turn 400 into 500
        pass
    return "/", "document does not match the schema"


def path_of(element: etree._Element) -> str:
    """A readable path of an element without namespaces, e.g. ``Envelope/Letter/Subject``."""
    tree = element.getroottree()
    if element is tree.getroot():
        return _strip_ns(element.tag)
    return _strip_ns(f"{tree.getroot().tag}/{tree.getelementpath(element)}")


def _strip_ns(path: str) -> str:
    import re

    return re.sub(r"\{[^}]*\}", "", path)


def validate(schema_name: str, root: etree._Element, *, what: str = "envelope") -> None:
    """Validate against a cached schema; raise ``<what>.schema_invalid`` naming the field."""
    schema = load_schema(schema_name)
    if schema.validate(root):
        return
    error = schema.error_log.last_error
    field, reason = explain_invalid(schema_name, root)
    message = reason if reason else (error.message if error is not None else "invalid")
    raise EnvelopeError(message, code=f"{what}.schema_invalid", field=field)
