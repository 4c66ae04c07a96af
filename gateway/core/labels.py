"""Codes of the gateway's own states as a person reads them in Thai: one table for the console and
the CLI (speed and secrecy stand beside their enums in :mod:`gateway.core.envelope`)."""

from __future__ import annotations

#: Delivery statuses (``delivery_status``).
STATUS_TH = {"queued": "รอส่ง", "sending": "กำลังส่ง", "retry_wait": "รอลองใหม่", "inbox": "รอในกล่องรับ",
             "delivered": "ส่งถึงแล้ว", "dead": "ส่งไม่สำเร็จ", "withdrawn": "ถอนคืนแล้ว"}
#: Delivery routes (the directory's ``route.kind``).
ROUTE_TH = {"push": "ส่งตรงถึงระบบผู้รับ", "pull": "กล่องรับ", "ecms": "ระบบ e-CMS เดิม", "folder": "โฟลเดอร์",
            "via": "ผ่านหน่วยงานแม่ข่าย"}
