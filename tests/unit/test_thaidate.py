"""Dates typed by people: Gregorian or Buddhist era, validated in their own era's calendar."""

import datetime as dt

import pytest

from pki.thaidate import DateError, parse_date


@pytest.mark.parametrize("text,date", [
    ("2569-11-22", dt.date(2026, 11, 22)),   # Buddhist era
    ("2026-11-22", dt.date(2026, 11, 22)),   # Gregorian
    ("2567-02-29", dt.date(2024, 2, 29)),    # B.E. 2567 = C.E. 2024, a leap year
    ("๒๕๖๙-๑๑-๒๒", dt.date(2026, 11, 22)),   # Thai digits
    (" 2569-1-5 ", dt.date(2026, 1, 5)),
    ("0001-01-01", dt.date(1, 1, 1)),
    ("9999-12-31", dt.date(9456, 12, 31)),   # above 2400: Buddhist era
])
def test_typed_dates(text, date):
    assert parse_date(text) == date


@pytest.mark.parametrize("text,thai", [
    ("2404-02-29", "ไม่มีวันที่ 29 กุมภาพันธ์ พ.ศ. 2404 (พ.ศ. 2404 = ค.ศ. 1861 ไม่ใช่ปีอธิกสุรทิน)"),
    ("2569-02-29", "ไม่มีวันที่ 29 กุมภาพันธ์ พ.ศ. 2569 (พ.ศ. 2569 = ค.ศ. 2026 ไม่ใช่ปีอธิกสุรทิน)"),
    ("1861-02-29", "ไม่มีวันที่ 29 กุมภาพันธ์ ค.ศ. 1861 (ค.ศ. 1861 ไม่ใช่ปีอธิกสุรทิน)"),
    ("2569-04-31", "ไม่มีวันที่ 31 เมษายน พ.ศ. 2569"),
    ("2569-13-01", "ไม่มีเดือนที่ 13 (เดือนคือ 1 ถึง 12)"),
    ("0000-01-01", "ปี ค.ศ. 0 อยู่นอกช่วงที่ค้นได้"),
    ("10000-01-01", "ไม่ใช่วันที่ (ปี-เดือน-วัน เช่น 2569-11-22)"),
    ("22/11/2569", "ไม่ใช่วันที่ (ปี-เดือน-วัน เช่น 2569-11-22)"),
    ("2569-11-22\x00", "ไม่ใช่วันที่ (ปี-เดือน-วัน เช่น 2569-11-22)"),
])
def test_dates_that_do_not_exist_are_refused_in_thai_and_english(text, thai):
    with pytest.raises(DateError) as e:
        parse_date(text)
    assert e.value.thai == thai and e.value.english and isinstance(e.value, ValueError)
