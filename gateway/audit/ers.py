"""Evidence Records of letters from the database: assembled from the stored stamps and paths.

The database keeps the parts, not whole records (see ``gateway/audit/EVIDENCE.md``): one token per stamp
(``er_stamps``), each item's reduced hash tree at the start of each of its chains (``er_item_chains``), and
each time-stamp renewal once for every item that shares it (``er_stamp_renewals``). An item's chain ``c`` is
its first stamp followed by the renewals of that stamp, of the renewal, and so on, up to (not including) any
renewal made after the item's chain ``c + 1`` began: a renewal job runs alone, so stamp ids order them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from gateway.storage.db import queries
from pki import ers
from pki.ers_verify import ErCheck
from pki.ers_verify import verify_evidence_record as _verify


@dataclass(frozen=True)
class EvidenceRecordFile:
    """One RFC 4998 Evidence Record of a letter's seal or receipt, with the bytes it covers."""

    kind: str
    """seal (the forwarded, sealed envelope), receipt (the submission receipt) or delivery-receipt."""
    message_pk: int
    sender: str
    message_id: str
    receipt_pk: int | None
    """The delivery receipt's row (``receipts.pk``) for kind delivery-receipt."""
    data: bytes
    """The data object: the exact stored bytes the record covers."""
    er: bytes
    """The EvidenceRecord, DER."""

    @property
    def name(self) -> str:
        """A file name for bundles: ``<kind>[-<receipt pk>].ers``."""
        return f"{self.kind}-{self.receipt_pk}.ers" if self.receipt_pk else f"{self.kind}.ers"


async def load_chains(conn: Any, item_ids: Sequence[int]) -> dict[int, tuple[list[list[bytes]], list[str]]]:
    """Each item's ArchiveTimeStampChains (DER of each ATS, oldest first) and each chain's algorithm,
    assembled from the stored parts."""
    rows = await conn.fetch(queries["er_item_chains_for"], list(item_ids))
    firsts: dict[int, list[Any]] = defaultdict(list)
    for r in rows:
        firsts[r["item_id"]].append(r)
    stamp_ids = sorted({r["stamp_id"] for r in rows})
    stamps = {s["id"]: s for s in await conn.fetch(queries["er_stamps_by_id"], stamp_ids)}
    renewal_of = {r["prev_id"]: r for r in await conn.fetch(queries["er_renewals_from"], stamp_ids)}
    renewal_ats: dict[int, bytes] = {}  # a renewal's ATS is the same bytes for every item that shares it
    out: dict[int, tuple[list[list[bytes]], list[str]]] = {}
    for item_id, chain_rows in firsts.items():
        chains: list[list[bytes]] = []
        algs: list[str] = []
        for n, r in enumerate(chain_rows):
            stamp = stamps[r["stamp_id"]]
            cutoff = chain_rows[n + 1]["stamp_id"] if n + 1 < len(chain_rows) else None
            chain = [ers.make_ats(stamp["alg"], r["path"], stamp["token"])]
            tip = stamp["id"]
            while tip in renewal_of and (cutoff is None or renewal_of[tip]["stamp_id"] < cutoff):
                ren = renewal_of[tip]
                if tip not in renewal_ats:
                    renewal_ats[tip] = ers.make_ats(ren["alg"], ren["path"], ren["token"])
                chain.append(renewal_ats[tip])
                tip = ren["stamp_id"]
            chains.append(chain)
            algs.append(stamp["alg"])
        out[item_id] = (chains, algs)
    return out


async def evidence_records_for(pool: Any, message_id: str, *, sender: str | None = None) -> list[EvidenceRecordFile]:
    """The Evidence Records of a letter's seal, submission receipt and delivery receipts (those stamped so
    far; a letter accepted during a TSA outage has none until the TSA answers again). Give ``sender``: a
    message id is unique per sender only, and without it the messages table is scanned."""
    async with pool.acquire() as conn:
        items = (await conn.fetch(queries["er_items_of_message"], message_id, sender) if sender is not None
                 else await conn.fetch(queries["er_items_of_message_id"], message_id))
        chains = await load_chains(conn, [i["id"] for i in items])
    return [EvidenceRecordFile(kind=i["kind"], message_pk=i["message_pk"], sender=i["sender"],
                               message_id=i["message_id"], receipt_pk=i["receipt_pk"], data=bytes(i["data"]),
                               er=ers.encode_record(*chains[i["id"]]))
            for i in items if i["id"] in chains]


BUNDLE_DIR = "evidence-records/"
"""Where an evidence bundle keeps a letter's records (``manifest.json`` names the file each covers)."""


def data_name(rec: EvidenceRecordFile) -> str:
    """The bundle file a record covers: the sealed envelope, the submission receipt, or the delivery
    receipt kept beside its record (``evidence-records/delivery-receipt-<pk>.xml``)."""
    if rec.kind == "seal":
        return "forwarded.xml"
    if rec.kind == "receipt":
        return "submission-receipt.xml"
    return f"{BUNDLE_DIR}{rec.name.removesuffix('.ers')}.xml"


def bundle_verifier(at: dt.datetime, tsa_trust: Sequence[x509.Certificate], *,
                    weak: Mapping[str, dt.datetime] | None = None) -> Any:
    """The ``er_verifier`` of :func:`gateway.audit.ltv_check.check_bundle_at`: checks one record of a
    bundle over the file ``manifest.json`` says it covers, and answers (problems, {sha256: proven time}).
    The seal's record also proves the letter as received: the sealed envelope holds the author's signed
    letter, verified before it was sealed."""
    async def verify(name: str, er_bytes: bytes, files: Mapping[str, bytes]) -> tuple[list[str], dict[str, Any]]:
        covers = json.loads(files.get("manifest.json", b"{}")).get("evidence_record_data", {})
        target = covers.get(name)
        if target is None or target not in files:
            return [f"er.data_missing: the file this record covers ({target or 'not named'}) is not in the "
                    "bundle"], {}
        check = await _verify(er_bytes, files[target], at, tsa_trust, weak=weak)
        if not check.ok or check.proven_at is None:
            return [f"{p.code} ({p.where}): {p.detail}" for p in check.problems] or ["er.unproven"], {}
        proven = {hashlib.sha256(files[target]).hexdigest(): check.proven_at}
        if target == "forwarded.xml" and "received.xml" in files:
            proven[hashlib.sha256(files["received.xml"]).hexdigest()] = check.proven_at
        return [], proven
    return verify


async def verify_evidence_record(er_bytes: bytes, data_objects: bytes | Sequence[bytes], at: dt.datetime,
                                 tsa_trust: Iterable[x509.Certificate], *,
                                 weak: Mapping[str, dt.datetime] | None = None) -> ErCheck:
    """:func:`pki.ers_verify.verify_evidence_record`: a precise yes or no at ``at`` (see there)."""
    return await _verify(er_bytes, data_objects, at, tsa_trust, weak=weak)
