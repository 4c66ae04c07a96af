"""Attachments outside the XML: letters of any size with bounded memory.

A base64 file inside the envelope costs memory several times over (the request
body, the parsed text node, the decoded bytes, the copies a database driver
makes), and libxml2 refuses a text node over 10 MB anyway. So a large file
travels beside the envelope, as AS4 carries payloads (SOAP with attachments):

* the request is ``multipart/related``; its **first part is the envelope**
  (``application/xml``), each further part is one file, raw bytes
  (``Content-Transfer-Encoding`` binary or absent), named by ``Content-ID:
  <att-1>``;
* in the envelope that file's ``Attachment`` carries ``Size``, ``Sha256`` and
  ``ContentRef`` ``cid:att-1`` instead of ``Content``. The author signs the
  Attachment element, so the signed digest binds the part to the letter; the
  gateway checks every part against the digest in the *verified* tree.

A part's own headers are not signed: every one is checked at the edge (printable ASCII of the
right shape for those the gateway reads, no control character nor undecodable byte in any),
else ``request.multipart_invalid`` naming the part and the header. What a receiver gets comes
from the verified envelope only: a file is stored, pushed and served under its signed
``Attachment`` ``MimeType`` (and, for a download, ``FileName``), never under the part's
``Content-Type``. A part whose Content-Type names another type than the signed one is refused
(``attachment.type_mismatch``, :func:`gateway.intake.checks._match_parts`): the sending system
contradicts its author, and saying so at once beats storing the letter under either type; a
generic one (absent, ``application/octet-stream``: what multipart libraries send by default)
says nothing and is fine.

The gateway never holds a whole part in memory. :func:`read_related` streams
each part to a spool file while hashing it (chunks of :data:`READ_CHUNK`),
within per-part, per-request and part-count limits; the accept transaction
then copies the spool files into ``message_part_chunks`` one
:data:`STORE_CHUNK` at a time (:mod:`gateway.storage.parts`), and deliveries
stream them back out (:func:`related_payload` for push, a streamed download
for pull inboxes). The receipt carries the SHA-256 of the envelope part, which
names every part's SHA-256: one digest still proves the whole submission.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from gateway.core import xml
from gateway.core.envelope import Envelope
from gateway.core.errors import EnvelopeError
from pki.digests import check_content

#: Bytes read from the network per step while spooling a part.
READ_CHUNK = 256 * 1024
#: Bytes per row of ``message_part_chunks``: big enough for few round trips, small enough to stay cheap.
STORE_CHUNK = 1024 * 1024

_CID = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,99}")
_BINARY_ENCODINGS = ("", "binary", "8bit", "7bit")
#: The type a part may carry instead of its signed MimeType: it says nothing (RFC 2046's default).
GENERIC_TYPE = "application/octet-stream"

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z\-]+"
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|\"(?:[^\"\\]|\\.)*\"))*"
                         r"[ \t]*;?[ \t]*")
_PRINTABLE = re.compile(r"[\t\x20-\x7e]*")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: The part headers the gateway reads, as it names them in a refusal.
READ_HEADERS = {h.lower(): h for h in ("Content-Type", "Content-ID", "Content-Transfer-Encoding",
                                         "Content-Encoding")}
#: Longest part header value the gateway reads (RFC 5322's line limit).
MAX_HEADER_CHARS = 998


def is_related(request: web.Request) -> bool:
    return request.content_type == "multipart/related"


@dataclass(frozen=True)
class SpooledPart:
    """One file received as a MIME part, on disk, with what was measured while it arrived."""

    content_id: str
    content_type: str
    """As received: the part's own Content-Type (lower case, no parameters; empty when absent),
    unsigned. Once checked (:func:`gateway.intake.checks._match_parts`): the signed Attachment's
    ``MimeType``, the only type stored and sent on."""
    path: Path
    size: int
    sha256: str
    """Hex SHA-256 of the part's bytes."""

    def read_chunks(self, size: int = STORE_CHUNK) -> Iterator[bytes]:
        with open(self.path, "rb") as fh:
            while chunk := fh.read(size):
                yield chunk

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()


@dataclass
class Spool:
    """Spool files of one request; :meth:`close` (or ``with``) removes them."""

    directory: Path
    parts: dict[str, SpooledPart] = field(default_factory=dict)

    @classmethod
    def create(cls, base: Path | None = None) -> Spool:
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        return cls(Path(tempfile.mkdtemp(prefix="sgw-parts-", dir=base)))

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Limits:
    max_envelope_bytes: int
    """The envelope part (the XML), as for a plain submission."""
    max_part_bytes: int
    """One file."""
    max_total_bytes: int
    """The whole request."""
    max_parts: int = 100
    """Files per request (the envelope allows at most 100 attachments)."""


def _invalid(message: str, field: str = "Content-Type") -> EnvelopeError:
    return EnvelopeError(message, code="request.multipart_invalid", field=field)


def _unreadable(exc: Exception, index: int) -> EnvelopeError:
    """A part whose header block aiohttp could not read: a header line with a control character or a
    name that is not a token (``InvalidHeader``), too many headers, or a broken body."""
    what = "a header line is not valid" if isinstance(exc, BadHttpMessage) else "it is not readable"
    # ascii(): the offending bytes are quoted with escapes, never echoed raw into the answer
    detail = ascii(exc.args[0] if isinstance(exc, BadHttpMessage) and exc.args else str(exc))[:200]
    return _invalid(f"part {index}: {what} ({detail})", field=f"part[{index}]")


def check_part_headers(headers: Mapping[str, str], where: str) -> None:
    """Every header of one part, before anything is read from it (``request.multipart_invalid``,
    ``field`` ``part[n]/<header>``): those the gateway reads are printable ASCII of at most
    :data:`MAX_HEADER_CHARS` (a Content-Type a media type), any other has no control character
    and no byte that is not UTF-8 (aiohttp hands those on as lone surrogates)."""
    for name, value in headers.items():
        read = READ_HEADERS.get(name.lower())
        field = f"{where}/{read or name}"
        if read is not None:
            if len(value) > MAX_HEADER_CHARS or not _PRINTABLE.fullmatch(value):
                raise _invalid(f"{read} must be printable ASCII of at most {MAX_HEADER_CHARS} characters, "
                               f"not {ascii(value)[:80]}", field=field)
        elif _CONTROL.search(value) or not value.isascii() and not _encodes(value):
            raise _invalid(f"{name} holds a control character or bytes that are not UTF-8", field=field)
    ctype = headers.get("Content-Type")
    if ctype is not None and not _MEDIA_TYPE.fullmatch(ctype.strip()):
        raise _invalid(f"Content-Type {ascii(ctype)[:80]} is not a media type (type/subtype)",
                       field=f"{where}/Content-Type")


def _encodes(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def media_type(headers: Mapping[str, str]) -> str:
    """The part's Content-Type without parameters, lower case; empty when absent."""
    return (headers.get("Content-Type") or "").split(";")[0].strip().lower()


async def read_related(request: web.Request, limits: Limits, *, spool_dir: Path | None = None
                       ) -> tuple[bytes, Spool]:
    """The envelope bytes and the spooled parts of a ``multipart/related`` submission.

    Codes: ``request.multipart_invalid`` (400), ``envelope.too_large`` and ``request.too_large`` and
    ``attachment.part_too_large`` (413). On any error nothing is left on disk.
    """
    if request.content_length is not None and request.content_length > limits.max_total_bytes:
        raise EnvelopeError(f"the body is {request.content_length} bytes, the limit is {limits.max_total_bytes}",
                            code="request.too_large")
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError, KeyError) as exc:  # no or bad boundary
        raise _invalid(f"not a readable multipart body: {exc}") from None
    spool = Spool.create(spool_dir)
    try:
        envelope = await _read_envelope_part(reader, limits)
        total = len(envelope)
        index = 1
        while True:
            try:
                part = await reader.next()
            except (ValueError, AssertionError, aiohttp.ClientPayloadError, BadHttpMessage) as exc:
                raise _unreadable(exc, index + 1) from None
            if part is None:
                break
            index += 1
            where = f"part[{index}]"
            check_part_headers(part.headers, where)
            if not isinstance(part, aiohttp.BodyPartReader):
                raise _invalid("nested multipart bodies are not accepted", field=where)
            if len(spool.parts) >= limits.max_parts:
                raise EnvelopeError(f"more than {limits.max_parts} parts", code="attachment.too_many",
                                    field=where)
            cid = (part.headers.get("Content-ID") or "").strip()
            cid = cid[1:-1] if cid.startswith("<") and cid.endswith(">") else cid
            if not _CID.fullmatch(cid):
                raise _invalid(f"Content-ID {cid!r} must be <Id> of an Attachment", field=f"{where}/Content-ID")
            if cid in spool.parts:
                raise _invalid(f"Content-ID <{cid}> appears twice", field=f"{where}/Content-ID")
            encoding = (part.headers.get("Content-Transfer-Encoding") or "").strip().lower()
            if encoding not in _BINARY_ENCODINGS or part.headers.get("Content-Encoding"):
                raise _invalid("parts are sent as raw bytes (Content-Transfer-Encoding binary)",
                               field=f"{where}/Content-Transfer-Encoding")
            spooled = await _spool_part(part, spool.directory / f"{len(spool.parts):03d}", cid,
                                        limits, budget=limits.max_total_bytes - total, where=where)
            total += spooled.size
            spool.parts[cid] = spooled
        return envelope, spool
    except BaseException:
        spool.close()
        raise


async def _read_envelope_part(reader: aiohttp.MultipartReader, limits: Limits) -> bytes:
    try:
        first = await reader.next()
    except (ValueError, AssertionError, aiohttp.ClientPayloadError, BadHttpMessage) as exc:
        raise _unreadable(exc, 1) from None
    if first is None:
        raise _invalid("the body has no part: the first part must be the envelope", field="part[1]")
    check_part_headers(first.headers, "part[1]")
    if not isinstance(first, aiohttp.BodyPartReader):
        raise _invalid("the first part must be the envelope (application/xml)", field="part[1]")
    ctype = media_type(first.headers)
    if ctype not in ("application/xml", "text/xml"):
        raise EnvelopeError(f"the first part must be the envelope as application/xml, not {ctype or 'untyped'}",
                            code="request.unsupported_media_type", field="part[1]/Content-Type")
    data = bytearray()
    while chunk := await first.read_chunk(READ_CHUNK):
        data += chunk
        if len(data) > limits.max_envelope_bytes:
            raise EnvelopeError(f"the envelope part is over {limits.max_envelope_bytes} bytes",
                                code="envelope.too_large", field="part[1]")
    return bytes(data)


async def _spool_part(part: aiohttp.BodyPartReader, path: Path, cid: str, limits: Limits, *, budget: int,
                      where: str) -> SpooledPart:
    digest = hashlib.sha256()
    size = 0
    with open(path, "wb") as fh:
        while True:
            try:
                chunk = await part.read_chunk(READ_CHUNK)
            except (ValueError, AssertionError, aiohttp.ClientPayloadError) as exc:
                raise _invalid(f"part <{cid}> is not readable: {exc}", field=where) from None
            if not chunk:
                break
            size += len(chunk)
            if size > limits.max_part_bytes:
                raise EnvelopeError(f"part <{cid}> is over {limits.max_part_bytes} bytes",
                                    code="attachment.part_too_large", field=where)
            if size > budget:
                raise EnvelopeError(f"the body is over {limits.max_total_bytes} bytes", code="request.too_large")
            digest.update(chunk)
            fh.write(chunk)
    return SpooledPart(content_id=cid, content_type=media_type(part.headers), path=path, size=size,
                       sha256=digest.hexdigest())


# --------------------------------------------------------------------------- sending


@dataclass(frozen=True)
class PartInfo:
    """A stored part, as deliveries and downloads describe it."""

    content_id: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class SignedFile:
    """What the verified envelope says of a file beside it: all that a download may tell the receiver."""

    mime_type: str
    file_name: str

    @property
    def content_disposition(self) -> str:
        """``attachment`` with the name twice (RFC 6266): an ASCII stand-in for old clients, then the exact
        name as ``filename*`` (RFC 5987: UTF-8, percent-encoded), so a Thai name arrives intact and no
        character of it (quote, CR, LF, slash) can end the header or name a path."""
        fallback = "".join(c if c.isascii() and (c.isalnum() or c in " ._-()+,") else "_"
                           for c in self.file_name).strip() or "file"
        exact = urllib.parse.quote(self.file_name, safe="")
        return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}"


def signed_files(envelope: bytes) -> dict[str, SignedFile]:
    """Content-ID -> the signed ``MimeType`` and ``FileName`` of each Attachment whose file travels
    beside ``envelope`` (the bytes the receiver verifies)."""
    ns = f"{{{xml.ENVELOPE_NS}}}"
    return {a.get("Id") or "": SignedFile(mime_type=a.findtext(f"{ns}MimeType") or GENERIC_TYPE,
                                          file_name=a.findtext(f"{ns}FileName") or a.get("Id") or "")
            for a in xml.parse(envelope).iterfind(f"{ns}Attachments/{ns}Attachment")
            if a.find(f"{ns}ContentRef") is not None}


def signed_file(envelope: bytes, content_id: str) -> SignedFile | None:
    """The signed type and name of part ``<content_id>``; None when the envelope names no such part."""
    return signed_files(envelope).get(content_id)


def as_signed(envelope: bytes, infos: Sequence[PartInfo]) -> tuple[PartInfo, ...]:
    """The stored parts with each MIME type as ``envelope`` signs it: what a listing shows and a push
    sends never rests on the stored column (rows written before issue 13 held the part's own header)."""
    if not infos:
        return ()
    signed = signed_files(envelope)
    return tuple(dataclasses.replace(p, content_type=signed[p.content_id].mime_type) if p.content_id in signed
                 else p for p in infos)


def related_payload(envelope: bytes, parts: Sequence[PartInfo],
                    open_part: Callable[[str], AsyncIterator[bytes]]) -> aiohttp.MultipartWriter:
    """A streamed ``multipart/related`` body: the envelope first, then each part read chunk by chunk.

    A fresh writer per attempt: the part streams can be read once.
    """
    writer = aiohttp.MultipartWriter("related")
    writer.headers["Content-Type"] = (f'multipart/related; boundary="{writer.boundary}"; '
                                      'type="application/xml"; start="<envelope>"')
    writer.append(envelope, {"Content-Type": "application/xml; charset=utf-8", "Content-ID": "<envelope>"})
    for p in parts:
        writer.append(open_part(p.content_id), {
            "Content-Type": p.content_type, "Content-ID": f"<{p.content_id}>",
            "Content-Transfer-Encoding": "binary", "Content-Length": str(p.size)})
    return writer


def build_related(envelope: bytes, files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """(body, content type) of a small in-memory multipart/related request: for clients and tests.

    ``files`` maps Content-ID to (MIME type, bytes).
    """
    boundary = "saraban-" + hashlib.sha256(envelope).hexdigest()[:24]
    out = bytearray()
    for cid, ctype, data in [("envelope", "application/xml; charset=utf-8", envelope),
                             *[(c, t, d) for c, (t, d) in files.items()]]:
        out += (f"--{boundary}\r\nContent-Type: {ctype}\r\nContent-ID: <{cid}>\r\n"
                f"Content-Transfer-Encoding: binary\r\n\r\n").encode("ascii")
        out += data
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode("ascii")
    return bytes(out), f'multipart/related; boundary="{boundary}"; type="application/xml"; start="<envelope>"'


async def inline_external(env: Envelope, open_part: Callable[[str], AsyncIterator[bytes]]) -> Envelope:
    """The envelope record with each external file read into memory (``Content`` instead of ``ContentRef``).

    Only for routes whose protocol cannot carry a file beside the XML (e-CMS inlines base64); the
    content is checked against the declared (signed) SHA-256 as it is read back.
    """
    if not any(a.external for a in env.attachments):
        return env
    out = []
    for a in env.attachments:
        if a.external:
            data = bytearray()
            async for chunk in open_part(a.id):
                data += chunk
            check_content(f"Attachments/Attachment[@Id='{a.id}']", bytes(data), declared_size=a.size,
                          declared_sha256=a.sha256)
            a = dataclasses.replace(a, content=bytes(data), external=False, declared_size=None,
                                    declared_sha256=None)
        out.append(a)
    return dataclasses.replace(env, attachments=tuple(out))
