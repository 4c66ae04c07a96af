"""The verifier: archive files, evidence bundles or the live database, with only the certificate.

Each problem names the sequence number and what is wrong:

``reordered``   an event appears after one with a higher (or equal) seq;
``duplicate``   two events carry the same seq;
``deleted``     the chain links to an event that is not there;
``inserted``    an event is present but not in the chain (nothing links to it, or it
                was never sealed below the chain head);
``edited``      an event's content does not hash to its chain entry;
``checkpoint``  a checkpoint's signature is bad, or the events do not hash to what it
                signed (catches a re-hashed chain), or its count disagrees (catches
                dropped events);
``uncovered``   (files) events after the last checkpoint, covered by no signature;
``link``        a file does not continue the previous file's last digest;
``format``      a line cannot be read.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from gateway.audit.chain import GENESIS, chain_hash, event_fields, leaf_hash
from gateway.audit.signing import cert_sha256, verify_signature

EXPORT_FORMAT = "saraban-audit-export/1"


@dataclass(frozen=True)
class Problem:
    seq: int | None
    """The event (or checkpoint) sequence number concerned."""
    code: str
    """reordered, duplicate, deleted, inserted, edited, checkpoint, uncovered, link, format."""
    message: str
    """One readable line."""

    def __str__(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else "-"
        return f"{self.code:10} {where:>14}  {self.message}"


@dataclass
class Report:
    events: int = 0
    """Events (full or digest-only) examined."""
    first_seq: int | None = None
    last_seq: int | None = None
    checkpoints: int = 0
    """Checkpoints whose signature verified and whose hash and count matched."""
    last_checkpoint_seq: int | None = None
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    end: tuple[int, bytes | None, bytes | None, int | None] | None = None
    """(last seq, its stored hash, recomputed hash, count): where a following page continues."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def codes(self) -> set[tuple[int | None, str]]:
        return {(p.seq, p.code) for p in self.problems}

    def summary(self) -> str:
        lines = [f"{'OK' if self.ok else 'FAILED'}: {self.events} events "
                 f"(seq {self.first_seq}..{self.last_seq}), "
                 f"{self.checkpoints} signed checkpoints verified (last at seq {self.last_checkpoint_seq})"]
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


@dataclass
class Entry:
    """One chain entry as a source presents it."""

    seq: int
    prev_seq: int | None
    hash: bytes | None
    """Stored chain hash; None for an event that was never sealed."""
    leaf: bytes | None = None
    """Stored leaf; the only content of a digest-only entry."""
    content: dict[str, Any] | None = None
    """The event's fields; None for digest-only entries (other letters in a bundle)."""
    missing: bool = False
    """The chain has this entry but the event itself is gone (database: a deleted row)."""


def _b(v: str | None) -> bytes | None:
    return None if v is None else bytes.fromhex(v)


def verify_entries(entries: list[Entry], checkpoints: list[dict[str, Any]], cert: x509.Certificate, *,
                   start_seq: int = 0, start_hash: bytes = GENESIS, start_count: int = 0,
                   start_computed: bytes | None = None, require_cover: bool = False,
                   report: Report | None = None) -> Report:
    rep = report or Report()
    rep.events += len(entries)
    if entries:
        rep.first_seq = entries[0].seq if rep.first_seq is None else rep.first_seq
        rep.last_seq = max(e.seq for e in entries)
    # 1. order as presented
    for before, e in zip(entries, entries[1:], strict=False):
        if e.seq == before.seq:
            rep.problems.append(Problem(e.seq, "duplicate", f"event seq {e.seq} appears twice"))
        elif e.seq < before.seq:
            rep.problems.append(Problem(e.seq, "reordered",
                                        f"event seq {e.seq} appears after seq {before.seq}"))
    ordered, seen = [], set()
    for e in sorted(entries, key=lambda x: x.seq):
        if e.seq in seen:
            continue
        seen.add(e.seq)
        ordered.append(e)
    # 2. checkpoints: signature and payload
    cps: dict[int, dict] = {}
    fingerprint = cert_sha256(cert)
    for cp in checkpoints:
        payload = cp["payload"]
        if not verify_signature(cert, payload, cp["signature"]):
            rep.problems.append(Problem(cp["seq"], "checkpoint",
                                        f"checkpoint at seq {cp['seq']}: signature does not verify with the "
                                        "certificate"))
            continue
        body = json.loads(payload)
        if (body.get("seq"), body.get("hash"), body.get("count"), body.get("cert_sha256")) != (
                cp["seq"], cp["hash"].hex(), cp["count"], fingerprint):
            rep.problems.append(Problem(cp["seq"], "checkpoint",
                                        f"checkpoint at seq {cp['seq']}: stored fields differ from the "
                                        "signed payload"))
            continue
        cps[cp["seq"]] = cp
    # 3. walk the chain
    stored = {start_seq: start_hash}
    stored.update({e.seq: e.hash for e in ordered if e.hash is not None})
    # (hash recomputed from the start, events counted): None once an event is missing, so that later
    # checkpoints cannot be recomputed
    running: tuple[bytes, int] | None = (start_computed or start_hash, start_count)
    trail: dict[int, tuple[bytes, int] | None] = {start_seq: running}
    members: list[int] = []
    successor: dict[int, int] = {}
    trail_prev: dict[int, int] = {}
    expected_prev = start_seq
    last_good_cp = None
    for e in ordered:
        if e.hash is None or e.prev_seq is None:
            rep.problems.append(Problem(e.seq, "inserted",
                                        f"event seq {e.seq} is not in the chain (never sealed)"))
            continue
        if e.missing:
            rep.problems.append(Problem(e.seq, "deleted",
                                        f"event seq {e.seq} is missing: the chain has an entry for it"))
        if e.prev_seq != expected_prev:
            if e.prev_seq > expected_prev:
                rep.problems.append(Problem(e.prev_seq, "deleted",
                                            f"event seq {e.prev_seq} is missing: seq {e.seq} links to it"))
                running = None  # later checkpoints cannot be recomputed
            elif e.prev_seq in successor:
                rep.problems.append(Problem(e.seq, "inserted",
                                            f"event seq {e.seq} is not in the chain: it claims to follow seq "
                                            f"{e.prev_seq}, which seq {successor[e.prev_seq]} follows"))
                continue
            else:
                while members and members[-1] > e.prev_seq:
                    bad = members.pop()
                    if bad in trail_prev:
                        successor.pop(trail_prev[bad], None)
                    rep.problems.append(Problem(bad, "inserted",
                                                f"event seq {bad} is not in the chain: seq {e.seq} links to "
                                                f"seq {e.prev_seq}"))
                running = trail.get(e.prev_seq)
        leaf = leaf_hash(e.content) if e.content is not None else e.leaf
        if leaf is None:
            rep.problems.append(Problem(e.seq, "format", f"event seq {e.seq} has neither content nor leaf"))
            continue
        leaf_differs = e.content is not None and e.leaf is not None and e.leaf != leaf
        if leaf_differs:
            rep.problems.append(Problem(e.seq, "edited",
                                        f"event seq {e.seq}: content differs from its sealed leaf"))
        base = stored.get(e.prev_seq)
        if base is not None and chain_hash(base, leaf) != e.hash and not leaf_differs:
            rep.problems.append(Problem(e.seq, "edited",
                                        f"event seq {e.seq} ({(e.content or {}).get('kind', 'digest')}): "
                                        "content does not match its chain hash"))
        if running is not None:
            running = (chain_hash(running[0], leaf), running[1] + 1)
        trail[e.seq] = running
        members.append(e.seq)
        successor[e.prev_seq] = e.seq
        trail_prev[e.seq] = e.prev_seq
        expected_prev = e.seq
        covering = cps.get(e.seq)
        if covering is not None:
            if running is None:
                rep.problems.append(Problem(e.seq, "checkpoint",
                                            f"checkpoint at seq {e.seq}: cannot be recomputed "
                                            "because earlier events are missing"))
            elif running[0] != covering["hash"]:
                rep.problems.append(Problem(e.seq, "checkpoint",
                                            f"checkpoint at seq {e.seq}: the events after seq "
                                            f"{last_good_cp or start_seq} do not hash to the signed value "
                                            "(an event was altered and the chain re-hashed)"))
            elif running[1] != covering["count"]:
                rep.problems.append(Problem(e.seq, "checkpoint",
                                            f"checkpoint at seq {e.seq}: signed count {covering['count']}, "
                                            f"found {running[1]} (events dropped)"))
            else:
                rep.checkpoints += 1
                rep.last_checkpoint_seq = e.seq
                last_good_cp = e.seq
    for seq in cps:
        if seq not in trail and seq > start_seq:
            rep.problems.append(Problem(seq, "checkpoint",
                                        f"checkpoint at seq {seq} refers to an event that is not there"))
    rep.end = (expected_prev, stored.get(expected_prev), running[0] if running else None,
               running[1] if running else None)
    if require_cover:
        tail = [s for s in members if last_good_cp is None or s > last_good_cp]
        if tail:
            rep.problems.append(Problem(tail[0], "uncovered",
                                        f"{len(tail)} events from seq {tail[0]} are after the last "
                                        "valid checkpoint: no signature covers them"))
    return rep


# --------------------------------------------------------------------------- files


@dataclass
class ExportFile:
    name: str
    header: dict[str, Any]
    entries: list[Entry]
    checkpoints: list[dict[str, Any]]
    footer: dict[str, Any] | None
    problems: list[Problem]


def parse_export(name: str, data: bytes) -> ExportFile:
    header: dict[str, Any] = {}
    footer: dict[str, Any] | None = None
    entries: list[Entry] = []
    cps: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for i, line in enumerate(data.splitlines(), start=1):
        try:
            obj = json.loads(line)
            kind = obj["type"]
            if kind == "header":
                header = obj
            elif kind == "event":
                entries.append(Entry(seq=obj["seq"], prev_seq=obj["prev_seq"], hash=_b(obj["hash"]),
                                     leaf=_b(obj.get("leaf")), content=event_fields(obj)))
            elif kind == "digest":
                entries.append(Entry(seq=obj["seq"], prev_seq=obj["prev_seq"], hash=_b(obj["hash"]),
                                     leaf=_b(obj["leaf"])))
            elif kind == "checkpoint":
                cps.append({"seq": obj["seq"], "hash": _b(obj["hash"]), "count": obj["count"],
                            "payload": base64.b64decode(obj["payload"]),
                            "signature": base64.b64decode(obj["signature"]),
                            "tsa_token": (base64.b64decode(obj["tsa_token"])
                                          if obj.get("tsa_token") else None)})
            elif kind == "footer":
                footer = obj
            else:
                raise ValueError(f"unknown line type {kind!r}")
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(Problem(None, "format", f"{name} line {i}: {exc}"))
    if header.get("format") != EXPORT_FORMAT:
        problems.append(Problem(None, "format", f"{name}: not a {EXPORT_FORMAT} file"))
    return ExportFile(name, header, entries, cps, footer, problems)


def verify_files(files: Iterable[tuple[str, bytes]], cert: x509.Certificate) -> Report:
    parsed = [parse_export(n, d) for n, d in files]
    parsed.sort(key=lambda f: (f.header.get("prev_seq", 0), f.name))
    rep = Report()
    if not parsed:
        rep.problems.append(Problem(None, "format", "no export files"))
        return rep
    for f in parsed:
        rep.problems.extend(f.problems)
    first = parsed[0].header
    if first.get("prev_seq", 0) != 0:
        rep.notes.append(f"the files start after seq {first.get('prev_seq')} (earlier archives not given); "
                         "the start digest is taken from the first file")
    for before, after in zip(parsed, parsed[1:], strict=False):
        last = before.footer or {}
        if (after.header.get("prev_seq"), after.header.get("prev_hash")) != (last.get("last_seq"),
                                                                            last.get("last_hash")):
            rep.problems.append(Problem(after.header.get("first_seq"), "link",
                                        f"{after.name} does not continue {before.name}: it starts after seq "
                                        f"{after.header.get('prev_seq')}, the previous file ends at "
                                        f"{last.get('last_seq')}"))
    entries = [e for f in parsed for e in f.entries]
    cps = [c for f in parsed for c in f.checkpoints]
    verify_entries(entries, cps, cert, start_seq=first.get("prev_seq", 0),
                   start_hash=_b(first.get("prev_hash")) or GENESIS, start_count=first.get("prev_count", 0),
                   require_cover=True, report=rep)
    return rep


def verify_path(path: Path, cert: x509.Certificate) -> Report:
    """A file, a directory of archive files, or an evidence bundle (ZIP)."""
    if path.is_file():
        data = path.read_bytes()
        if zipfile.is_zipfile(io.BytesIO(data)):
            return check_bundle(data, cert)
    return verify_files(load_files(path), cert)


def load_files(path: Path) -> list[tuple[str, bytes]]:
    """Export files from a file, a directory of them, or an evidence bundle (ZIP)."""
    if path.is_dir():
        return [(p.name, p.read_bytes()) for p in sorted(path.glob("*.jsonl"))]
    data = path.read_bytes()
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return [(n, z.read(n)) for n in sorted(z.namelist()) if n.endswith(".jsonl")]
    return [(path.name, data)]


# --------------------------------------------------------------------------- evidence bundles


def check_bundle(data: bytes, cert: x509.Certificate) -> Report:
    """Verify an evidence bundle (:mod:`gateway.audit.evidence`): every proof file on its own, and the
    received bytes and every part against the chain."""
    rep = Report()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = z.namelist()
        proofs = [n for n in names if n.startswith("chain-") and n.endswith(".jsonl")]
        accepted = []
        for n in sorted(proofs):
            one = verify_files([(n, z.read(n))], cert)
            rep.events += one.events
            rep.checkpoints += one.checkpoints
            rep.problems += one.problems
            rep.last_checkpoint_seq = one.last_checkpoint_seq or rep.last_checkpoint_seq
            rep.first_seq = one.first_seq if rep.first_seq is None else rep.first_seq
            rep.last_seq = one.last_seq
            for line in z.read(n).splitlines():
                obj = json.loads(line)
                if obj.get("type") == "event" and obj.get("kind") == "message.accepted":
                    accepted.append(obj)
        if not proofs:
            rep.problems.append(Problem(None, "format", "the bundle holds no chain proof"))
        if "received.xml" in names:
            digest = hashlib.sha256(z.read("received.xml")).hexdigest()
            if not any(a["details"].get("sha256") == digest for a in accepted):
                rep.problems.append(Problem(accepted[0]["seq"] if accepted else None, "edited",
                                            "received.xml does not have the SHA-256 recorded in the "
                                            "signed chain"))
            else:
                rep.notes.append("received.xml matches the SHA-256 in the signed message.accepted event")
        recorded = next((a["details"].get("parts") or {} for a in accepted if a["details"].get("parts")), {})
        present = {n[len("parts/"):]: n for n in names if n.startswith("parts/")}
        for cid in sorted(set(recorded) | set(present)):
            if cid not in present:
                rep.problems.append(Problem(None, "deleted",
                                            f"part {cid} is recorded in the chain but missing"))
            elif cid not in recorded or hashlib.sha256(z.read(present[cid])).hexdigest() != recorded[cid]:
                rep.problems.append(Problem(None, "edited",
                                            f"parts/{cid} does not have the SHA-256 recorded in the "
                                            "signed chain"))
            else:
                rep.notes.append(f"parts/{cid} matches the SHA-256 in the signed message.accepted event")
    return rep
