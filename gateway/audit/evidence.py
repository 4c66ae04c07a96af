"""Evidence bundle of one letter: what was received, what was forwarded, what came back, and proof.

A ZIP holding:

``received.xml``            the exact bytes the sender submitted
``forwarded.xml``           the sealed envelope the gateway forwarded
``parts/<Id>``              files that travelled beside the envelope (multipart), as received
``submission-receipt.xml``  the signed receipt the sender got
``receipts/*.xml``          delivery receipts, with the office's acknowledgement (``*-ack.xml``)
``related/*.xml``           notifiers and receipts that answer the letter, as received
``letter.json``             metadata, deliveries and the timeline
``chain-NNN.jsonl``         chain proofs in the archive format (``gateway.audit.export``): for each
                            stretch from a letter event up to the signed checkpoint that covers it,
                            the letter's events in full and other events as leaf digests only
``gateway.pem``             the gateway certificate, for convenience: verify with the one you trust
``validation/*``            what the letter's signature validation relied on, ``directory.json`` the
                            sender's directory entry then (:mod:`gateway.audit.ltv_bundle`)
``manifest.json``           every file's SHA-256, what the bundle relies on, and the names of
                            ``evidence-records/*`` entries (RFC 4998) when present

``gateway audit verify bundle.zip --cert gateway.pem`` checks each proof
file, every checkpoint signature, and that ``received.xml`` and every
``parts/<Id>`` have the SHA-256 recorded in the signed chain
(:func:`gateway.audit.verify.check_bundle`; this module only builds).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.audit import ers, ltv_bundle, timeline
from gateway.audit.chain import GENESIS, dumps
from gateway.audit.export import checkpoint_line, digest_line, event_line
from gateway.storage import parts as parts_store
from gateway.storage import receipts, search
from gateway.storage.db import queries


async def _proofs(conn: PoolConnectionProxy, events: list[dict[str, Any]]) -> list[bytes]:
    """One proof file per stretch (event .. covering checkpoint); stretches that overlap are merged."""
    own = {e["seq"]: e for e in events if e["hash"] is not None}
    stretches: list[tuple[int, int, asyncpg.Record | None]] = []  # (after, through, checkpoint)
    for seq in sorted(own):
        if stretches and seq <= stretches[-1][1]:
            continue
        cp = await conn.fetchrow(queries["audit_checkpoint_covering"], seq)
        through = cp["seq"] if cp else max(own)
        stretches.append((own[seq]["prev_seq"], through, cp))
    files = []
    for after, through, cp in stretches:
        start = await conn.fetchrow(queries["audit_chain_row"], after) if after else None
        prev_hash = bytes(start["hash"]) if start else GENESIS
        lines, last_hash, n = [], prev_hash, 0
        for r in await conn.fetch(queries["audit_leaves_between"], after, through):
            e = own.get(r["seq"])
            lines.append(event_line(e) if e is not None else digest_line(r))
            last_hash, n = bytes(r["hash"]), n + 1
        count_before = (cp["count"] - n) if cp else 0
        out = [dumps({"type": "header", "format": "saraban-audit-export/1", "first_seq": after + 1,
                      "last_seq": through, "prev_seq": after, "prev_hash": prev_hash.hex(),
                      "prev_count": count_before}), *lines]
        if cp is not None:
            out.append(checkpoint_line(cp))
        out.append(dumps({"type": "footer", "events": n, "last_seq": through, "last_hash": last_hash.hex()}))
        files.append(b"".join(line + b"\n" for line in out))
    return files


async def build_bundle(pool: asyncpg.Pool, pk: int, *, certificate: x509.Certificate | None) -> bytes | None:
    async with pool.acquire() as conn:
        m = await search.message(conn, pk)
        if m is None:
            return None
        events = await search.message_events(conn, pk)
        proofs = await _proofs(conn, events)
        # storage.Executor names Pool and Connection; a pool's connection proxy is one at run time
        recs = await receipts.for_message(conn, pk)
        related = await search.related(conn, m["message_id"])
        ltv_files, ltv_manifest = await ltv_bundle.entries(conn, sender=m["sender"], events=events)
    steps, dels = await timeline.build(pool, m)
    records = await ers.evidence_records_for(pool, m["message_id"], sender=m["sender"])
    buf = io.BytesIO()
    listed: dict[str, str] = {}
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        def put(name: str, data: bytes) -> None:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # fixed: same letter, same bytes
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
            listed[name] = hashlib.sha256(data).hexdigest()

        put("received.xml", m["received"])
        put("forwarded.xml", m["forwarded"])
        for part in await parts_store.list_parts(pool, pk):  # files that travelled beside the envelope
            info = zipfile.ZipInfo(f"parts/{part.content_id}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with z.open(info, "w") as fh:
                async for chunk in parts_store.iter_chunks(pool, pk, part.content_id):
                    fh.write(chunk)
        put("submission-receipt.xml", m["receipt"])
        for i, r in enumerate(recs, start=1):
            put(f"receipts/{i:03d}-{r['kind']}.xml", r["receipt"] or b"")
            if r["ack"]:
                put(f"receipts/{i:03d}-{r['kind']}-ack.xml", r["ack"])
        for r in related:
            put(f"related/{r['message_type']}-{r['pk']}.xml", r["received"])
        for i, p in enumerate(proofs, start=1):
            put(f"chain-{i:03d}.jsonl", p)
        for name in sorted(ltv_files):
            put(name, ltv_files[name])
        covers: dict[str, str] = {}  # evidence record -> the bundle file it is over
        by_digest: dict[str, str] = {}  # each distinct file once (content-addressed): the first name it has
        for name, sha in listed.items():
            by_digest.setdefault(sha, name)
        for rec in records:
            put(f"{ers.BUNDLE_DIR}{rec.name}", rec.er)
            target = ers.data_name(rec)
            if rec.kind == "delivery-receipt":
                sha = hashlib.sha256(rec.data).hexdigest()
                if sha in by_digest:  # the receipt is already there (receipts/NNN-*.xml): name it, not a copy
                    target = by_digest[sha]
                else:
                    put(target, rec.data)
                    by_digest[sha] = target
            covers[f"{ers.BUNDLE_DIR}{rec.name}"] = target
        if certificate is not None:
            put("gateway.pem", certificate.public_bytes(serialization.Encoding.PEM))
        put("letter.json", json.dumps({
            "pk": m["pk"], "sender": m["sender"], "message_id": m["message_id"], "type": m["message_type"],
            "letter_number": m["letter_number"],
            "letter_date": str(m["letter_date"]) if m["letter_date"] else None,
            "subject": m["subject"], "accepted_at": m["accepted_at"].isoformat(),
            "received_sha256": hashlib.sha256(m["received"]).hexdigest(),
            "forwarded_sha256": hashlib.sha256(m["forwarded"]).hexdigest(),
            "deliveries": [{"recipient": d.recipient, "status": d.status.value, "attempts": d.attempts,
                            "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None}
                           for d in dels],
            "timeline": [{"at": s.at.isoformat(), "kind": s.kind, "th": s.label_th, "en": s.label_en,
                          "agency": s.agency, "audit_seq": s.seq} for s in steps],
            "audit_events": [e["seq"] for e in events],
        }, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8"))
        put("manifest.json", json.dumps({
            "format": ltv_bundle.MANIFEST_FORMAT, **ltv_manifest, "files": listed,
            # hook for RFC 4998 evidence records: entries evidence-records/* are listed here and handed to
            # the evidence-record verifier by gateway.audit.ltv_check
            "evidence_records": sorted(n for n in listed if n.startswith(ers.BUNDLE_DIR) and n.endswith(".ers")),
            "evidence_record_data": covers,
        }, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8"))
    return buf.getvalue()
