"""Thai dates: Buddhist era (พุทธศักราช, B.E. = C.E. + 543) with Thai month names.

Used on the receiving stamp (ตรารับ) and reusable by the web UI::

    >>> thai_date(datetime.date(2026, 11, 22))
    '22 พ.ย. 2569'
    >>> thai_date(datetime.date(2026, 11, 22), short=False)
    '22 พฤศจิกายน 2569'
"""

from __future__ import annotations

import datetime as dt
from typing import TypeVar

__all__ = ["BE_OFFSET", "MONTHS", "MONTHS_SHORT", "thai_date", "thai_time", "buddhist_year"]

#: Years between the Christian era and the Buddhist era.
BE_OFFSET = 543

MONTHS = ("มกราคม", "กุมภาพันธ์", "มีนาคม", "เมษายน", "พฤษภาคม", "มิถุนายน",
          "กรกฎาคม", "สิงหาคม", "กันยายน", "ตุลาคม", "พฤศจิกายน", "ธันวาคม")
MONTHS_SHORT = ("ม.ค.", "ก.พ.", "มี.ค.", "เม.ย.", "พ.ค.", "มิ.ย.",
                "ก.ค.", "ส.ค.", "ก.ย.", "ต.ค.", "พ.ย.", "ธ.ค.")

_TH = dt.timezone(dt.timedelta(hours=7), "ICT")
_THAI_DIGITS = str.maketrans("0123456789", "๐๑๒๓๔๕๖๗๘๙")


def buddhist_year(d: dt.date) -> int:
    return d.year + BE_OFFSET


_D = TypeVar("_D", dt.date, dt.datetime)


def _local(d: _D) -> _D:
    # An aware datetime is shown in Thailand time (UTC+7), whatever zone it came in.
    if isinstance(d, dt.datetime) and d.tzinfo is not None:
        return d.astimezone(_TH)
    return d


def thai_date(d: dt.date | dt.datetime, short: bool = True, *, thai_digits: bool = False) -> str:
    """``22 พ.ย. 2569`` (short) or ``22 พฤศจิกายน 2569``; aware datetimes are converted to UTC+7 first."""
    d = _local(d)
    month = (MONTHS_SHORT if short else MONTHS)[d.month - 1]
    text = f"{d.day} {month} {buddhist_year(d)}"
    return text.translate(_THAI_DIGITS) if thai_digits else text


def thai_time(t: dt.datetime | dt.time, *, thai_digits: bool = False) -> str:
    """``14.05`` (the Thai official style uses a dot; "น." is added by the caller where wanted)."""
    if isinstance(t, dt.datetime):
        t = _local(t).time()
    text = f"{t.hour:02d}.{t.minute:02d}"
    return text.translate(_THAI_DIGITS) if thai_digits else text
