"""PDF: PAdES sign and validate through pyHanko's async API, the Thai receiving stamp, rendering."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest

from pki import pdf
from pki.certfactory import CertFactory
from pki.errors import PkiError
from pki.thaidate import thai_date, thai_time
from pki.trust import TrustStore
from tests.support import rewrite_page_after_signing

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
BANGKOK = dt.timezone(dt.timedelta(hours=7))


def render_gray(pdf_bytes: bytes, name: str) -> tuple[int, int, bytes]:
    """Render page 1 with pdftoppm: write a PNG artefact and return the page as 8-bit gray pixels (PGM)."""
    ARTIFACTS.mkdir(exist_ok=True)
    source = ARTIFACTS / f"{name}.pdf"
    source.write_bytes(pdf_bytes)
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile", str(source),
                    str(ARTIFACTS / name)], check=True, capture_output=True)
    assert (ARTIFACTS / f"{name}.png").stat().st_size > 0
    pgm = subprocess.run(["pdftoppm", "-gray", "-r", "60", "-f", "1", "-l", "1", "-singlefile", str(source)],
                         check=True, capture_output=True).stdout
    return parse_pgm(pgm)


def parse_pgm(data: bytes) -> tuple[int, int, bytes]:
    fields, pos = [], 0
    while len(fields) < 4:  # magic, width, height, maxval; '#' comments are not written by pdftoppm
        while data[pos:pos + 1].isspace():
            pos += 1
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    assert fields[0] == b"P5" and fields[3] == b"255"
    width, height = int(fields[1]), int(fields[2])
    pixels = data[pos + 1:]
    assert len(pixels) == width * height
    return width, height, pixels


def dark_pixels(image: tuple[int, int, bytes], x0: float, y0: float, x1: float, y1: float) -> int:
    """Pixels darker than mid-gray in a region given as fractions of the page (origin top-left)."""
    width, height, pixels = image
    count = 0
    for y in range(int(y0 * height), int(y1 * height)):
        row = pixels[y * width:(y + 1) * width]
        count += sum(1 for v in row[int(x0 * width):int(x1 * width)] if v < 128)
    return count


@pytest.fixture(scope="module")
def signed_pdf(dev_pki) -> bytes:
    # the synchronous wrapper, outside any event loop, as a script would use it
    return pdf.sign_pdf(pdf.make_demo_pdf(), dev_pki.agency_signer("00001"), reason="ลงนามหนังสือราชการ")


async def test_unsigned_pdf_is_reported_not_raised(trust):
    report = await pdf.validate_pdf(pdf.make_demo_pdf(), trust)
    assert report.status == "unsigned" and not report.signed and not report.ok


async def test_unreadable_pdf_raises(trust):
    with pytest.raises(PkiError) as info:
        await pdf.validate_pdf(b"%PDF-1.7\nnot really", trust)
    assert info.value.code == "pdf.unreadable"


async def test_sign_and_validate(signed_pdf, trust):
    report = await pdf.validate_pdf(signed_pdf, trust)
    assert report.status == "valid"
    (sig,) = report.signatures
    assert sig.intact and sig.valid and sig.trusted and sig.agency_code == "00001"
    assert sig.coverage == "ENTIRE_FILE" and sig.modification_level == "NONE" and sig.pyhanko_bottom_line
    assert sig.modifications_allowed and sig.signer is not None
    assert sig.signing_time is not None


async def test_async_signing_inside_the_loop_and_sync_refusal(dev_pki, trust):
    signer = dev_pki.agency_signer("00002")
    with pytest.raises(RuntimeError):
        pdf.sign_pdf(pdf.make_demo_pdf(), signer)  # a running loop: the sync wrapper refuses clearly
    signed = await pdf.async_sign_pdf(pdf.make_demo_pdf(), signer)
    assert (await pdf.validate_pdf(signed, trust)).signatures[0].agency_code == "00002"


async def test_untrusted_and_tampered_pdf_signatures(signed_pdf, dev_pki):
    foreign = TrustStore([CertFactory.new_root("Other Root").ca.cert], ocsp=False)  # trusts another root only
    report = await pdf.validate_pdf(signed_pdf, foreign)
    assert report.status == "invalid" and report.signatures[0].intact and not report.signatures[0].trusted
    marker = b"No. 0105/123"
    assert marker in signed_pdf
    tampered = signed_pdf.replace(marker, b"No. 9999/123")
    report = await pdf.validate_pdf(tampered, dev_pki.trust_store(ocsp=False))
    assert not report.ok and not report.signatures[0].intact


async def test_content_rewritten_after_signing_is_not_ok(signed_pdf, trust):
    changed = rewrite_page_after_signing(signed_pdf)
    assert changed.startswith(signed_pdf)
    (sig,) = (await pdf.validate_pdf(changed, trust)).signatures
    # the signed revision still verifies, but what the page shows now is not what was signed
    assert sig.signature_holds and sig.coverage == "ENTIRE_REVISION"
    assert sig.modification_level == "OTHER" and not sig.modifications_allowed and not sig.ok


async def test_stamp_with_a_rewritten_page_is_not_ok(signed_pdf, trust):
    stamped = await asyncio.to_thread(pdf.stamp_received, signed_pdf, agency_name="กระทรวงมหาดไทย",
                                      registry_number="1/2569",
                                      received_at=dt.datetime(2026, 11, 22, 14, 5, tzinfo=BANGKOK))
    (sig,) = (await pdf.validate_pdf(rewrite_page_after_signing(stamped), trust)).signatures
    assert sig.modification_level == "OTHER" and not sig.ok, "a stamp does not excuse a later content change"


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils is not installed")
async def test_receiving_stamp_keeps_the_signature_and_is_visible(signed_pdf, trust):
    received_at = dt.datetime(2026, 11, 22, 14, 5, tzinfo=BANGKOK)
    stamped = await asyncio.to_thread(pdf.stamp_received, signed_pdf, agency_name="กระทรวงมหาดไทย",
                                      registry_number="1234/2569", received_at=received_at)
    assert stamped.startswith(signed_pdf)  # incremental: the signed revision is untouched
    report = await pdf.validate_pdf(stamped, trust)
    (sig,) = report.signatures
    assert report.ok and sig.intact and sig.valid and sig.trusted
    assert sig.coverage == "ENTIRE_REVISION"  # the stamp is a later revision, and reported as such
    # an added annotation, nothing else: allowed, and pyHanko agrees with the gateway's extra rule
    assert sig.modification_level == "ANNOTATIONS" and sig.modifications_allowed and sig.pyhanko_bottom_line
    before = render_gray(signed_pdf, "pdf-signed")
    after = render_gray(stamped, "pdf-stamped")
    top_right = (0.55, 0.0, 1.0, 0.2)
    assert dark_pixels(before, *top_right) == 0
    assert dark_pixels(after, *top_right) > 200  # border and four lines of Thai text
    bottom = (0.0, 0.5, 1.0, 1.0)
    assert dark_pixels(after, *bottom) == dark_pixels(before, *bottom)  # nothing else moved
    assert (ARTIFACTS / "pdf-stamped.png").exists()


def test_stamp_needs_a_font(signed_pdf, monkeypatch):
    monkeypatch.setattr(pdf, "THAI_FONT_CANDIDATES", ("/nonexistent/Garuda.ttf",))
    monkeypatch.delenv("SARABAN_THAI_FONT", raising=False)
    with pytest.raises(PkiError) as info:
        pdf.stamp_received(signed_pdf, agency_name="x", registry_number="1",
                           received_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert info.value.code == "pdf.font_missing" and "fonts-thai-tlwg" in info.value.message


def test_thai_dates():
    assert thai_date(dt.date(2026, 11, 22)) == "22 พ.ย. 2569"
    assert thai_date(dt.date(2026, 11, 22), short=False) == "22 พฤศจิกายน 2569"
    assert thai_date(dt.date(2024, 1, 1), thai_digits=True) == "๑ ม.ค. ๒๕๖๗"
    # an aware datetime is shown in Thailand time: 20:00 UTC on 31 Dec is 1 Jan 03:00 in Bangkok
    late = dt.datetime(2025, 12, 31, 20, 0, tzinfo=dt.UTC)
    assert thai_date(late) == "1 ม.ค. 2569" and thai_time(late) == "03.00"
