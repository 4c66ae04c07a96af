"""Reading e-CMS XML into records, and the small parsers (dates, code tables, MIME types, base64).

Reading takes an element already checked by :func:`gateway.core.ecmswire.soap.parse_request`
(schema-valid once blank optional structures are set aside, :mod:`.empties`, which reading skips); the business checks the schema cannot express (dates, code tables, base64) raise
:class:`EcmsError` with a stable domain code and the field.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Mapping
from enum import Enum
from typing import Final

from lxml import etree

from gateway.core.ecmswire.empties import is_blank
from gateway.core.ecmswire.errors import EcmsError
from gateway.core.ecmswire.records import BinaryObject, EcmsLetter, EcmsNotifier, Party, Reference, Signer
from gateway.core.ecmswire.soap import DS_NS, RAM_NS
from gateway.core.ecmswire.tables import (
    EXT_TO_MIME,
    SECRET_CODES,
    SECRET_NAMES_TH,
    SPEED_CODES,
    SPEED_NAMES_TH,
)

_R = f"{{{RAM_NS}}}"
_DATE_RE: Final = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:T.*)?$")
_MIME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+\-]*/[a-z0-9][a-z0-9!#$&^_.+\-]*$")

# --------------------------------------------------------------------------- small parsers


def parse_date(value: str | None, field_name: str) -> dt.date:
    """yyyy-MM-dd (optionally with a time part); a Buddhist-era year (> 2400) is converted."""
    text = (value or "").strip()
    m = _DATE_RE.match(text)
    if not m:
        raise EcmsError(f"{text!r} is not a date (yyyy-MM-dd)", code="ecms.invalid_date", field=field_name)
    year, month, day = (int(g) for g in m.groups())
    if year > 2400:
        year -= 543
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise EcmsError(f"{text!r} is not a calendar date", code="ecms.invalid_date",
                        field=field_name) from None


def _norm_code(value: str | None, table: Mapping[str, Enum], names_th: Mapping[str, str],
               field_name: str) -> str:
    text = (value or "").strip()
    if not text:
        return "001"
    if text.isdigit() and 1 <= int(text) <= 4:
        return f"{int(text):03d}"
    for code, name in names_th.items():
        if text == name:
            return code
    for code, enum_value in table.items():
        if text.lower() == enum_value.value:
            return code
    raise EcmsError(f"{text!r} is not a known code (001-004)", code="ecms.invalid_code", field=field_name)


def speed_code(value: str | None, field_name: str = "SpeedCode") -> str:
    return _norm_code(value, SPEED_CODES, SPEED_NAMES_TH, field_name)


def secret_code(value: str | None, field_name: str = "SecretCode") -> str:
    return _norm_code(value, SECRET_CODES, SECRET_NAMES_TH, field_name)


def normalise_mime(value: str | None) -> str:
    text = (value or "").strip().lower()
    if _MIME_RE.match(text):
        return text
    if text.lstrip(".") in EXT_TO_MIME:
        return EXT_TO_MIME[text.lstrip(".")]
    return "application/octet-stream"


def decode_base64(text: str | None, field_name: str) -> bytes:
    compact = "".join((text or "").split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise EcmsError("not valid base64", code="ecms.invalid_binary", field=field_name) from None


# --------------------------------------------------------------------------- reading XML


class _Children:
    """The direct children of one element by tag, indexed in one pass.

    ``find`` goes through ElementPath, several times the cost of iterating the
    children once, and reading a letter takes about forty look-ups (a profile of
    the e-CMS letter path had ``read_letter`` at a tenth of the request). A
    multi-step path keeps ElementPath's meaning: the first match under *any* of
    the elements of the previous step.
    """

    __slots__ = ("_by_tag",)

    def __init__(self, el: etree._Element | None) -> None:
        by_tag: dict[object, list[etree._Element]] = {}
        if el is not None:
            for child in el:
                by_tag.setdefault(child.tag, []).append(child)
        self._by_tag = by_tag

    def all(self, tag: str) -> list[etree._Element]:
        return self._by_tag.get(tag, [])

    def first(self, tag: str, *path: str) -> etree._Element | None:
        level = self._by_tag.get(tag)
        if not path:
            return level[0] if level else None
        for step in path:
            level = [c for p in level or () for c in p.iterchildren(step)]
        return level[0] if level else None

    def text(self, tag: str, *path: str) -> str:
        if path:
            child = self.first(tag, *path)
        else:
            level = self._by_tag.get(tag)
            child = level[0] if level else None
        return "" if child is None else (child.text or "")


def _party(el: etree._Element | None) -> Party:
    k = _Children(el)
    return Party(
        department=k.text(f"{_R}DepartmentOrganization", f"{_R}ID").strip(),
        given_name=k.text(f"{_R}GivenName"), family_name=k.text(f"{_R}FamilyName"),
        job_title=k.text(f"{_R}JobTitle"), ministry=k.text(f"{_R}MinistryOrganization", f"{_R}ID").strip(),
    )


def _signer(el: etree._Element) -> Signer:
    k = _Children(el)
    return Signer(
        given_name=k.text(f"{_R}GivenName"), family_name=k.text(f"{_R}FamilyName"),
        title=k.text(f"{_R}Title") or k.text(f"{_R}JobTitle"),
        ministry=(k.text(f"{_R}MinistryCode") or k.text(f"{_R}MinistryOrganization", f"{_R}ID")).strip(),
        department=(k.text(f"{_R}DepartmentCode")
                    or k.text(f"{_R}DepartmentOrganization", f"{_R}ID")).strip(),
    )


def find_government_signature(gov_doc: etree._Element) -> etree._Element | None:
    """The GovernmentSignature: sibling of the letter (standard) or inside it (seen in one client)."""
    k = _Children(gov_doc)
    sig = k.first(f"{_R}GovernmentSignature")
    if sig is None:
        sig = k.first(f"{_R}CorrespondenceLetter", f"{_R}GovernmentSignature")
    return sig


def read_letter(gov_doc: etree._Element) -> EcmsLetter:
    """Read rsm:GovernmentDocument (schema-valid) into an :class:`EcmsLetter`."""
    letter_el = _Children(gov_doc).first(f"{_R}CorrespondenceLetter")
    k = _Children(letter_el)
    where = "GovernmentDocument/CorrespondenceLetter"
    refs = []
    for i, r in enumerate(k.all(f"{_R}ReferenceCorrespondence"), start=1):
        if is_blank(r):
            continue  # an empty placeholder (mil-doc writes one when a letter has no reference)
        rk = _Children(r)
        refs.append(Reference(id=rk.text(f"{_R}ID").strip(),
                              date=parse_date(rk.text(f"{_R}CorrespondenceDate"),
                                              f"{where}/ReferenceCorrespondence[{i}]/CorrespondenceDate"),
                              subject=rk.text(f"{_R}Subject")))
    main_el = k.first(f"{_R}MainLetterBinaryObject")
    main = None
    if main_el is not None and "".join((main_el.text or "").split()):
        main = BinaryObject(normalise_mime(main_el.get("mimeCode")),
                            decode_base64(main_el.text, f"{where}/MainLetterBinaryObject"))
    attachments = []
    for i, a in enumerate(k.all(f"{_R}AttachmentBinaryObject"), start=1):
        if not "".join((a.text or "").split()):
            continue  # clients emit empty placeholders
        attachments.append(BinaryObject(normalise_mime(a.get("mimeCode")),
                                        decode_base64(a.text, f"{where}/AttachmentBinaryObject[{i}]")))
    sig = find_government_signature(gov_doc)
    sk = _Children(sig)
    signer_el = sk.first(f"{_R}SignerParty")
    ds_sig = sk.first(f"{{{DS_NS}}}Signature")
    return EcmsLetter(
        id=k.text(f"{_R}ID").strip(),
        date=parse_date(k.text(f"{_R}CorrespondenceDate"), f"{where}/CorrespondenceDate"),
        subject=k.text(f"{_R}Subject").strip(),
        speed_code=speed_code(k.text(f"{_R}SpeedCode"), f"{where}/SpeedCode"),
        secret_code=secret_code(k.text(f"{_R}SecretCode"), f"{where}/SecretCode"),
        sender=_party(k.first(f"{_R}SenderParty")),
        receivers=tuple(_party(p) for p in k.all(f"{_R}ReceiverParty")),
        references=tuple(refs),
        attachment_text=k.text(f"{_R}Attachment"),
        send_date=k.text(f"{_R}SendDate").strip(),
        description=k.text(f"{_R}Description"),
        main_letter=main,
        attachments=tuple(attachments),
        signature_type=sk.text(f"{_R}TypeCode").strip() if sig is not None else "",
        signer=_signer(signer_el) if signer_el is not None and not is_blank(signer_el) else None,
        has_signature=ds_sig is not None,
        signature_xml=etree.tostring(ds_sig, with_tail=False) if ds_sig is not None else b"",
    )


def read_notifier(el: etree._Element) -> EcmsNotifier:
    """Read an unqualified notifier element (schema-valid)."""
    name = etree.QName(el).localname
    k = _Children(el)
    return EcmsNotifier(
        element=name,
        letter_id=k.text("LetterID").strip(),
        date=parse_date(k.text("CorrespondenceDate"), f"{name}/CorrespondenceDate"),
        subject=k.text("Subject"),
        accept_id=k.text("AcceptID").strip(),
        accept_date=k.text("AcceptDate").strip(),
        accept_department=k.text("AcceptDepartment", "Code").strip(),
        sender_department=k.text("SenderDepartment", "Code").strip(),
    )
