"""Keep ``conformance/ecms/conversations/<client>.json`` equal to what the replayed clients post.

After an intended change of a replayed conversation, run its test with ``SARABAN_UPDATE_VECTORS=1``
(token mode) and review the diff. The conversation is written as agencies 11008 (A) and 11002 (B)
of ``config/directory.example.json``, whose development tokens the conformance runner is given;
letter numbers get ``{{run}}`` so that the kit can be replayed more than once against one gateway,
and every ProcessID a later request carries is ``{{pidN}}``, captured from the answer that gave it.
Each step expects the recorded HTTP status and ErrorCode, and ``reads``: those of the element names
the clients read that the recorded answer has. The steps of the letter marked ลับ/ลับมาก carry
``over_plain_http`` (``refused`` or ``skip``): what the runner expects with ``--legacy-http``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lxml import etree

from tests.ecms.replay import A, B, Conversation, Wire

CONVERSATIONS = Path(__file__).resolve().parents[2] / "conformance" / "ecms" / "conversations"
NEUTRAL_URL = "http://gateway.example/ecms-ws01/service2"
#: Names (as .NET matches them) that BOI-DMS or mil-doc read in answers.
READS = ("ProcessID", "processID", "ProcessTime", "ErrorDetail", "ErrorCode", "ErrorDescription",
         "MinistryOrganizationList", "MinistryID", "Th-Name", "En-Name", "name", "ECMS-URL", "OrganizationID",
         "Value", "Description", "Content-type", "File-Extension", "ECMSTime", "rsm:GovernmentDocument",
         "ram:CorrespondenceLetter", "ram:ID", "ram:CorrespondenceDate", "ram:Subject", "ram:SecretCode",
         "ram:SpeedCode", "ram:GivenName", "ram:FamilyName", "ram:JobTitle", "ram:DepartmentOrganization",
         "ram:MainLetterBinaryObject", "ram:AttachmentBinaryObject", "ram:ReferenceCorrespondence",
         "LetterID", "AcceptID", "CorrespondenceDate", "Subject", "AcceptDate", "AcceptDepartment", "Code",
         "ReceiveLetterNotifier", "AcceptLetterNotifier", "RejectLetterNotifier", "InvalidLetterNotifier",
         "InvalidAcceptIDNotifier", "Outbound", "ProcessStatus")
#: The replay's agencies and ministries -> the example directory's.
AGENCIES = {A: "11008", B: "11002"}


def _names(body: bytes) -> set[str]:
    try:
        root = etree.fromstring(body)
    except etree.XMLSyntaxError:
        return set()
    return {f"{e.prefix}:{etree.QName(e).localname}" if e.prefix else etree.QName(e).localname
            for e in root.iter() if isinstance(e.tag, str)}


def _codes(body: bytes) -> list[str]:
    try:
        return [e.findtext("ErrorCode") or "" for e in etree.fromstring(body).iter("ErrorDetail")]
    except etree.XMLSyntaxError:
        return []


def export(c: Conversation, wire: Wire, letter_numbers: tuple[str, ...]) -> None:
    """Write ``c``'s posts as ``conversations/<family>.json`` when ``SARABAN_UPDATE_VECTORS`` is set."""
    if not os.environ.get("SARABAN_UPDATE_VECTORS"):
        return
    captured: dict[str, str] = {}
    steps = []
    for name, start, end in c.posts:
        for agency, request, status, answer in wire.log[start:end]:
            text = request.decode("utf-8").replace(wire.url(agency), NEUTRAL_URL)
            for value, placeholder in captured.items():
                text = text.replace(value, "{{" + placeholder + "}}")
            for number in letter_numbers:
                text = text.replace(number, f"{number}-{{{{run}}}}")
            for ours, theirs in AGENCIES.items():
                text = text.replace(ours, theirs).replace(f">{ours[:2]}<", f">{theirs[:2]}<")
            codes = _codes(answer)
            step: dict[str, object] = {
                "name": name, "as": "A" if agency == A else "B", "request": text,
                "expect": {"ok": not codes, "error_code": codes[0] if codes else None, "http_status": status,
                           "reads": sorted(set(READS) & _names(answer))}}
            if "(refused over plain HTTP)" in name:  # the letter marked ลับ/ลับมาก: runner --legacy-http
                step["over_plain_http"] = "refused"
            elif "(nothing over plain HTTP)" in name:
                step["over_plain_http"] = "skip"
            pid = next((e.text for e in etree.fromstring(answer).iter("ProcessID") if e.text), None) \
                if status == 200 and _names(answer) else None
            if pid and pid not in captured:
                captured[pid] = f"pid{len(captured) + 1}"
                step["capture"] = [captured[pid]]
            steps.append(step)
    CONVERSATIONS.mkdir(parents=True, exist_ok=True)
    doc = {"client": c.family, "source": SOURCES[c.family], "steps": steps}
    (CONVERSATIONS / f"{c.family.lower()}.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n",
                                                           encoding="utf-8")


SOURCES = {
    "BOI-DMS": "ScoreSolutions/BOI-DMS LinqWS/THeGIF/RequestTHeGIFLinqWS.vb and Func/WebService/THeGIFENG.vb",
    "mil-doc": "NatchaphonBounprakong/mil-doc TEST.XML.WEB.SERVICE/Utility/XMLCreation.cs and "
               "Controllers/APIController.cs",
}
