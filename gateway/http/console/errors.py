"""The console's one translation table: domain error codes to a page (status and Thai heading).

A records clerk sees a page in the console's language, never JSON: the heading
says in Thai (then English) what kind of problem it is, the message says what
exactly, and the code and request id let the operator on call find it in the
logs. Codes are looked up whole, then by family (the text before the first dot).
"""

from __future__ import annotations

from typing import Final

import aiohttp_jinja2
from aiohttp import web

from adapters.errors import AdapterError
from gateway.core.errors import GatewayError, translate
from pki.errors import PkiError

#: Code or family -> (HTTP status, heading: Thai, then English).
PAGES: Final[dict[str, tuple[int, str, str]]] = {
    "request.": (400, "คำขอไม่ถูกต้อง", "The request is not valid"),
    "request.too_large": (413, "ข้อมูลใหญ่เกินกำหนด", "The request is too large"),
    "auth.": (401, "กรุณาเข้าสู่ระบบ", "Please log in"),
    "auth.forbidden": (403, "ไม่มีสิทธิ์ดูหน้านี้", "You may not see this page"),
    "auth.csrf": (403, "แบบฟอร์มหมดอายุหรือไม่ได้ส่งจากหน้านี้ กรุณาเปิดหน้าใหม่แล้วส่งอีกครั้ง",
                  "The form expired or did not come from this console; open the page again"),
    "auth.no_agency": (403, "บัญชีนี้ไม่ได้ผูกกับหน่วยงาน", "This account has no agency"),
    "auth.too_many_attempts": (429, "ลองหลายครั้งเกินไป", "Too many attempts"),
    "throttled.": (429, "มีคำขอมากเกินไป", "Too many requests"),
    "not_found": (404, "ไม่พบสิ่งที่ค้นหา", "Not found"),
    "method_not_allowed": (405, "หน้านี้ใช้วิธีนี้ไม่ได้", "This page does not take this method"),
    "message.not_found": (404, "ไม่พบหนังสือ", "No such letter"),
    "delivery.": (409, "ทำรายการนี้ไม่ได้", "This cannot be done now"),
    "user.": (400, "ข้อมูลผู้ใช้ไม่ถูกต้อง", "The user details are not valid"),
    "audit.": (409, "บันทึกตรวจสอบ", "Audit log"),
    "envelope.": (422, "หนังสือไม่ผ่านการตรวจ", "The letter was refused"),
    "attachment.": (422, "สิ่งที่ส่งมาด้วยไม่ถูกต้อง", "An attachment is not valid"),
    "signature.": (422, "ลายมือชื่ออิเล็กทรอนิกส์ไม่ถูกต้อง", "The electronic signature is not valid"),
    "certificate.": (422, "ใบรับรองไม่น่าเชื่อถือ", "The certificate is not trusted"),
    "pdf.": (422, "เอกสาร PDF ใช้ไม่ได้", "The PDF cannot be used"),
    "unavailable.": (503, "ระบบไม่พร้อมชั่วคราว กรุณาลองใหม่", "Temporarily unavailable; try again"),
}
DEFAULT_PAGE: Final = (400, "ทำรายการไม่สำเร็จ", "The request could not be completed")


def page_for(code: str) -> tuple[int, str, str]:
    """(status, Thai heading, English heading) of a domain error code."""
    return translate(PAGES, code, DEFAULT_PAGE)


async def error_page(request: web.Request, exc: GatewayError | PkiError | AdapterError,
                     request_id: str, status: int | None = None) -> web.Response:
    """The page for ``exc`` (``status``: the router's own, for a path or method it does not know)."""
    page_status, heading_th, heading_en = page_for(exc.code)
    status = status or page_status
    response = aiohttp_jinja2.render_template("error.html", request, {
        "heading_th": heading_th, "heading_en": heading_en, "message": exc.message, "field": exc.field,
        "code": exc.code, "request_id": request_id}, status=status)
    response.headers["X-Request-Id"] = request_id
    return response
