"""Offline check of an envelope file, for integrators: ``gateway envelope check FILE``.

Runs what the gateway runs before it stores a letter and needs no server: the
hardened parse (size, DTD, encoding), comments and processing instructions,
the XSD, and reading the records (attachments decoded, their sizes and
SHA-256 compared with what the envelope declares). Schema faults are listed
with xmlschema, whose reasons name the position and the element that was
expected (``Unexpected child with tag 'Subjekt' at position 3. Tag 'Subject'
expected.``); the gateway's hot path validates with lxml, which reaches the
same verdict ~25 times faster. Directory, trust and signature checks need the
gateway's configuration and are left to it.
"""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass
from typing import Any

import xmlschema
from lxml import etree

from gateway.core import xml
from gateway.core.envelope_reader import read_envelope
from gateway.core.errors import GatewayError
from gateway.intake.checks import SCHEMA
from pki.errors import PkiError
from pki.thaidate import thai_date

DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"


@dataclass(frozen=True)
class Finding:
    code: str
    field: str
    reason: str


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]
    summary: dict[str, Any]
    """What the gateway would take from the envelope (JSON: ids, parties, letter fields, attachments)."""

    @property
    def ok(self) -> bool:
        return not self.findings


@functools.cache
def _xmlschema() -> xmlschema.XMLSchema:
    with importlib.resources.as_file(importlib.resources.files("schemas").joinpath(SCHEMA)) as path:
        return xmlschema.XMLSchema(str(path))


def check_envelope(data: bytes, *, max_bytes: int = xml.DEFAULT_MAX_BYTES) -> Report:
    """Every fault found in ``data`` (the first fault of a stage ends that stage), and, when the
    envelope reads, a summary of what the gateway would take from it."""
    try:
        root = xml.parse(data, max_bytes=max_bytes)
    except (GatewayError, PkiError) as exc:
        return Report((Finding(exc.code, exc.field or "/", exc.message),), {})
    findings: list[Finding] = []
    if next(root.iter(etree.Comment), None) is not None:
        findings.append(Finding("envelope.comment_forbidden", "/",
                                "a comment is not accepted in an envelope"))
    if next(root.iter(etree.ProcessingInstruction), None) is not None:
        findings.append(Finding("envelope.pi_forbidden", "/", "a processing instruction is not accepted"))
    for err in _xmlschema().iter_errors(root):
        findings.append(Finding("envelope.schema_invalid", err.path or "/", err.reason or err.message))
    if findings:
        return Report(tuple(findings), {})
    try:
        env = read_envelope(root)
    except (GatewayError, PkiError) as exc:
        return Report((Finding(exc.code, exc.field or "/", exc.message),), {})
    h, letter = env.header, env.letter
    summary: dict[str, Any] = {"message_id": h.message_id, "type": h.message_type.value, "sender": h.sender,
               "recipients": list(h.recipients), "created_at": h.created_at.isoformat()}
    if h.recipient_lists:
        summary["recipient_lists"] = list(h.recipient_lists)
    if letter is not None:
        summary.update(number=letter.number, date=letter.date.isoformat(), date_thai=thai_date(letter.date),
                       subject=letter.subject,
                       speed=letter.speed.value, secrecy=letter.secrecy.value)
    summary["attachments"] = [{"file_name": a.file_name, "mime_type": a.mime_type, "size": a.size,
                               "external": a.external} for a in env.attachments]
    summary["signatures"] = len(root.findall(f"{{{xml.ENVELOPE_NS}}}Signatures/{{{DSIG_NS}}}Signature"))
    return Report((), summary)
