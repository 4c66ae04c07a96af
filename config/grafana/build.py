"""Writes saraban-gateway.json, the Grafana dashboard of the gateway's metrics (run after editing PANELS).

    python config/grafana/build.py

Thai titles first, English in brackets. Every query names only metrics that a gateway's /metrics
exposes (tests/integration/test_metrics_catalogue.py checks it, and that the JSON is this script's output).
Shared-state gauges come from the database and are the same from every gateway process, so queries take
max() over instances for them and sum() only for counters.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).with_name("saraban-gateway.json")
DS = {"type": "prometheus", "uid": "${datasource}"}
PER_MIN = "[5m])) * 60"

# (row title, [(panel title, kind, unit, [(expr, legend)])])
PANELS: list[tuple[str, list[tuple[str, str, str, list[tuple[str, str]]]]]] = [
    ("ปริมาณหนังสือ (Volumes)", [
        ("หนังสือที่รับเข้า ต่อนาที (Messages accepted per minute)", "timeseries", "short",
         [("sum by (type, channel) (rate(gateway_messages_accepted_total" + PER_MIN, "{{type}} {{channel}}")]),
        ("การปฏิเสธ ตามรหัส ต่อนาที (Refusals by code per minute)", "timeseries", "short",
         [("sum by (code) (rate(gateway_messages_rejected_total" + PER_MIN, "{{code}}")]),
        ("ส่งถึงปลายทางแล้ว ต่อนาที (Deliveries completed per minute)", "timeseries", "short",
         [("sum by (route) (rate(gateway_deliveries_delivered_total" + PER_MIN, "{{route}}"),
          ("sum by (route) (rate(gateway_delivery_retries_total" + PER_MIN, "ส่งซ้ำ (retry) {{route}}")]),
        ("ส่งซ้ำและซ้ำซ้อน ต่อนาที (Duplicates and requeues per minute)", "timeseries", "short",
         [("sum(rate(gateway_messages_duplicate_total" + PER_MIN, "ส่งซ้ำซ้อน (duplicate)"),
          ("sum(rate(gateway_deliveries_requeued_total" + PER_MIN, "ส่งใหม่โดยเจ้าหน้าที่ (requeued)")]),
    ]),
    ("ระยะเวลา (Latencies)", [
        ("เวลารับหนังสือ (Time to accept a submission)", "timeseries", "s",
         [(f"histogram_quantile({q}, sum by (le) (rate(gateway_submit_seconds_bucket[5m])))", f"p{p}")
          for q, p in ((0.5, 50), (0.9, 90), (0.99, 99))]),
        ("เวลาส่งหนึ่งครั้ง p90 (Delivery attempt p90)", "timeseries", "s",
         [("histogram_quantile(0.9, sum by (le, route) (rate(gateway_delivery_attempt_seconds_bucket[5m])))",
           "{{route}}")]),
        ("รับเข้าจนส่งถึง (Acceptance to delivery)", "timeseries", "s",
         [(f"histogram_quantile({q}, sum by (le) (rate(gateway_delivery_latency_seconds_bucket[15m])))", f"p{p}")
          for q, p in ((0.5, 50), (0.9, 90), (0.99, 99))]),
    ]),
    ("คิว (Queues)", [
        ("หนังสือรอส่ง ตามสถานะ (Waiting deliveries by state)", "timeseries", "short",
         [("max by (state) (gateway_queue_deliveries{state=~\"queued|sending|retry_wait|inbox\"})", "{{state}}"),
          ("max by (state) (gateway_queue_destinations{state=~\"queued|retry_wait\"})",
           "หน่วยงานที่รอ (destinations) {{state}}")]),
        ("รอนานที่สุด 10 หน่วยงาน (Oldest waiting letter, top 10 offices)", "table", "s",
         [("topk(10, max by (destination) "
           "(gateway_queue_oldest_seconds{state=~\"queued|sending|retry_wait\"}))", "{{destination}}")]),
        ("กล่องรับที่ยังไม่มารับ 10 หน่วยงาน (Pull inboxes not collected, top 10)", "table", "s",
         [("topk(10, max by (destination) (gateway_queue_oldest_seconds{state=\"inbox\"}))", "{{destination}}")]),
    ]),
    ("ปลายทางขัดข้องและหนังสือส่งไม่สำเร็จ (Failing offices and dead letters)", [
        ("วงจรเปิด (Circuits open)", "stat", "short",
         [("max(gateway_destinations_circuit_open)", "วงจรเปิด")]),
        ("หน่วยงานที่ส่งไม่สำเร็จ ตั้งแต่เมื่อ (Failing offices, failing for)", "table", "s",
         [("max by (destination) (gateway_destination_failing_seconds)", "{{destination}}")]),
        ("หนังสือส่งไม่สำเร็จรอเจ้าหน้าที่ (Dead letters waiting)", "stat", "short",
         [("max(gateway_dead_letters_waiting)", "รอเจ้าหน้าที่")]),
        ("หนังสือส่งไม่สำเร็จใหม่ ต่อชั่วโมง (New dead letters per hour)", "timeseries", "short",
         [("sum by (route) (increase(gateway_dead_letters_total[1h]))", "{{route}}")]),
    ]),
    ("ใบรับรอง บันทึกตรวจสอบ และระบบ (Certificates, audit, system)", [
        ("ใบรับรองของหน่วยงานใกล้หมดอายุ (Agency certificates expiring)", "stat", "short",
         [("max by (within) (gateway_agency_certificates_expiring)", "{{within}}")]),
        ("ความล่าช้าของการผนึกบันทึกตรวจสอบ (Audit sealing lag)", "timeseries", "s",
         [("max(gateway_audit_sealing_lag_seconds)", "อายุเหตุการณ์ที่ยังไม่ผนึก (lag)")]),
        ("เหตุการณ์ที่ยังไม่ผนึก (Unsealed audit events)", "timeseries", "short",
         [("max(gateway_audit_unsealed_events)", "ยังไม่ผนึก (unsealed)")]),
        ("ฐานข้อมูลตอบ (Database up)", "stat", "short", [("min(gateway_database_up)", "ฐานข้อมูล")]),
        ("ข้อผิดพลาดภายใน ต่อนาที (Internal errors per minute)", "timeseries", "short",
         [("sum by (edge) (rate(gateway_unhandled_errors_total" + PER_MIN, "{{edge}}")]),
        ("การดึงสถานะใบรับรอง OCSP/CRL ต่อนาที (Revocation fetches per minute)", "timeseries", "short",
         [("sum by (kind, outcome) (rate(gateway_pki_fetches_total" + PER_MIN, "{{kind}} {{outcome}}")]),
    ]),
]


def panel(pid: int, title: str, kind: str, unit: str, targets: list[tuple[str, str]], x: int, y: int) -> dict:
    out: dict = {
        "id": pid, "type": kind, "title": title, "datasource": DS,
        "gridPos": {"h": 8, "w": 12 if kind != "stat" else 6, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend,
                     **({"instant": True, "format": "table"} if kind == "table" else {})}
                    for i, (expr, legend) in enumerate(targets)],
    }
    if kind == "table":
        out["options"] = {"sortBy": [{"displayName": "Value", "desc": True}]}
    return out


def dashboard() -> dict:
    panels: list[dict] = []
    y, pid = 0, 1
    for row_title, row in PANELS:
        panels.append({"id": pid, "type": "row", "title": row_title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y, x = pid + 1, y + 1, 0
        for title, kind, unit, targets in row:
            p = panel(pid, title, kind, unit, targets, x, y)
            pid += 1
            x += p["gridPos"]["w"]
            if x >= 24:
                x, y = 0, y + 8
            panels.append(p)
        if x:
            y += 8
    return {
        "title": "เกตเวย์สารบรรณ (Saraban gateway)",
        "uid": "saraban-gateway",
        "description": "ปริมาณ เวลา คิว ปลายทางขัดข้อง หนังสือส่งไม่สำเร็จ ใบรับรอง บันทึกตรวจสอบ "
                       "(volumes, latencies, queues, circuits, dead letters, certificates, audit lag)",
        "tags": ["saraban", "gateway"],
        "timezone": "Asia/Bangkok",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "label": "แหล่งข้อมูล (Prometheus)", "type": "datasource",
                                 "query": "prometheus", "current": {}, "hide": 0}]},
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), ensure_ascii=False, indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
