"""The long-term validation part of an evidence bundle (issue 16): what the letter's validation relied on.

Added to the ZIP of :mod:`gateway.audit.evidence`:

``validation/<sha256>.<kind>``   every item the letter's validation reports name: the reports
                                 themselves (``.report.json``), certificates (``.cert.der``), OCSP
                                 answers (``.ocsp.der``), CRLs (``.crl.der``) and the trust snapshot
                                 (``.trust.json``); each file's name is the SHA-256 of its bytes
``directory.json``               the sender's directory entry in the version in force at acceptance
``manifest.json``                what the bundle holds and relies on: the reports (by the audit event
                                 that names each), the trust snapshot versions, the directory version,
                                 every file's SHA-256, and ``evidence_records``: the names of
                                 ``evidence-records/*`` entries (RFC 4998, added by the evidence-record
                                 builder; :mod:`gateway.audit.ltv_check` hands them to its verifier)

The signed audit chain names each report (``validation_sha256`` in ``message.accepted`` or
``validation.completed``), each report names its items and trust snapshot by SHA-256: the chain's
signature covers everything here, ``directory.json`` included: the event that names the report also names
the SHA-256 of the sender's entry (``directory_entry_sha256``, canonical JSON of ``entry``), which
:mod:`gateway.audit.ltv_check` compares (an edited, swapped or missing entry is a precise no).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.storage import Executor
from gateway.storage import ltv as store

MANIFEST_FORMAT = "saraban-evidence-manifest/1"
#: Audit events that name a validation report: the letter accepted (author), accepted after
#: validation-pending, an office's signed acknowledgement.
KINDS = ("message.accepted", "validation.completed", "delivery.delivered")
EXTENSIONS = {"report": "report.json", "trust": "trust.json", "cert": "cert.der", "ocsp": "ocsp.der",
              "crl": "crl.der"}


def item_name(sha256: str, kind: str) -> str:
    return f"validation/{sha256}.{EXTENSIONS[kind]}"


def report_refs(events: Iterable[Mapping[str, Any]]) -> list[tuple[int, str]]:
    """(audit seq, report sha256) of every validation report the letter's events name, in order."""
    out = []
    for e in events:
        details = e.get("details") or {}
        if isinstance(details, str):
            details = json.loads(details)
        sha = details.get("validation_sha256")
        if e.get("kind") in KINDS and isinstance(sha, str):
            out.append((int(e["seq"]), sha))
    return out


def names_of(report: Mapping[str, Any]) -> set[str]:
    """Every item a report names (its trust snapshot included, not the snapshot's certificates)."""
    names = {str(report.get("trust_snapshot"))}
    for sig in report.get("signatures", []):
        for key in ("path", "ocsp", "crls"):
            names.update(sig.get(key, []))
    return names


async def entries(db: Executor, *, sender: str, events: list[dict[str, Any]]) -> tuple[dict[str, bytes],
                                                                                        dict[str, Any]]:
    """The files to add and the manifest's validation part."""
    refs = report_refs(events)
    files: dict[str, bytes] = {}
    reports = await store.get_items(db, [sha for _, sha in refs])
    wanted: set[str] = set()
    directory_version = None
    trust_versions = []
    for seq, sha in refs:
        if sha not in reports:
            continue
        kind, data = reports[sha]
        files[item_name(sha, kind)] = data
        report = json.loads(data)
        wanted |= names_of(report)
        trust_versions.append(report.get("trust_version"))
        for e in events:
            if e["seq"] == seq:
                details = e.get("details") or {}
                # an office's acknowledgement names no directory version: it must not hide the letter's
                directory_version = details.get("directory_version") or directory_version
    items = await store.get_items(db, wanted)
    snapshots = [json.loads(data) for kind, data in items.values() if kind == "trust"]
    more = {c for s in snapshots for c in (*s.get("anchors", []), *s.get("intermediates", []))} - set(items)
    items.update(await store.get_items(db, more))
    for sha, (kind, data) in items.items():
        files[item_name(sha, kind)] = data
    if directory_version is not None:
        entry = await store.directory_entry_at(db, sender, int(directory_version))
        if entry is not None:
            files["directory.json"] = json.dumps(entry, ensure_ascii=False, indent=1, sort_keys=True).encode()
    manifest = {"validation_reports": [{"audit_seq": seq, "sha256": sha} for seq, sha in refs],
                "trust_versions": sorted({v for v in trust_versions if v is not None}),
                "directory_version": directory_version}
    return files, manifest
