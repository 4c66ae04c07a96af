"""Building e-CMS XML from records: the letter (rsm:GovernmentDocument) and the notifiers.

Built with :func:`gateway.core.ecmswire.soap.child` (every letter answer echoes a letter; see
:mod:`gateway.core.ecmswire.soap` for why not the ElementMakers). Empty optional structures are
written, not left out: clients read them by name and expect them.
"""

from __future__ import annotations

import base64

from lxml import etree

from gateway.core.ecmswire.records import EcmsLetter, EcmsNotifier, Party, Signer
from gateway.core.ecmswire.soap import RAM_NS, RSM_NS, child

_R = f"{{{RAM_NS}}}"


def _party_el(parent: etree._Element, tag: str, p: Party) -> None:
    el = child(parent, f"{_R}{tag}")
    child(el, f"{_R}GivenName", p.given_name)
    child(el, f"{_R}FamilyName", p.family_name)
    child(el, f"{_R}JobTitle", p.job_title)
    child(child(el, f"{_R}MinistryOrganization"), f"{_R}ID", p.department[:2])
    child(child(el, f"{_R}DepartmentOrganization"), f"{_R}ID", p.department)


def build_government_document(letter: EcmsLetter, *,
                              signature: etree._Element | None = None) -> etree._Element:
    """rsm:GovernmentDocument in the element order clients read (ram:ID first: clients take
    the first ``ram:ID`` in the answer as the letter number)."""
    doc = etree.Element(f"{{{RSM_NS}}}GovernmentDocument", nsmap={"rsm": RSM_NS, "ram": RAM_NS})
    el = child(doc, f"{_R}CorrespondenceLetter", attrib={"ID": "Letter"})
    child(el, f"{_R}ID", letter.id)
    child(el, f"{_R}CorrespondenceDate", letter.date.isoformat())
    child(el, f"{_R}Subject", letter.subject)
    child(el, f"{_R}SecretCode", letter.secret_code)
    child(el, f"{_R}SpeedCode", letter.speed_code)
    _party_el(el, "SenderParty", letter.sender)
    for r in letter.receivers:
        _party_el(el, "ReceiverParty", r)
    for ref in letter.references:
        ref_el = child(el, f"{_R}ReferenceCorrespondence")
        child(ref_el, f"{_R}ID", ref.id)
        child(ref_el, f"{_R}CorrespondenceDate", ref.date.isoformat())
        child(ref_el, f"{_R}Subject", ref.subject)
    child(el, f"{_R}Attachment", letter.attachment_text)
    child(el, f"{_R}SendDate", letter.send_date)
    child(el, f"{_R}Description", letter.description)
    main = letter.main_letter
    child(el, f"{_R}MainLetterBinaryObject", base64.b64encode(main.content).decode("ascii") if main else "",
          attrib={"mimeCode": main.mime_code if main else ""})
    for a in letter.attachments:
        child(el, f"{_R}AttachmentBinaryObject", base64.b64encode(a.content).decode("ascii"),
              attrib={"mimeCode": a.mime_code})
    s = letter.signer
    if s is not None or signature is not None or letter.signature_type:
        s = s or Signer()
        sig = child(doc, f"{_R}GovernmentSignature")
        child(sig, f"{_R}TypeCode", letter.signature_type)
        signer = child(sig, f"{_R}SignerParty")
        for tag, value in (("GivenName", s.given_name), ("FamilyName", s.family_name), ("Title", s.title),
                           ("MinistryCode", s.ministry), ("DepartmentCode", s.department)):
            child(signer, f"{_R}{tag}", value)
        if signature is not None:
            sig.append(signature)
    return doc


def build_notifier(n: EcmsNotifier) -> etree._Element:
    """A notifier as answered to clients: LetterID, [AcceptID], CorrespondenceDate, Subject,
    AcceptDate, AcceptDepartment/Code."""
    el = etree.Element(n.element)
    child(el, "LetterID", n.letter_id)
    if n.element in ("AcceptLetterNotifier", "InvalidAcceptIDNotifier"):
        child(el, "AcceptID", n.accept_id)
    child(el, "CorrespondenceDate", n.date.isoformat())
    child(el, "Subject", n.subject)
    child(el, "AcceptDate", n.accept_date)
    child(child(el, "AcceptDepartment"), "Code", n.accept_department)
    return el
