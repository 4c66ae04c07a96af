"""Thai dates: Buddhist era (พุทธศักราช, B.E. = C.E. + 543) with Thai month names.

Used on the receiving stamp (ตรารับ) and reusable by the web UI::

    >>> thai_date(datetime.date(2026, 11, 22))
    '22 พ.ย. 2569'
    >>> thai_date(datetime.date(2026, 11, 22), short=False)
    '22 พฤศจิกายน 2569'
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TypeVar

__all__ = ["BE_OFFSET", "MONTHS", "MONTHS_SHORT", "DateError", "thai_date", "thai_time", "buddhist_year",
           "parse_date"]

#: Years between the Christian era and the Buddhist era.
BE_OFFSET = 543

MONTHS = ("มกราคม", "กุมภาพันธ์", "มีนาคม", "เมษายน", "พฤษภาคม", "มิถุนายน",
          "กรกฎาคม", "สิงหาคม", "กันยายน", "ตุลาคม", "พฤศจิกายน", "ธันวาคม")
MONTHS_SHORT = ("ม.ค.", "ก.พ.", "มี.ค.", "เม.ย.", "พ.ค.", "มิ.ย.",
                "ก.ค.", "ส.ค.", "ก.ย.", "ต.ค.", "พ.ย.", "ธ.ค.")

_TH = dt.timezone(dt.timedelta(hours=7), "ICT")
_THAI_DIGITS = str.maketrans("0123456789", "๐๑๒๓๔๕๖๗๘๙")
_ARABIC_DIGITS = str.maketrans("๐๑๒๓๔๕๖๗๘๙", "0123456789")
_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December")


def buddhist_year(d: dt.date) -> int:
    return d.year + BE_OFFSET


#: A year above this in a typed date is a Buddhist-era year (B.E. 2400 is C.E. 1857).
BE_FROM = 2400
_TYPED = re.compile(r"([0-9]{1,4})-([0-9]{1,2})-([0-9]{1,2})")


class DateError(ValueError):
    """A typed date that is not one, said in Thai (for the person who typed it) and in English."""

    def __init__(self, thai: str, english: str) -> None:
        super().__init__(english)
        self.thai = thai
        self.english = english


def parse_date(text: str) -> dt.date:
    """A date typed by a person, ``YYYY-MM-DD``: a year above 2400 is Buddhist era (2569-11-22 is
    2026-11-22), any other Christian era. Thai digits are read as digits. A day that does not
    exist in its own era's calendar (29 February of B.E. 2404 = C.E. 1861, not a leap year) is a
    :class:`DateError`, as is anything that is not such a date.

        >>> parse_date("2569-11-22")
        datetime.date(2026, 11, 22)
    """
    m = _TYPED.fullmatch(text.strip().translate(_ARABIC_DIGITS))
    if m is None:
        raise DateError("ไม่ใช่วันที่ (ปี-เดือน-วัน เช่น 2569-11-22)", "not a date (YYYY-MM-DD, e.g. 2569-11-22)")
    year, month, day = (int(g) for g in m.groups())
    buddhist = year > BE_FROM
    ce = year - BE_OFFSET if buddhist else year
    era_th, era_en = ("พ.ศ.", "B.E.") if buddhist else ("ค.ศ.", "C.E.")
    if not 1 <= month <= 12:
        raise DateError(f"ไม่มีเดือนที่ {month} (เดือนคือ 1 ถึง 12)", f"there is no month {month} (1 to 12)")
    if ce < 1:
        raise DateError(f"ปี {era_th} {year} อยู่นอกช่วงที่ค้นได้", f"the year {era_en} {year} is out of range")
    try:
        return dt.date(ce, month, day)
    except ValueError:
        leap = leap_en = ""
        if month == 2 and day == 29:
            same = f" = ค.ศ. {ce}" if buddhist else ""
            leap, leap_en = (f" ({era_th} {year}{same} ไม่ใช่ปีอธิกสุรทิน)",
                             f" ({era_en} {year}{same.replace('ค.ศ.', 'C.E.')} is not a leap year)")
        raise DateError(f"ไม่มีวันที่ {day} {MONTHS[month - 1]} {era_th} {year}{leap}",
                        f"there is no {day} {_MONTHS_EN[month - 1]} {era_en} {year}{leap_en}") from None


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
