"""The two public e-CMS clients, replayed: their exact request strings and their ways of reading.

* :class:`BoiDms`: ScoreSolutions/BOI-DMS, ``LinqWS/THeGIF/RequestTHeGIFLinqWS.vb`` (VB.NET): SOAP
  written with ``StreamWriter.Write`` string concatenation (values are not escaped), WS-Addressing
  ``http://w3.org/2005/08/addressing`` with ``wsa:to``, an empty MessageID on letters; answers read
  with ``GetElementsByTagName``, ``SelectSingleNode`` and ``Item(name)``; ``processID`` in lower
  case after most notifiers; ``OutboundStatusRequest`` with the ``SOAP-ENV`` prefix undeclared.
* :class:`MilDoc`: NatchaphonBounprakong/mil-doc, ``TEST.XML.WEB.SERVICE/Utility/XMLCreation.cs`` and
  ``Controllers/APIController.cs`` (C#): SOAP built with XLinq and flattened by
  ``Util.ConvertXmlFormat`` (``ID="Body"``, a free-text MessageID, one empty ReferenceCorrespondence
  and one empty ``AttachmentBinaryObject mimeCode=""`` when a letter has none, references and
  attachments inserted in reverse); answers read with ``GetElementsByTagName`` and positional
  ``ChildNodes``/``[i]`` pairing across the whole document.

Each method returns what the client's function returns (its Para object or JSON fields) as a dict;
a client that swallows an exception is modelled by ``error`` in that dict.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from tests.ecms.dotnet import Document, Node, NullReference, need, text_reader_values
from tests.ecms.replay import Wire


@dataclass(frozen=True)
class Letter:
    """What a saraban system sends: number, date (yyyy-MM-dd), subject, codes, parties, files."""

    number: str
    date: str
    subject: str
    sender: str
    receiver: str
    pdf: bytes
    speed: str = "1"
    secret: str = "1"
    references: tuple[tuple[str, str, str], ...] = ()
    attachments: tuple[tuple[str, bytes], ...] = ()


# ----------------------------------------------------------------------------------- BOI-DMS

_BOI_HEAD = ('<?xml version="1.0" encoding="UTF-8" standalone="no"?>'
             '<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">'
             "<SOAP-ENV:Header>"
             '<wsa:MessageID xmlns:wsa="http://w3.org/2005/08/addressing">{mid}</wsa:MessageID>'
             '<wsa:to xmlns:wsa="http://w3.org/2005/08/addressing">{to}</wsa:to>'
             "</SOAP-ENV:Header>"
             "<SOAP-ENV:Body>")
_BOI_TAIL = "</SOAP-ENV:Body></SOAP-ENV:Envelope>"


class BoiDms:
    """``RequestTHeGIFLinqWS`` of one BOI-DMS installation (``SetURI`` = its configured URL)."""

    family = "BOI-DMS"

    def __init__(self, wire: Wire, agency: str) -> None:
        self.wire = wire
        self.agency = agency

    async def _post(self, body: str, *, mid: str = "", head: str | None = None) -> Document:
        head = head if head is not None else _BOI_HEAD.format(mid=mid, to=self.wire.url(self.agency))
        return Document(await self.wire.post(self.agency, (head + body + _BOI_TAIL).encode("utf-8")))

    async def get_ministry_list(self) -> list[tuple[str, str]]:
        d = await self._post("<GetMinistryOrganizationList/>")
        return [(need(n.item("Th-Name")).inner_text, need(n.item("MinistryID")).inner_text)
                for n in d.get_elements_by_tag_name("MinistryOrganizationList")]

    async def get_organization_list(self) -> list[dict[str, str]]:
        d = await self._post("<GetOrganizationList/>")
        rows = []
        for n in d.get_elements_by_tag_name("OrganizationList"):
            name = need(n.item("name"))
            rows.append({"En-Name": name.inner_text, "Th-Name": need(name.next_sibling).inner_text,
                         "ECMS-URL": need(n.item("ECMS-URL")).inner_text,
                         "OrganizationID": need(n.item("OrganizationID")).inner_text})
        return rows

    async def send_letter(self, p: Letter) -> dict[str, str]:
        """``CorrespondenceLetterOutboundRequest(p)``: the answer read with an XmlTextReader."""
        w = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">',
             "<SOAP-ENV:Header>",
             '<wsa:MessageID xmlns:wsa="http://w3.org/2005/08/addressing"></wsa:MessageID> ',
             f'<wsa:to xmlns:wsa="http://w3.org/2005/08/addressing">{self.wire.url(self.agency)}</wsa:to>',
             "</SOAP-ENV:Header>", "<SOAP-ENV:Body>", "<CorrespondenceLetterOutboundRequest>",
             '<rsm:GovernmentDocument xmlns:ram="urn:th:gov:egif:data:standard:ReusableAggregateBusinessInformationEntity:1"'
             ' xmlns:rsm="urn:th:gov:egif:data:standard:GovernmentDocument:1.0">',
             '<ram:CorrespondenceLetter ID="Letter">',
             f"<ram:ID>{p.number}</ram:ID>", f"<ram:CorrespondenceDate>{p.date}</ram:CorrespondenceDate>",
             f"<ram:Subject>{p.subject}</ram:Subject>", f"<ram:SecretCode>{p.secret}</ram:SecretCode>",
             f"<ram:SpeedCode>{p.speed}</ram:SpeedCode>",
             "<ram:SenderParty>", "<ram:GivenName>สมชาย</ram:GivenName>", "<ram:FamilyName>ใจดี</ram:FamilyName>",
             "<ram:JobTitle>นักจัดการงานทั่วไป</ram:JobTitle>",
             f"<ram:MinistryOrganization><ram:ID>{p.sender[:2]}</ram:ID></ram:MinistryOrganization>",
             f"<ram:DepartmentOrganization><ram:ID>{p.sender}</ram:ID></ram:DepartmentOrganization>",
             "</ram:SenderParty>",
             "<ram:ReceiverParty>", "<ram:GivenName></ram:GivenName>", "<ram:FamilyName></ram:FamilyName>",
             "<ram:JobTitle></ram:JobTitle>",
             # sic: the receiver's MinistryOrganization/ID is written with its department code
             f"<ram:MinistryOrganization><ram:ID>{p.receiver}</ram:ID></ram:MinistryOrganization>",
             f"<ram:DepartmentOrganization><ram:ID>{p.receiver}</ram:ID></ram:DepartmentOrganization>",
             "</ram:ReceiverParty>"]
        for rid, rdate, rsubject in p.references:
            w += ["<ram:ReferenceCorrespondence>", f"<ram:ID>{rid}</ram:ID>",
                  f"<ram:CorrespondenceDate>{rdate}</ram:CorrespondenceDate>", f"<ram:Subject>{rsubject}</ram:Subject>",
                  "</ram:ReferenceCorrespondence>"]
        w += ["<ram:Attachment></ram:Attachment>", f"<ram:SendDate>{p.date}</ram:SendDate>",
              "<ram:Description></ram:Description>",
              f'<ram:MainLetterBinaryObject mimeCode="application/pdf">{base64.b64encode(p.pdf).decode()}'
              "</ram:MainLetterBinaryObject>"]
        for mime, content in p.attachments:
            w.append(f'<ram:AttachmentBinaryObject mimeCode="{mime}">{base64.b64encode(content).decode()}'
                     "</ram:AttachmentBinaryObject>")
        w += ["</ram:CorrespondenceLetter>", "<ram:GovernmentSignature>", "<ram:TypeCode></ram:TypeCode>",
              "<ram:SignerParty>", "<ram:GivenName>สมหญิง</ram:GivenName>", "<ram:FamilyName>รักชาติ</ram:FamilyName>",
              "<ram:Title>เลขาธิการ</ram:Title>", f"<ram:MinistryCode>{p.sender[:2]}</ram:MinistryCode>",
              f"<ram:DepartmentCode>{p.sender}</ram:DepartmentCode>", "</ram:SignerParty>",
              "</ram:GovernmentSignature>", "</rsm:GovernmentDocument>", "</CorrespondenceLetterOutboundRequest>",
              "</SOAP-ENV:Body>", "</SOAP-ENV:Envelope>"]
        body = await self.wire.post(self.agency, "".join(w).encode("utf-8"))
        values = text_reader_values(body, "CorrespondenceLetterOutboundResponse",
                                    ("ProcessID", "ProcessTime", "rsm:GovernmentDocument"))
        return {"ProcessID": values.get("ProcessID", ""), "ProcessTime": values.get("ProcessTime", "")}

    async def receive_letter(self) -> dict[str, Any]:
        """``CorrespondenceLetterInboundRequest`` + ``BuildCorrespondenceLetterInboundRequest``."""
        ret: dict[str, Any] = {"ProcessID": "", "error": None, "references": [], "attachments": []}
        try:
            d = await self._post("<CorrespondenceLetterInboundRequest />")
            top = d.first("CorrespondenceLetterInboundResponse")
            if top.inner_xml.strip() == "":
                return ret
            ret["ProcessID"] = need(top.select_single_node("ProcessID")).inner_text
            ret["ProcessTime"] = need(top.select_single_node("ProcessTime")).inner_text
            c = d.first("ram:CorrespondenceLetter")

            def at(*names: str) -> Node:
                node: Node = c
                for name in names:
                    node = need(node.item(name))
                return node

            for key in ("ID", "CorrespondenceDate", "Subject", "SecretCode", "SpeedCode", "Attachment", "SendDate",
                        "Description"):
                ret[key] = at(f"ram:{key}").inner_text
            for party in ("SenderParty", "ReceiverParty"):
                for key in ("GivenName", "FamilyName", "JobTitle"):
                    ret[f"{party}{key}"] = at(f"ram:{party}", f"ram:{key}").inner_text
                ret[f"{party}Department"] = at(f"ram:{party}", "ram:DepartmentOrganization", "ram:ID").inner_text
            for r in d.get_elements_by_tag_name("ram:ReferenceCorrespondence"):
                ret["references"].append(tuple(need(r.item(f"ram:{k}")).inner_text
                                               for k in ("ID", "CorrespondenceDate", "Subject")))
            main = at("ram:MainLetterBinaryObject")
            ret["MainMime"] = dict(main.attributes)["mimeCode"]
            ret["MainBase64"] = main.inner_text
            for a in d.get_elements_by_tag_name("ram:AttachmentBinaryObject"):
                ret["attachments"].append((dict(a.attributes)["mimeCode"], a.inner_text))
            g = d.first("ram:GovernmentSignature")  # and then ds:Signature ... as the VB code does
            ret["TypeCode"] = need(g.item("ram:TypeCode")).inner_text
            need(need(g.item("ds:Signature")).item("ds:SignedInfo"))
        except NullReference as exc:  # "Error Exception : " & ex.Message; GetNewInbound goes on regardless
            ret["error"] = str(exc)
        return ret

    async def delete(self, process_id: str) -> dict[str, str]:
        d = await self._post(f"<CorrespondenceLetterDeleteRequest><ProcessID>{process_id}</ProcessID>"
                             "</CorrespondenceLetterDeleteRequest>")
        top = d.first("CorrespondenceLetterDeleteResponse")
        return {"ProcessID": need(top.select_single_node("ProcessID")).inner_text,
                "ProcessTime": need(top.select_single_node("ProcessTime")).inner_text}

    async def send_notifier(self, element: str, letter_id: str, date: str, subject: str,
                            accept_id: str | None = None) -> dict[str, str]:
        """SendReceive/Acceipt/Reject/Invalid/InvalidAcceptID...Notifier: the answer read as each does
        (``ProcessID`` after a ReceiveLetterNotifier, ``processID`` after the others)."""
        inner = f"<LetterID>{letter_id}</LetterID>"
        if accept_id is not None:
            inner += f"<AcceptID>{accept_id}</AcceptID>"
        inner += f"<CorrespondenceDate>{date}</CorrespondenceDate><Subject>{subject}</Subject>"
        d = await self._post(f"<CorrespondenceLetterOutboundRequest><{element}>{inner}</{element}>"
                             "</CorrespondenceLetterOutboundRequest>")
        top = d.first("CorrespondenceLetterOutboundResponse")
        pid_name = "ProcessID" if element == "ReceiveLetterNotifier" else "processID"
        ret = {"ProcessID": need(top.select_single_node(pid_name)).inner_text}
        if element != "ReceiveLetterNotifier":
            ret["ProcessTime"] = need(top.select_single_node("ProcessTime")).inner_text
            n = d.first(element)
            for key in ("LetterID", "CorrespondenceDate", "Subject", "AcceptDate"):
                ret[key] = need(n.item(key)).inner_text
            ret["AcceptDepartmentCode"] = need(need(n.item("AcceptDepartment")).item("Code")).inner_text
            if accept_id is not None:
                ret["AcceptID"] = need(n.item("AcceptID")).inner_text
        return ret

    async def receive_notifier(self, element: str) -> dict[str, str]:
        """ReceiveAcceipt/Reject/Invalid/InvalidAcceptID...Notifier (``processID`` for Reject and
        InvalidAcceptID, as the VB code reads it)."""
        d = await self._post("<CorrespondenceLetterInboundRequest />")
        top = d.first("CorrespondenceLetterInboundResponse")
        pid_name = "processID" if element in ("RejectLetterNotifier", "InvalidAcceptIDNotifier") else "ProcessID"
        ret = {"ProcessID": need(top.select_single_node(pid_name)).inner_text,
               "ProcessTime": need(top.select_single_node("ProcessTime")).inner_text}
        n = d.first(element)
        for key in ("LetterID", "CorrespondenceDate", "Subject", "AcceptDate"):
            ret[key] = need(n.item(key)).inner_text
        if element in ("AcceptLetterNotifier", "InvalidAcceptIDNotifier"):
            ret["AcceptID"] = need(n.item("AcceptID")).inner_text
        ret["AcceptDepartmentCode"] = need(need(n.item("AcceptDepartment")).item("Code")).inner_text
        return ret

    async def withdraw(self, letter_id: str, date: str, sender: str, accept: str) -> dict[str, str]:
        d = await self._post(f"<CorrespondenceDeleteGovernmentDocumentRequest><LetterID>{letter_id}</LetterID>"
                             f"<CorrespondenceDate>{date}</CorrespondenceDate><SenderDepartment><Code>{sender}</Code>"
                             f"</SenderDepartment><AcceptDepartment><Code>{accept}</Code></AcceptDepartment>"
                             "</CorrespondenceDeleteGovernmentDocumentRequest>")
        top = d.first("CorrespondenceDeleteGovernmentDocumentResponse")
        return {"ProcessID": need(top.select_single_node("LetterID")).inner_text,
                "ProcessTime": need(top.select_single_node("ProcessTime")).inner_text}

    async def outbound_status(self) -> list[tuple[str, str, str]]:
        """Verbatim: ``<env:Envelope>`` with a ``<SOAP-ENV:Header>`` whose prefix is never declared."""
        head = ('<?xml version="1.0" encoding="UTF-8"?>'
                '<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Header>'
                '<wsa:MessageID xmlns:wsa="http://w3.org/2005/08/addressing"></wsa:MessageID>'
                f'<wsa:to xmlns:wsa="http://w3.org/2005/08/addressing">{self.wire.url(self.agency)}</wsa:to>'
                '</SOAP-ENV:Header><env:Body ID="Body">')
        body = await self.wire.post(self.agency, (head + "<OutboundStatusRequest />" + "</env:Body></env:Envelope>")
                                    .encode("utf-8"))
        d = Document(body)
        # dr("ProcessID") = n.Item("ProcessID"): an XmlElement, stored as its type name
        return [tuple("System.Xml.XmlElement" if n.item(k) is not None else "" for k in
                      ("ProcessID", "LetterID", "ProcessStatus")) for n in d.get_elements_by_tag_name("Outbound")]


# ----------------------------------------------------------------------------------- mil-doc

_MIL_HEAD = ('<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Header>'
             '<wsa:MessageID xmlns:wsa="http://www.w3.org/2005/08/addressing">{mid}</wsa:MessageID>'
             '<wsa:To xmlns:wsa="http://www.w3.org/2005/08/addressing">{to}</wsa:To></SOAP-ENV:Header>')


def _x(text: str) -> str:
    return escape(text)


class MilDoc:
    """``XMLCreation`` + ``APIController`` of one mil-doc installation (its organization's Url)."""

    family = "mil-doc"

    def __init__(self, wire: Wire, agency: str) -> None:
        self.wire = wire
        self.agency = agency

    async def _post(self, body: str, *, mid: str = "", body_id: bool = False) -> Document:
        xml = (_MIL_HEAD.format(mid=_x(mid), to=_x(self.wire.url(self.agency)))
               + ('<SOAP-ENV:Body ID="Body">' if body_id else "<SOAP-ENV:Body>") + body
               + "</SOAP-ENV:Body></SOAP-ENV:Envelope>")
        return Document(await self.wire.post(self.agency, xml.encode("utf-8"), "text/xml; encoding='utf-8'"))

    @staticmethod
    def errors(d: Document) -> list[tuple[str, str]]:
        """``error[i].ChildNodes[0].InnerXml``, ``ChildNodes[1]``: by position."""
        return [(need(e.child_nodes[0]).inner_xml, need(e.child_nodes[1]).inner_xml)
                for e in d.get_elements_by_tag_name("ErrorDetail")]

    async def lookup(self, operation: str, *names: str) -> list[tuple[str, ...]]:
        """RequestMinistryList / OrganizationList / FileList / SecretList / SpeedList: each name read with
        GetElementsByTagName over the whole answer and paired by index with the first one's count."""
        d = await self._post(f"<{operation} />", mid="Test")
        if self.errors(d):
            raise AssertionError(f"ErrorDetail {self.errors(d)}")
        lists = [d.get_elements_by_tag_name(n) for n in names]
        return [tuple(lst[i].inner_xml for lst in lists) for i in range(len(lists[0]))]

    async def time_check(self) -> str:
        d = await self._post("<TimeCheckRequest />")
        return d.first("ECMSTime").inner_xml

    async def send_letter(self, p: Letter, *, message_id: str = "") -> dict[str, Any]:
        r = "ram:"
        refs = p.references or (("", "", ""),)  # if DocumentReference.Count == 0: one empty Reference
        atts = p.attachments or (("", b""),)    # if DocumentAttachment.Count == 0: one empty Attachment
        ref_xml = "".join(f"<{r}ReferenceCorrespondence><{r}ID>{_x(i)}</{r}ID><{r}CorrespondenceDate>{_x(dd)}"
                          f"</{r}CorrespondenceDate><{r}Subject>{_x(s)}</{r}Subject></{r}ReferenceCorrespondence>"
                          for i, dd, s in reversed(refs))  # each AddAfterSelf(ReceiverParty): reversed
        att_xml = "".join((f"<{r}AttachmentBinaryObject mimeCode={quoteattr(m)}>{base64.b64encode(c).decode()}"
                           f"</{r}AttachmentBinaryObject>") if c else f"<{r}AttachmentBinaryObject mimeCode={quoteattr(m)} />"
                          for m, c in reversed(atts))
        party = ("<{r}{tag}><{r}GivenName>{g}</{r}GivenName><{r}FamilyName>{f}</{r}FamilyName><{r}JobTitle>{j}"
                 "</{r}JobTitle><{r}MinistryOrganization><{r}ID>{m}</{r}ID></{r}MinistryOrganization>"
                 "<{r}DepartmentOrganization><{r}ID>{d}</{r}ID></{r}DepartmentOrganization></{r}{tag}>")
        body = ("<CorrespondenceLetterOutboundRequest><rsm:GovernmentDocument "
                'xmlns:ram="urn:th:gov:egif:data:standard:ReusableAggregateBusinessInformationEntity:1" '
                'xmlns:rsm="urn:th:gov:egif:data:standard:GovernmentDocument:1.0"><ram:CorrespondenceLetter ID="Letter">'
                f"<{r}ID>{_x(p.number)}</{r}ID><{r}CorrespondenceDate>{p.date}</{r}CorrespondenceDate>"
                f"<{r}Subject>{_x(p.subject)}</{r}Subject><{r}SecretCode>{p.secret}</{r}SecretCode>"
                f"<{r}SpeedCode>{p.speed}</{r}SpeedCode>"
                + party.format(r=r, tag="SenderParty", g="พันเอก สมชาย", f="กล้าหาญ", j="เจ้าหน้าที่สารบรรณ",
                               m=p.sender[:2], d=p.sender)
                + party.format(r=r, tag="ReceiverParty", g="", f="", j="ผู้อำนวยการ", m=p.receiver[:2], d=p.receiver)
                + ref_xml
                + f"<{r}Attachment>-</{r}Attachment><{r}SendDate>{p.date}T10:00:00</{r}SendDate>"
                f"<{r}Description>ทดสอบ</{r}Description>"
                f'<{r}MainLetterBinaryObject mimeCode="application/pdf">{base64.b64encode(p.pdf).decode()}'
                f"</{r}MainLetterBinaryObject>" + att_xml
                + "</ram:CorrespondenceLetter></rsm:GovernmentDocument></CorrespondenceLetterOutboundRequest>")
        d = await self._post(body, mid=message_id, body_id=True)
        errors = self.errors(d)
        if errors:
            return {"Status": False, "errors": errors}
        pid = d.get_elements_by_tag_name("ProcessID")
        return {"Status": True, "ProcessID": pid[0].inner_xml if pid else ""}

    async def receive_document(self) -> dict[str, Any]:
        """RequestReceiveDocument (a letter or an InvalidAcceptIDNotifier), then its delete."""
        d = await self._post("<CorrespondenceLetterInboundRequest />", mid="Test")
        if self.errors(d):
            return {"errors": self.errors(d)}
        got: dict[str, Any] = {}
        pid = d.get_elements_by_tag_name("ProcessID")
        if d.get_elements_by_tag_name("InvalidAcceptIDNotifier"):
            got = {"kind": "InvalidAcceptIDNotifier", "ProcessId": pid[0].inner_xml,
                   "No": d.get_elements_by_tag_name("LetterID")[0].inner_xml,
                   "Date": d.get_elements_by_tag_name("CorrespondenceDate")[0].inner_xml,
                   "AcceptDept": d.get_elements_by_tag_name("Code")[0].inner_xml}
        elif d.get_elements_by_tag_name("rsm:GovernmentDocument"):
            first = {n: d.get_elements_by_tag_name(f"ram:{n}") for n in
                     ("ID", "CorrespondenceDate", "Subject", "SecretCode", "SpeedCode", "GivenName", "JobTitle",
                      "DepartmentOrganization", "ReferenceCorrespondence", "MainLetterBinaryObject",
                      "AttachmentBinaryObject")}
            main = first["MainLetterBinaryObject"][0]
            got = {"kind": "letter", "ProcessId": pid[0].inner_xml if pid else "",
                   "No": first["ID"][0].inner_xml, "Date": first["CorrespondenceDate"][0].inner_xml,
                   "Subject": first["Subject"][0].inner_xml, "Secret": first["SecretCode"][0].inner_xml,
                   "Speed": first["SpeedCode"][0].inner_xml,
                   "SenderName": first["GivenName"][0].inner_xml, "ReceiverName": first["GivenName"][1].inner_xml,
                   "SenderOrg": need(first["DepartmentOrganization"][0].child_nodes[0]).inner_xml,
                   "ReceiverOrg": need(first["DepartmentOrganization"][1].child_nodes[0]).inner_xml,
                   "References": [tuple(need(ref.child_nodes[i]).inner_xml for i in range(3))
                                  for ref in first["ReferenceCorrespondence"]],
                   "MimeCode": main.attributes[0][1],
                   "Main": base64.b64decode(main.inner_xml.strip()),
                   "Attachments": [(a.attributes[0][1], base64.b64decode(a.inner_xml.strip()))
                                   for a in first["AttachmentBinaryObject"]]}
        if got.get("ProcessId"):
            got["delete"] = await self.delete(got["ProcessId"])
        return got

    async def receive_notifier(self) -> dict[str, Any]:
        """RequestReceiveNotifierDocument: which notifier, told apart as the controller does."""
        d = await self._post("<CorrespondenceLetterInboundRequest />", mid="Test")
        if self.errors(d):
            return {"errors": self.errors(d)}
        pid = d.get_elements_by_tag_name("ProcessID")
        if not pid:
            return {}
        got = {"ProcessId": pid[0].inner_xml, "No": d.get_elements_by_tag_name("LetterID")[0].inner_xml,
               "Date": d.get_elements_by_tag_name("CorrespondenceDate")[0].inner_xml,
               "Subject": d.get_elements_by_tag_name("Subject")[0].inner_xml,
               "AcceptDept": d.get_elements_by_tag_name("Code")[0].inner_xml}
        if d.get_elements_by_tag_name("InvalidAcceptIdNotifier"):  # sic: never matches
            got["kind"] = "InvalidAcceptIDNotifier"
        elif d.get_elements_by_tag_name("AcceptID"):
            got["kind"], got["AcceptId"] = "AcceptLetterNotifier", d.get_elements_by_tag_name("AcceptID")[0].inner_xml
        elif d.get_elements_by_tag_name("RejectLetterNotifier"):
            got["kind"] = "RejectLetterNotifier"
        elif d.get_elements_by_tag_name("InvalidLetterNotifier"):
            got["kind"] = "InvalidLetterNotifier"
        else:
            got["kind"] = "ReceiveLetterNotifier"
        got["delete"] = await self.delete(got["ProcessId"])
        return got

    async def delete(self, process_id: str) -> list[tuple[str, str]]:
        """RequestDeleteDocumentQueue: the answer's ErrorDetails (none when it worked)."""
        d = await self._post(f"<CorrespondenceLetterDeleteRequest><ProcessID>{_x(process_id)}</ProcessID>"
                             "</CorrespondenceLetterDeleteRequest>", mid="ทดสอบ")
        return self.errors(d)

    async def send_notifier(self, element: str, letter_id: str, date: str, subject: str,
                            accept_id: str | None = None) -> dict[str, Any]:
        inner = f"<LetterID>{_x(letter_id)}</LetterID>"
        if accept_id is not None:
            inner += f"<AcceptID>{_x(accept_id)}</AcceptID>"
        inner += f"<CorrespondenceDate>{date}</CorrespondenceDate><Subject>{_x(subject)}</Subject>"
        d = await self._post(f"<CorrespondenceLetterOutboundRequest><{element}>{inner}</{element}>"
                             "</CorrespondenceLetterOutboundRequest>", mid="1")
        errors = self.errors(d)
        if errors:
            return {"Status": False, "errors": errors}
        pid = d.get_elements_by_tag_name("ProcessID")
        return {"Status": True, "ProcessID": pid[0].inner_xml if pid else ""}

    async def withdraw(self, letter_id: str, date: str, sender: str, accept: str) -> list[tuple[str, str]]:
        d = await self._post(f"<CorrespondenceDeleteGovernmentDocumentRequest><LetterID>{_x(letter_id)}</LetterID>"
                             f"<CorrespondenceDate>{date}</CorrespondenceDate><SenderDepartment><Code>{sender}</Code>"
                             f"</SenderDepartment><AcceptDepartment><Code>{accept}</Code></AcceptDepartment>"
                             "</CorrespondenceDeleteGovernmentDocumentRequest>")
        return self.errors(d)

    async def outbound_status(self) -> list[tuple[str, ...]]:
        d = await self._post("<OutboundStatusRequest />")
        if self.errors(d):
            raise AssertionError(f"ErrorDetail {self.errors(d)}")
        return [tuple(need(n.item(k)).inner_text for k in ("ProcessID", "LetterID", "ProcessStatus"))
                for n in d.get_elements_by_tag_name("Outbound")]

    async def raw(self, data: bytes) -> list[tuple[str, str]]:
        """Whatever bytes, read as every controller reads an answer: its ErrorDetails."""
        return self.errors(Document(await self.wire.post(self.agency, data, "text/xml; encoding='utf-8'")))
