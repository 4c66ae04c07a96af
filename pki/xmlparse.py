"""The one hardened XML parser of the whole project.

Every byte string that came from outside is parsed here and nowhere else (the
gateway's :func:`gateway.core.xml.parse` calls :func:`parse` and only turns its
error into the gateway's type):

* the size is checked before parsing (the HTTP layer also bounds the read);
* no DTD is loaded, no entity is resolved, no network is touched, and a
  document that *declares* a DTD or entities is refused outright (billion
  laughs, XXE, external DTD fetches);
* libxml2's default limits stay on (``huge_tree`` off: depth 256, text nodes
  of 10 MB), so a deep or enormous tree fails fast;
* a byte order mark and the XML declaration must agree, checked on the raw
  bytes before lxml reads them (``<what>.encoding_unsupported``): libxml2
  trusts the BOM and ignores the declaration, so a UTF-8 BOM before
  ``encoding='UTF-16'`` was read as UTF-8 while strict receivers refuse it;
* the shape is bounded (``<what>.too_complex``, ``field`` naming the limit:
  ``depth``, ``attributes``, ``name``, ``namespace``): :data:`MAX_DEPTH`,
  :data:`MAX_ATTRIBUTES` (namespace declarations count), :data:`MAX_NAME`,
  :data:`MAX_NAMESPACE_URI`. They are checked while the tree is built: the
  bytes are fed to a pull parser in :data:`FEED_CHUNK` slices and each start
  tag is checked as it comes, so a hostile document stops at the first slice
  past a limit, long before a schema (which skips nothing but the signature
  zone) or the signature code sees it. Measured (parse only, before -> after,
  lxml 6.0 / libxml2 2.14, one core): a 5 kB envelope 0.012 -> 0.031 ms, a
  5 MB one (a large base64 attachment) 1.8 -> 2.0 ms, 5,000 recipients
  (10,000 elements) 0.8 -> 3.8 ms, where the XSD then takes 2.3 ms.
* a UTF-8 document up to :data:`FAST_MAX` bytes (every letter without a large
  attachment) with no ``<!DOCTYPE`` in its bytes is parsed in one call instead, and
  cleared by checks that run in C (:func:`_fast`): a regular expression for element
  names, each ``xmlns`` declaration's prefix and URI measured on the bytes, and one
  XPath for the depth, the attributes of an element (its ``n``-th attribute, ``n``
  one past the limit less every declaration in the document: libxml2 stops there)
  and the attribute names. Up to :data:`_SMALL` bytes (a DeliveryAck, a receipt) the
  bytes answer instead: no depth over the limit without as many ``<``, no element with
  more attributes than the ``=`` of the document, no long attribute name without as
  many name bytes before an ``=``. Every check is an upper bound: a document it does
  not clear (over a limit, or only looking so, e.g. a long name in a comment, or
  ``a = "x"``) goes through the pull parser above, which names the limit, so the
  codes and fields are the same either way. A 9.7 kB signed XAdES letter, the
  whole :func:`parse` (one core, best of 5, interleaved): 97-102 -> 78-80 µs; of
  what is left, libxml2's parse is 26 µs, freeing the tree ~10, the checks ~25.
  Instructions (callgrind, a 10 kB signed letter / a 322-byte DeliveryAck):
  0.79M / 117k before the byte answers and the single XPath, 0.72M / 79k after.

It lives in :mod:`pki` because the signature code parses what it signs and
verifies, and :mod:`pki` imports nothing from the gateway.
"""

from __future__ import annotations

import codecs
import re
import threading
from typing import Final

from lxml import etree

from pki.errors import XmlError

__all__ = ["DEFAULT_MAX_BYTES", "FAST_MAX", "MAX_ATTRIBUTES", "MAX_DEPTH", "MAX_NAME", "MAX_NAMESPACE_URI", "make_parser",
           "parse"]

#: Default maximum document size in bytes (the API's configured limit may be lower).
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024
#: Deepest element nesting. A signed envelope nests about 12 deep (XAdES properties inside
#: Signatures), an e-CMS SOAP request about 8.
MAX_DEPTH: Final = 64
#: Attributes plus namespace declarations on one element (a handful in any schema in use).
MAX_ATTRIBUTES: Final = 64
#: Characters of an element or attribute name, or of a namespace prefix (the longest in the schemas: 45).
MAX_NAME: Final = 256
#: Characters of a namespace URI (the longest in use, e-CMS: 74).
MAX_NAMESPACE_URI: Final = 1024
#: Bytes handed to the parser at a time: the limits are checked after each slice.
FEED_CHUNK: Final = 64 * 1024
#: UTF-8 documents up to this size are parsed in one call and cleared by checks in C (:func:`_fast`).
FAST_MAX: Final = 256 * 1024

_OPTIONS: Final = {"resolve_entities": False, "no_network": True, "load_dtd": False, "dtd_validation": False,
                   "huge_tree": False, "remove_blank_text": False, "collect_ids": True}


def make_parser() -> etree.XMLParser:
    """A new parser with the settings above (for a document read from a trusted place, e.g. a schema)."""
    return etree.XMLParser(**_OPTIONS)


def parse(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, what: str = "envelope") -> etree._Element:
    """Parse untrusted XML bytes into an element tree, or raise :class:`pki.errors.XmlError`.

    Codes: ``<what>.too_large``, ``<what>.not_xml``, ``<what>.dtd_forbidden``,
    ``<what>.encoding_unsupported`` (a byte order mark that the declaration contradicts),
    ``<what>.too_complex``; for the native envelope (``what="envelope"``, the default) also
    ``envelope.encoding_unsupported`` for any encoding but UTF-8: the standard is UTF-8
    (US-ASCII is a subset), so a letter declared ISO-8859-1 or TIS-620, or sent as UTF-16, is
    refused instead of being stored in bytes that receivers must transcode (UTF-8 Thai declared
    as ISO-8859-1 would even read as mojibake). e-CMS bodies keep what legacy clients declare:
    libxml2 decodes them and the gateway re-encodes in UTF-8.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("parse() takes bytes")
    if len(data) > max_bytes:
        raise XmlError(f"document is {len(data)} bytes, the limit is {max_bytes}",
                       code=f"{what}.too_large")
    data = bytes(data)
    # Fast refusal of the usual case; the docinfo check below catches a DOCTYPE
    # placed after a long prolog comment (libxml2 never expands it: entities off). One scan of the bytes
    # answers both this and :func:`_fast`'s question (the first occurrence is within the first 4 kB
    # exactly when ``b"<!DOCTYPE" in data[:4096]``).
    doctype_at = data.find(b"<!DOCTYPE")
    if 0 <= doctype_at <= 4096 - len(b"<!DOCTYPE"):
        raise XmlError("DTDs and entity declarations are not accepted", code=f"{what}.dtd_forbidden")
    _check_bom(data, what)
    root = _fast(data, doctype=doctype_at >= 0)
    if root is not None:  # UTF-8 with no DOCTYPE anywhere in its bytes (what the checks below establish)
        return root
    root = _read(data, what)
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise XmlError("DTDs are not accepted", code=f"{what}.dtd_forbidden")
    if what == "envelope":
        declared = (docinfo.encoding or "UTF-8").upper().replace("_", "-")
        utf16 = data[:2] in (b"\xff\xfe", b"\xfe\xff") or data[:1] == b"\x00" or data[1:2] == b"\x00"
        if utf16 or declared not in ("UTF-8", "UTF8", "US-ASCII", "ASCII"):
            raise XmlError(f"envelopes are UTF-8, not {'UTF-16' if utf16 else docinfo.encoding}",
                           code="envelope.encoding_unsupported", field="/")
    return root


# ---------------------------------------------------------------------------- byte order mark


#: Byte order marks, longest first (a UTF-32LE BOM begins like a UTF-16LE one).
_BOMS: Final = ((codecs.BOM_UTF32_BE, "UTF-32BE"), (codecs.BOM_UTF32_LE, "UTF-32LE"), (codecs.BOM_UTF8, "UTF-8"),
                (codecs.BOM_UTF16_BE, "UTF-16BE"), (codecs.BOM_UTF16_LE, "UTF-16LE"))
#: ``<?xml`` as each encoding writes it (XML 1.0, appendix F): which encoding the declaration is in.
_DECLARATION_IN: Final = ((b"<\x00\x00\x00?\x00\x00\x00", "UTF-32LE"), (b"\x00\x00\x00<\x00\x00\x00?", "UTF-32BE"),
                          (b"<\x00?\x00", "UTF-16LE"), (b"\x00<\x00?", "UTF-16BE"), (b"<?", "UTF-8"))
#: Encoding names a declaration may give under each BOM.
_AGREE: Final = {
    "UTF-8": {"UTF-8", "UTF8"},
    "UTF-16LE": {"UTF-16", "UTF16", "UTF-16LE", "UTF16LE"},
    "UTF-16BE": {"UTF-16", "UTF16", "UTF-16BE", "UTF16BE"},
    "UTF-32LE": {"UTF-32", "UTF32", "UTF-32LE", "UTF32LE", "UCS-4", "UCS4", "ISO-10646-UCS-4"},
    "UTF-32BE": {"UTF-32", "UTF32", "UTF-32BE", "UTF32BE", "UCS-4", "UCS4", "ISO-10646-UCS-4"},
}
#: The first byte of every byte order mark above.
_BOM_FIRST: Final = frozenset(mark[:1] for mark, _ in _BOMS)
_ENCODING_DECL = re.compile(r"<\?xml\s+version\s*=\s*(['\"])[^'\"]*\1\s+encoding\s*=\s*(['\"])([^'\"]{0,40})\2")


def _check_bom(data: bytes, what: str) -> None:
    """A byte order mark must agree with the XML declaration after it: the declaration written in the
    BOM's encoding, naming that encoding (or none). Without a BOM there is nothing to disagree."""
    if data[:1] not in _BOM_FIRST:  # the usual case, '<': no byte order mark
        return
    bom = next((name for mark, name in _BOMS if data.startswith(mark)), None)
    if bom is None:
        return
    rest = data[len(next(mark for mark, name in _BOMS if name == bom)):]
    written_in = next((name for start, name in _DECLARATION_IN if rest.startswith(start)), None)
    if written_in is None:  # no declaration (or not one libxml2 would read): the BOM alone decides
        return
    if written_in != bom:
        raise XmlError(f"the byte order mark says {bom}, the XML declaration is written in "
                       f"{'a single-byte encoding' if written_in == 'UTF-8' else written_in}",
                       code=f"{what}.encoding_unsupported", field="/")
    head = rest[:1024].decode(written_in.replace("-", "_").lower(), errors="replace")
    m = _ENCODING_DECL.match(head)
    if m is not None and m.group(3).upper().replace("_", "-") not in _AGREE[bom]:
        raise XmlError(f"the byte order mark says {bom}, the XML declaration says {m.group(3)!r}",
                       code=f"{what}.encoding_unsupported", field="/")


# ---------------------------------------------------------------------------- shape limits


def _read(data: bytes, what: str) -> etree._Element:
    """The tree, built by a pull parser fed :data:`FEED_CHUNK` bytes at a time, each start tag checked
    against the limits as it arrives (``<what>.not_xml``, ``<what>.too_complex``)."""
    parser = etree.XMLPullParser(events=("start-ns", "start", "end"), **_OPTIONS)
    depth = declarations = 0
    try:
        for at in range(0, len(data), FEED_CHUNK):
            parser.feed(data[at:at + FEED_CHUNK])
            for event, item in parser.read_events():
                if event == "start":  # per element: the common case costs a few comparisons, inline
                    depth += 1
                    keys = item.keys()
                    if depth > MAX_DEPTH or len(keys) + declarations > MAX_ATTRIBUTES or len(item.tag) > MAX_NAME \
                            or keys and max(map(len, keys)) > MAX_NAME:
                        _check_element(item, depth, declarations, what)
                    declarations = 0
                elif event == "end":
                    depth -= 1
                else:
                    declarations += 1
                    _check_namespace(item, what)
        return parser.close()
    except etree.XMLSyntaxError as exc:
        if (exc.msg or "").startswith("Excessive depth"):  # libxml2's own limit (256), past ours
            raise _too_complex(f"elements nest deeper than {MAX_DEPTH}", "depth", what) from None
        raise XmlError(f"not well-formed XML: {exc.msg}", code=f"{what}.not_xml") from None


def _too_complex(message: str, limit: str, what: str) -> XmlError:
    return XmlError(message, code=f"{what}.too_complex", field=limit)


def _check_namespace(declaration: tuple[str, str], what: str) -> None:
    prefix, uri = declaration
    if len(uri) > MAX_NAMESPACE_URI:
        raise _too_complex(f"a namespace URI of {len(uri)} characters (the limit is {MAX_NAMESPACE_URI})",
                           "namespace", what)
    if len(prefix) > MAX_NAME:
        raise _too_complex(f"a namespace prefix of {len(prefix)} characters (the limit is {MAX_NAME})", "name",
                           what)


def _check_element(element: etree._Element, depth: int, declarations: int, what: str) -> None:
    """Refuse a start tag over a limit (called when a quick look says it may be: names are Clark names,
    ``{uri}local``, whose URI is checked apart)."""
    keys = element.keys()
    tag = element.tag
    name = tag.rpartition("}")[2]
    where = f"element {name[:40]!r} at line {element.sourceline}"
    if depth > MAX_DEPTH:
        raise _too_complex(f"{where} nests {depth} deep (the limit is {MAX_DEPTH})", "depth", what)
    if len(keys) + declarations > MAX_ATTRIBUTES:
        raise _too_complex(f"{where} has {len(keys)} attributes and {declarations} namespace "
                           f"declarations (the limit is {MAX_ATTRIBUTES} together)", "attributes", what)
    longest = max(len(n.rpartition("}")[2]) for n in (tag, *keys))  # Clark names: the URI is checked apart
    if longest > MAX_NAME:
        raise _too_complex(f"{where}: a name of {longest} characters (the limit is {MAX_NAME})", "name", what)


# ---------------------------------------------------------------------------- one call, checks in C


#: An element deeper than MAX_DEPTH (each step is one level: libxml2 walks the tree once, level by level).
_DEEP: Final = "/*" * (MAX_DEPTH + 1)
#: An attribute whose local name is longer than MAX_NAME (namespace declarations are not attributes in libxml2).
_LONG_ATTRIBUTE_NAME: Final = f"/descendant::*/@*[string-length(local-name()) > {MAX_NAME}]"
#: Bytes that are not in any XML name (white space, markup delimiters, quotes, ``=``): what ends a name.
_NOT_NAME: Final = rb"[^ \t\r\n<>/=\"']"
#: A start tag whose qualified name is longer than MAX_NAME (its local name can be no longer). The class is
#: a byte bitmap (no ``\s`` category), which libsre tests in a few instructions a byte.
_LONG_TAG: Final = re.compile(rb"<" + _NOT_NAME + rb"{%d}" % (MAX_NAME + 1))
#: Small documents: an ``=`` after more than MAX_NAME name bytes (an attribute or a prefix that long), or
#: after white space (``a = "x"``: legal, never written by the tools in use; the pull parser reads it).
_LONG_ATTRIBUTE: Final = re.compile(rb"=(?:(?<=" + _NOT_NAME + rb"{%d}=)|(?<=[ \t\r\n]=))" % (MAX_NAME + 1))
#: Up to this size the bytes answer what they can (5 instructions a byte in libsre) instead of an XPath over
#: the tree (a call costs ~10k instructions, the attribute names ~2k each).
_SMALL: Final = 4096
#: A namespace declaration at an occurrence of ``xmlns``: the prefix (with its colon) and the URI.
_DECLARATION: Final = re.compile(rb"""xmlns(:[^\s=]*)?\s*=\s*(?:"([^"]*)"|'([^']*)')""")
#: The declarations lxml, libxml2 and most tools write: UTF-8 without asking the expression below.
_UTF8_DECLS: Final = (b"<?xml version='1.0' encoding='UTF-8'?>", b'<?xml version="1.0" encoding="UTF-8"?>',
                      b'<?xml version="1.0" encoding="utf-8"?>')
_UTF8_DECL: Final = re.compile(rb"""<\?xml[^>]*?encoding\s*=\s*["'](?:utf-?8|us-ascii|ascii)["']""", re.IGNORECASE)
_local = threading.local()


def _parser() -> etree.XMLParser:
    """This thread's parser (lxml's parsers and XPath expressions are not to be shared between threads)."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = make_parser()
    return parser


def _limits(deep: bool, nth: int, names: bool) -> etree.XPath:
    """This thread's XPath that is true when the tree is over a limit: ``deep``, an element nests deeper
    than MAX_DEPTH; ``nth`` (if not 0), an element has an ``nth`` attribute (a literal position: libxml2
    stops at it rather than count every attribute); ``names``, an attribute name is over MAX_NAME."""
    held: dict[tuple[bool, int, bool], etree.XPath] | None = getattr(_local, "limits", None)
    if held is None:
        held = _local.limits = {}
    xpath = held.get((deep, nth, names))
    if xpath is None:
        parts = ([_DEEP] if deep else []) + ([f"/descendant::*/@*[{nth}]"] if nth else []) \
            + ([_LONG_ATTRIBUTE_NAME] if names else [])
        xpath = held[(deep, nth, names)] = etree.XPath(f"boolean({' | '.join(parts)})")
    return xpath


def _fast(data: bytes, *, doctype: bool | None = None) -> etree._Element | None:
    """The tree of a small UTF-8 document within every limit, parsed in one call; ``None`` when the
    pull parser must decide (larger, another encoding, not well-formed, or not cleared by a check
    below: each is an upper bound, so ``None`` says "maybe over a limit", never the reverse).
    ``doctype``: whether ``b"<!DOCTYPE"`` occurs in ``data``, when the caller has looked (else looked up here)."""
    head = data[3:] if data.startswith(codecs.BOM_UTF8) else data
    if len(data) > FAST_MAX or head[:1] != b"<" or b"\x00" in head[:4]:  # not UTF-16/32, not EBCDIC
        return None
    if head.startswith(b"<?xml") and not head.startswith(_UTF8_DECLS) and b"encoding" in head[:head.find(b"?>")] \
            and not _UTF8_DECL.match(head):
        return None
    if doctype or (doctype is None and b"<!DOCTYPE" in data):  # (parse refused one in the first 4 kB)
        return None
    declarations = 0
    at = data.find(b"xmlns")
    while at >= 0:  # every declaration is written ``xmlns[:prefix] = "uri"``: byte lengths >= characters
        declarations += 1
        m = _DECLARATION.match(data, at)
        if m is not None and (len(m.group(1) or b"") > MAX_NAME + 1 or len(m.group(2) or m.group(3) or b"")
                              > MAX_NAMESPACE_URI):
            return None
        at = data.find(b"xmlns", at + 5)
    if declarations > MAX_ATTRIBUTES or _LONG_TAG.search(data) is not None:
        return None
    small = len(data) <= _SMALL
    if small and _LONG_ATTRIBUTE.search(data) is not None:
        return None
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError:
        return None
    # a small document answers in its bytes: no depth over MAX_DEPTH without as many '<' (one a start
    # tag), no element with more attributes and declarations than the '=' (one each) of the whole document
    deep = not small or data.count(b"<") > MAX_DEPTH
    nth = MAX_ATTRIBUTES - declarations + 1 if not small or data.count(b"=") > MAX_ATTRIBUTES else 0
    if (deep or nth or not small) and _limits(deep, nth, not small)(root):
        return None
    return root
