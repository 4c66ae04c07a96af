"""Keeping each accepted letter's validation material (issue 16; the design is in :mod:`pki.ltv`).

:class:`ValidationRecorder` turns what intake validated (a :class:`pki.ltv.Capture`) into items in
PostgreSQL and two facts for the letter's audit event: ``validation_sha256`` (the report; the signed
chain thereby vouches for it and everything it names) and ``trust_snapshot`` (the trust-anchor set
version in force). The directory version in force is recorded as ``directory_version``, and the SHA-256 of the sender's entry in it
(:func:`pki.ltv.canonical` JSON of ``Agency.to_dict()``, what the database keeps for that version) as
``directory_entry_sha256``: the evidence bundle's ``directory.json`` is thereby bound to the signed
chain like the report (an edited entry, say a certificate pinned after the fact, is a precise no).

Cost on the submit path: the report is the only item that changes from letter to letter (and not
even it while the trust store's cached result is reused: then the whole record comes from a
:class:`pki.ltv.RecordCache`, a look-up instead of the path's DER, digests and JSON again); items
this process already stored are not sent again (a set of names in memory), so a letter costs one
small ``INSERT .. ON CONFLICT DO NOTHING``, and nothing at all when its report was stored before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import asyncpg
from lxml import etree

from gateway.core import xml
from gateway.core.clock import Clock
from gateway.core.directory import Directory
from gateway.storage import ltv as store
from pki.ltv import Capture, RecordCache, canonical, sha256_hex, trust_snapshot
from pki.trust import TrustStore


class ValidationRecorder:
    def __init__(self, *, pool: asyncpg.Pool, trust: TrustStore, clock: Clock, max_known: int = 200_000,
                 directory: Directory | None = None) -> None:
        self.pool = pool
        #: The directory in force (its entries are bound to each letter by digest); None: not bound.
        self.directory = directory
        self._entry_digests: dict[tuple[str, int], str] = {}
        self.trust = trust
        self.clock = clock
        self._known: set[str] = set()
        self._max_known = max_known
        self._snapshot: store.TrustVersion | None = None
        self._snapshot_key: tuple[Any, Any] | None = None
        self._lock = asyncio.Lock()
        #: Equal captures (one signer key within one OCSP period) give one record, built once.
        self.records = RecordCache()

    async def snapshot(self) -> store.TrustVersion:
        """The trust store's snapshot version, recorded (with an audit event) when it changed."""
        key = (self.trust.anchors, self.trust.intermediates)  # held, so compared by identity safely
        held = self._snapshot_key
        if self._snapshot is not None and held is not None and held[0] is key[0] and held[1] is key[1]:
            return self._snapshot  # the same sets as last time: nothing to hash on the submit path
        items, sha = trust_snapshot(self.trust.anchors, self.trust.intermediates)
        if self._snapshot is not None and self._snapshot.sha256 == sha:
            self._snapshot_key = key
            return self._snapshot
        async with self._lock:
            if self._snapshot is None or self._snapshot.sha256 != sha:
                self._snapshot = await store.trust_version(self.pool, sha, items, at=self.clock.now())
                self._known.update(items)
            self._snapshot_key = key
        return self._snapshot

    def entry_digest(self, sender: str | None, version: int | None) -> str | None:
        """SHA-256 of ``sender``'s directory entry in the directory in force (at ``version``), or None."""
        directory = self.directory
        if directory is None or sender is None or version is None or directory.version != version:
            return None
        key = (sender, version)
        found = self._entry_digests.get(key)
        if found is None:
            agency = directory.get(sender)
            if agency is None:
                return None
            if len(self._entry_digests) > 10_000:
                self._entry_digests.clear()
            found = self._entry_digests[key] = sha256_hex(canonical(agency.to_dict()))
        return found

    async def record(self, capture: Capture, facts: Mapping[str, Any], *, directory_version: int | None,
                     role: str = "author", sender: str | None = None) -> dict[str, Any]:
        """Store the material of one acceptance (``role``: whose signature, ``author`` or ``ack``; ``sender``:
        whose directory entry to bind); the facts to add to its audit event."""
        if capture.empty:
            return {}
        snap, held = self._snapshot, self._snapshot_key
        if snap is None or held is None or held[0] is not self.trust.anchors or held[1] is not self.trust.intermediates:
            snap = await self.snapshot()  # (the usual letter finds the same sets: no coroutine for it)
        rec = self.records.record(capture, facts=facts, trust_sha256=snap.sha256, trust_version=snap.version,
                                  roles=[role])
        new = {k: v for k, v in rec.items.items() if k not in self._known}
        if new:
            await store.put_items(self.pool, new, at=self.clock.now())
            if len(self._known) > self._max_known:
                self._known.clear()
            self._known.update(new)
        out = {"validation_sha256": rec.report_sha256, "trust_snapshot": snap.version,
               "directory_version": directory_version, "validation": rec.report["bottom_line"]}
        entry = self.entry_digest(sender, directory_version)
        if entry is not None:
            out["directory_entry_sha256"] = entry
        return out

    async def record_ack(self, capture: Capture, facts: Mapping[str, Any]) -> dict[str, Any]:
        """:meth:`record` for an office's signed acknowledgement (``AckVerifier.record``)."""
        return await self.record(capture, facts, directory_version=None, role="ack")


#: Kind of the submission receipt of a letter accepted into validation-pending.
PENDING_KIND = "submission-pending"


def pending_receipt(receipt: bytes) -> bytes:
    """The unsigned submission receipt with Kind ``submission-pending``: the gateway holds the letter
    and has not forwarded it; a delivery receipt or a refusal notifier follows."""
    root = xml.parse(receipt)
    kind = root.find(f"{{{xml.ENVELOPE_NS}}}Receipt/{{{xml.ENVELOPE_NS}}}Kind")
    assert kind is not None  # the gateway built this receipt
    kind.text = PENDING_KIND
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
