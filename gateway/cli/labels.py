"""The CLI's one table from codes to what a person reads: Thai first, the code beside it in brackets
(``ด่วนมาก (very-urgent)``, ``ส่งถึงแล้ว (delivered)``), Buddhist-era dates in Bangkok time; and the
width of Thai text in a terminal, for the columns of a listing. ``--json`` output never goes
through here: machines read the codes and ISO dates."""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Mapping

from gateway.core.agency import KINDS
from gateway.core.envelope import SECRECY_TH, SPEED_TH
from gateway.core.labels import ROUTE_TH, STATUS_TH
from pki.thaidate import thai_date, thai_time

SPEED = {s.value: th for s, th in SPEED_TH.items()}
SECRECY = {s.value: th for s, th in SECRECY_TH.items()}
STATUS = STATUS_TH
#: Message types (``messages.message_type``).
MESSAGE_TYPE = {"letter": "หนังสือ", "notifier": "แจ้งผลการรับ", "receipt": "ใบตอบรับ"}
ROUTE = ROUTE_TH

#: Console users' roles.
ROLE = {"operator": "เจ้าหน้าที่ปฏิบัติการ", "auditor": "ผู้ตรวจสอบ", "admin": "ผู้ดูแลระบบ",
        "agency": "เจ้าหน้าที่หน่วยงาน"}


def coded(table: Mapping[str, str], code: str | None) -> str:
    """``ส่งถึงแล้ว (delivered)``; a code the table does not know as it is; none as a dash."""
    if not code:
        return "-"
    label = table.get(code)
    return f"{label} ({code})" if label else code


def status(code: str | None) -> str:
    return coded(STATUS, code)


def route(code: str | None) -> str:
    return coded(ROUTE, code)


def kind(code: str | None) -> str:
    return coded(KINDS, code)


def when(value: dt.datetime | None) -> str:
    """``22 พ.ย. 2569 10.15 น.`` (Buddhist era, Bangkok time)."""
    return f"{thai_date(value)} {thai_time(value)} น." if value is not None else "-"


def width(text: str) -> int:
    """Terminal columns: Thai vowel and tone marks above and below a letter take none."""
    return sum(0 if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf") else
               2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def pad(text: str, columns: int) -> str:
    """``text`` filled with spaces to ``columns`` terminal columns."""
    return text + " " * max(0, columns - width(text))


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Lines of aligned columns (two spaces apart), the header first."""
    widths = [max([width(h)] + [width(r[i]) for r in rows]) for i, h in enumerate(header)]
    return ["  ".join(pad(c, w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
