"""Multipart part headers (issue 13, class 4): checked at the edge, never what a receiver is served.

* every part header that is read (Content-Type, Content-ID, Content-Transfer-Encoding) is
  printable ASCII of the right shape, and no part header carries a control character or bytes
  that are not UTF-8: else 400 ``request.multipart_invalid`` naming the part and the header;
* a file's MIME type and name come from its signed ``Attachment`` only: a part whose Content-Type
  names another type than the signed ``MimeType`` is refused (``attachment.type_mismatch``), a
  generic one (absent, ``application/octet-stream``) is fine; the recipient is served the signed
  ``MimeType`` and ``FileName`` (RFC 6266 / RFC 5987 for Thai names), even if the store says
  otherwise.
"""

from __future__ import annotations

import hashlib
import urllib.parse

import pytest

from gateway.core import appkeys as keys
from gateway.core.parts import build_related
from pki.sign import sign_envelope
from tests.integration.test_parts import BIG, MultipartOffice, auth, counts, external_letter, spool_files
from tests.support import CMI, KKN, OPM

ATT2 = b"Content-ID: <att-2>"


def _related(env: bytes, part_type: str = "image/tiff") -> tuple[bytes, str]:
    return build_related(env, {"att-2": (part_type, BIG)})


def _set_part_header(body: bytes, header: bytes, *, part: int = 2) -> bytes:
    """Insert a raw header line at the top of part ``part`` (1: the envelope)."""
    marker = b"Content-Type: application/xml" if part == 1 else ATT2
    start = body.index(marker) if part == 1 else body.rindex(b"Content-Type:", 0, body.index(marker))
    return body[:start] + header + b"\r\n" + body[start:]


def _replace_part_header(body: bytes, name: bytes, value: bytes) -> bytes:
    """Replace the value of header ``name`` in the file part <att-2>."""
    cid = body.index(ATT2)
    head_start = body.rindex(b"--saraban-", 0, cid)
    head_end = body.index(b"\r\n\r\n", head_start)
    lines = body[head_start:head_end].split(b"\r\n")
    lines = [name + b": " + value if line.lower().startswith(name.lower() + b":") else line for line in lines]
    if not any(line.lower().startswith(name.lower() + b":") for line in body[head_start:head_end].split(b"\r\n")):
        lines.append(name + b": " + value)
    return body[:head_start] + b"\r\n".join(lines) + body[head_end:]


@pytest.mark.parametrize(("case", "field"), [
    ("nul-in-content-type", "part[2]"),
    ("control-in-content-type", "part[2]"),
    ("not-utf8-content-type", "part[2]/Content-Type"),
    ("thai-content-type", "part[2]/Content-Type"),
    ("not-a-media-type", "part[2]/Content-Type"),
    ("empty-content-type", "part[2]/Content-Type"),
    ("not-utf8-content-id", "part[2]/Content-ID"),
    ("not-utf8-transfer-encoding", "part[2]/Content-Transfer-Encoding"),
    ("not-utf8-disposition", "part[2]/Content-Disposition"),
    ("nul-in-disposition", "part[2]"),
    ("not-utf8-header-name", "part[2]"),
    ("not-utf8-envelope-type", "part[1]/Content-Type"),
    ("nul-in-envelope-type", "part[1]"),
    ("not-utf8-other-header", "part[2]/X-Note"),
])
async def test_bad_part_headers_are_a_stable_400_naming_part_and_header(make_client, pool, workdir, case, field):
    client = await make_client()
    body, ctype = _related(external_letter())
    if case == "nul-in-content-type":
        body = _replace_part_header(body, b"Content-Type", b"image/ti\x00ff")
    elif case == "control-in-content-type":
        body = _replace_part_header(body, b"Content-Type", b"image/ti\x01ff")
    elif case == "not-utf8-content-type":
        body = _replace_part_header(body, b"Content-Type", b"image/\xff\xfetiff")
    elif case == "thai-content-type":
        body = _replace_part_header(body, b"Content-Type", "image/ทิฟ".encode())
    elif case == "not-a-media-type":
        body = _replace_part_header(body, b"Content-Type", b"tiff")
    elif case == "empty-content-type":
        body = _replace_part_header(body, b"Content-Type", b"")
    elif case == "not-utf8-content-id":
        body = _replace_part_header(body, b"Content-ID", b"<att-\xff2>")
    elif case == "not-utf8-transfer-encoding":
        body = _replace_part_header(body, b"Content-Transfer-Encoding", b"bin\xffary")
    elif case == "not-utf8-disposition":
        body = _replace_part_header(body, b"Content-Disposition", b'attachment; filename="\xff.tif"')
    elif case == "nul-in-disposition":
        body = _replace_part_header(body, b"Content-Disposition", b'attachment; filename="a\x00.tif"')
    elif case == "not-utf8-header-name":
        body = _set_part_header(body, b"X-\xffNote: 1")
    elif case == "not-utf8-envelope-type":
        body = body.replace(b"application/xml; charset=utf-8", b"application/xml; charset=\xff", 1)
    elif case == "nul-in-envelope-type":
        body = body.replace(b"application/xml; charset=utf-8", b"application/xml; charset=\x00", 1)
    elif case == "not-utf8-other-header":
        body = _set_part_header(body, b"X-Note: \xe0\xb8")
    r = await client.post("/v1/messages", data=body, headers=auth(ctype=ctype))
    answer = await r.json()
    assert (r.status, answer["code"], answer["field"]) == (400, "request.multipart_invalid", field), answer
    assert await counts(pool) == {"messages": 0, "deliveries": 0, "message_parts": 0, "message_part_chunks": 0,
                                  "audit_events": 0}
    assert spool_files(workdir) == []


async def test_a_part_type_that_contradicts_the_signed_mime_type_is_refused(make_client, pool, dev_pki):
    """The sender's multipart says text/html, its author signed image/tiff: the sending system is broken
    or hostile; refused (naming the part) rather than stored under either type."""
    client = await make_client(require_signature=True, seal=True, revocation="off")
    signed = sign_envelope(external_letter(message_id="lying-type"), dev_pki.agency_signer(OPM))
    for lie in ("text/html", "text/html; charset=utf-8", "application/pdf", "IMAGE/PNG"):
        body, ctype = _related(signed, lie)
        r = await client.post("/v1/messages", data=body, headers=auth(ctype=ctype))
        answer = await r.json()
        assert (r.status, answer["code"], answer["field"]) == (422, "attachment.type_mismatch",
                                                               "part <att-2>/Content-Type"), answer
    assert (await counts(pool))["messages"] == 0


async def _fetch_part(client) -> tuple[dict, object]:
    items = (await (await client.get("/v1/inbox", headers=auth(CMI))).json())["items"]
    (part,) = items[0]["parts"]
    return part, await client.get(part["href"], headers=auth(CMI))


def _assert_served_as_signed(got) -> None:
    assert got.status == 200
    assert got.headers["Content-Type"] == "image/tiff"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    disposition = got.headers["Content-Disposition"]
    assert disposition.startswith("attachment; ")
    # RFC 6266: an ASCII fallback, then the exact name (RFC 5987, UTF-8, percent-encoded)
    assert 'filename="' in disposition and disposition.split('filename="')[1].split('"')[0].isascii()
    assert "filename*=UTF-8''" + urllib.parse.quote("แผนที่.tif", safe="") in disposition


@pytest.mark.parametrize("part_type", ["image/tiff", "Image/TIFF; x=1", "application/octet-stream", None])
async def test_the_recipient_is_served_the_signed_type_and_name(make_client, pool, dev_pki, part_type):
    client = await make_client(require_signature=True, seal=True, revocation="off")
    signed = sign_envelope(external_letter(message_id="signed-type"), dev_pki.agency_signer(OPM))
    body, ctype = _related(signed, part_type or "image/tiff")
    if part_type is None:  # no Content-Type at all on the file part
        body = body.replace(b"Content-Type: image/tiff\r\n", b"", 1)
    r = await client.post("/v1/messages", data=body, headers=auth(ctype=ctype))
    assert r.status == 202, await r.text()
    assert await pool.fetchval("SELECT content_type FROM message_parts") == "image/tiff"
    part, got = await _fetch_part(client)
    assert part["content_type"] == "image/tiff"
    _assert_served_as_signed(got)
    assert await got.read() == BIG and got.headers["X-Saraban-Sha256"] == hashlib.sha256(BIG).hexdigest()


async def test_a_lying_type_in_the_store_is_never_what_is_served(make_client, pool):
    """A row written before the type came from the signed Attachment (or by anything else): the
    download still answers with the MimeType and FileName of the envelope the recipient verifies."""
    client = await make_client()
    body, ctype = _related(external_letter(message_id="stored-lie"))
    assert (await client.post("/v1/messages", data=body, headers=auth(ctype=ctype))).status == 202
    await pool.execute("UPDATE message_parts SET content_type = 'text/html'")
    _, got = await _fetch_part(client)
    _assert_served_as_signed(got)


async def test_a_lying_type_in_the_store_is_never_listed_nor_pushed(make_client, pool):
    """The inbox listing, the Link headers and the push adapter's multipart also take the type from
    the envelope, not from the stored column (rows stored in wave 1 held the part's own header)."""
    office = await MultipartOffice().start()
    try:
        client = await make_client(routes={KKN: {"kind": "push", "url": office.url}})
        body, ctype = _related(external_letter(message_id="stored-lie-2", recipients=(CMI, KKN)))
        assert (await client.post("/v1/messages", data=body, headers=auth(ctype=ctype))).status == 202
        await pool.execute("UPDATE message_parts SET content_type = 'text/html'")
        part, got = await _fetch_part(client)
        assert part["content_type"] == "image/tiff"
        _assert_served_as_signed(got)
        d = client.app[keys.DISPATCHER]
        assert await d.dispatch_once() == 1
        await d.drain()
        assert office.types == {"envelope": "application/xml; charset=utf-8", "att-2": "image/tiff"}
    finally:
        await office.runner.cleanup()
