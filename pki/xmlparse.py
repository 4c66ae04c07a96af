"""The one hardened XML parser of the whole project.

Every byte string that came from outside is parsed here and nowhere else (the
gateway's :func:`gateway.core.xml.parse` calls :func:`parse` and only turns its
error into the gateway's type):

* the size is checked before parsing (the HTTP layer also bounds the read);
* no DTD is loaded, no entity is resolved, no network is touched, and a
  document that *declares* a DTD or entities is refused outright (billion
  laughs, XXE, external DTD fetches);
* libxml2's default limits stay on (``huge_tree`` off: depth 256, text nodes
  of 10 MB), so a deep or enormous tree fails fast.

It lives in :mod:`pki` because the signature code parses what it signs and
verifies, and :mod:`pki` imports nothing from the gateway.
"""

from __future__ import annotations

import threading
from typing import Final

from lxml import etree

from pki.errors import XmlError

__all__ = ["DEFAULT_MAX_BYTES", "make_parser", "parse"]

#: Default maximum document size in bytes (the API's configured limit may be lower).
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024


def make_parser() -> etree.XMLParser:
    """A new parser with the settings above (for a document read from a trusted place, e.g. a schema)."""
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
    ident = threading.get_ident()
    parser = _PARSERS.get(ident)
    if parser is None:
        parser = _PARSERS[ident] = make_parser()
    return parser


def parse(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, what: str = "envelope") -> etree._Element:
    """Parse untrusted XML bytes into an element tree, or raise :class:`pki.errors.XmlError`.

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
        raise XmlError(f"document is {len(data)} bytes, the limit is {max_bytes}",
                       code=f"{what}.too_large")
    # Fast refusal of the usual case; the docinfo check below catches a DOCTYPE
    # placed after a long prolog comment (libxml2 never expands it: entities off).
    if b"<!DOCTYPE" in bytes(data[:4096]):
        raise XmlError("DTDs and entity declarations are not accepted", code=f"{what}.dtd_forbidden")
    try:
        root = etree.fromstring(bytes(data), parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise XmlError(f"not well-formed XML: {exc.msg}", code=f"{what}.not_xml") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise XmlError("DTDs are not accepted", code=f"{what}.dtd_forbidden")
    if what == "envelope":
        declared = (docinfo.encoding or "UTF-8").upper().replace("_", "-")
        utf16 = bytes(data[:2]) in (b"\xff\xfe", b"\xfe\xff") or bytes(data[:1]) == b"\x00" \
            or bytes(data[1:2]) == b"\x00"
        if utf16 or declared not in ("UTF-8", "UTF8", "US-ASCII", "ASCII"):
            raise XmlError(f"envelopes are UTF-8, not {'UTF-16' if utf16 else docinfo.encoding}",
                           code="envelope.encoding_unsupported", field="/")
    return root
