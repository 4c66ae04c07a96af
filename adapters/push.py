"""HTTPS push: POST the sealed envelope to the office's endpoint.

A letter whose files travel beside the envelope (see :mod:`gateway.core.parts`) is
POSTed as ``multipart/related``: the sealed envelope first (Content-ID
``<envelope>``), then each file, streamed from the store, as ``<Id>``.

The envelope alone goes out on :class:`adapters.wire.Wire` (kept-alive connections per office,
one write per request: ~55 µs of CPU against aiohttp's ~140); a multipart body streams through
the gateway's aiohttp session.

Success is a 2xx whose body is a ``DeliveryAck`` naming this delivery's id; a
2xx without it is treated as a failure to retry (the office did not say it
has the letter). Headers carry the delivery id, message id and sender so an
office can deduplicate before parsing.

Acknowledgements (:class:`AckVerifier`, shared with ``POST /v1/inbox/{id}/ack``)
---------------------------------------------------------------------------
An office may sign its ``DeliveryAck`` (an enveloped ``ds:Signature``). A signed
ack is kept as evidence only if the signature verifies against the gateway's
trust store and the certificate belongs to the acknowledging office's agency
(:func:`pki.receipts.verify_signed_ack`). A ``Sha256`` in the ack, signed or
not, must be the SHA-256 of the envelope bytes the gateway delivered: an office
that names another digest says it got other bytes. An unsigned ack without a
contradicting digest is accepted (offices need not sign). The facts (signed,
verified, by which certificate) go into the ``delivery.delivered`` audit event.

Outcome table of one push attempt:

==================================================== =========== =================================
office's answer                                      outcome     why
==================================================== =========== =================================
2xx + DeliveryAck for this delivery (valid, or       Delivered   the office has it
unsigned without a contradicting Sha256)
2xx without a DeliveryAck for this delivery          Retry       the office did not say it has it
2xx + signed ack that does not verify, is by another Retry       not an acknowledgement; resending is
agency's certificate, or names another Sha256                    harmless (the office deduplicates) and
(``ack.signature_invalid``, ``ack.wrong_agency``,                some causes pass (revocation status
``ack.digest_mismatch``)                                         unknown, bytes damaged on the way);
                                                                 a lasting fault ends as a dead letter
                                                                 whose last error names the code
429, 5xx, timeout, connection error                  Retry       not now (Retry-After honoured)
other 4xx                                            Permanent   refused for good
==================================================== =========== =================================
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import aiohttp
from lxml import etree

from adapters.base import Delivered, OutboundDelivery, Outcome, Permanent, Retry
from adapters.errors import AckRefused
from adapters.http import TRANSPORT_ERRORS, classify_http_status, retry_after, transport_retry
from adapters.wire import Wire
from gateway.core import xml
from gateway.core.errors import GatewayError
from gateway.core.parts import related_payload
from pki.errors import AgencyError, PkiError
from pki.ltv import Capture, capturing
from pki.receipts import verify_signed_ack
from pki.trust import fingerprint

_SIGNATURE = f"{{{xml.DSIG_NS}}}Signature"


def check_ack(body: bytes, delivery_id: str, *, max_bytes: int = 1 << 20) -> str | None:
    """``None`` if ``body`` is a DeliveryAck for ``delivery_id``, else what is wrong."""
    read = read_ack(body, delivery_id, max_bytes=max_bytes)
    return read if isinstance(read, str) else None


class PlainAck(NamedTuple):
    """An unsigned DeliveryAck read from its plain form (:data:`_PLAIN_ACK`) without a tree."""

    sha256: str | None
    """Its ``Sha256`` (64 lower-case hex digits), ``None`` when it names none."""


#: XML's white space (not ``\s``: form feed and vertical tab are not even XML characters).
_S = rb"[ \t\r\n]"
#: The usual DeliveryAck, exactly: an optional XML declaration (version 1.0, UTF-8 or no encoding), the
#: envelope namespace as the default and nothing else on the root, ``DeliveryId`` (letters, digits and
#: hyphens: a UUID is what the gateway sends), optional ``MessageId`` and ``Sha256`` (each exactly its
#: schema type's pattern and length), white space between elements and after the root. Every document it
#: matches is well-formed, valid against envelope-v1.xsd and within every limit of the hardened parser
#: (no DTD, no entity or character reference, no comment or processing instruction: ``<!``, ``&`` and
#: ``<?`` after the declaration cannot match), and the values it captures are the tree's texts (no
#: reference or CDATA section can hide in them); a test holds it to the parser and the schema. Any other
#: document (signed, with ``ReceivedAt``, another prefix, a byte order mark ...) is read the full way.
_PLAIN_ACK: Final = re.compile(
    rb"(?:<\?xml" + _S + rb"+version" + _S + rb"*=" + _S + rb"*(['\"])1\.0\1"
    rb"(?:" + _S + rb"+encoding" + _S + rb"*=" + _S + rb"*(['\"])(?:[Uu][Tt][Ff]-8)\2)?" + _S + rb"*\?>" + _S + rb"*)?"
    rb"<DeliveryAck" + _S + rb"+xmlns" + _S + rb"*=" + _S + rb"*(['\"])urn:th:gov:saraban:envelope:1\3" + _S + rb"*>"
    + _S + rb"*<DeliveryId>([0-9A-Za-z-]{1,64})</DeliveryId>"
    rb"(?:" + _S + rb"*<MessageId>[A-Za-z0-9._:@-]{1,128}</MessageId>)?"
    rb"(?:" + _S + rb"*<Sha256>([0-9a-f]{64})</Sha256>)?"
    + _S + rb"*</DeliveryAck" + _S + rb"*>" + _S + rb"*")
#: Longer than this is not looked at by :data:`_PLAIN_ACK` (the usual ack is ~200 bytes).
_PLAIN_MAX: Final = 2048


def read_ack(body: bytes, delivery_id: str, *,
             max_bytes: int = 1 << 20) -> etree._Element | PlainAck | str:
    """``body`` read as a DeliveryAck for ``delivery_id``, else what is wrong (for :meth:`AckVerifier.verify`,
    so a push reads its ack once).

    An unsigned ack in the usual form (:data:`_PLAIN_ACK`) for this delivery is read without a parser
    (:class:`PlainAck`: ~1 µs where the hardened parser, its shape checks and the schema took ~70);
    every other body is parsed and validated (the tree), and every refusal comes from that way, with
    its code.
    """
    plain = read_plain_ack(body, delivery_id) if len(body) <= max_bytes else None
    return plain if plain is not None else read_ack_tree(body, delivery_id, max_bytes=max_bytes)


def read_plain_ack(body: bytes, delivery_id: str) -> PlainAck | None:
    """``body`` read as an unsigned DeliveryAck for ``delivery_id`` in the usual form, or ``None``
    (another form, or not an ack for this delivery: :func:`read_ack_tree` says)."""
    if len(body) > _PLAIN_MAX:
        return None
    plain = _PLAIN_ACK.fullmatch(body)
    if plain is None or plain.group(4) != delivery_id.encode():
        return None
    sha256 = plain.group(5)
    return PlainAck(sha256.decode("ascii") if sha256 is not None else None)


def read_ack_tree(body: bytes, delivery_id: str, *, max_bytes: int = 1 << 20) -> etree._Element | str:
    """``body`` parsed by the hardened parser and validated: the tree if it is a DeliveryAck for
    ``delivery_id``, else what is wrong (the way every ack was read before :func:`read_plain_ack`)."""
    try:
        root = xml.parse(body, max_bytes=max_bytes, what="ack")
        xml.validate("envelope-v1.xsd", root, what="ack")
    except GatewayError as exc:
        return f"{exc.code}: {exc.message}"
    if root.tag != f"{{{xml.ENVELOPE_NS}}}DeliveryAck":
        return "ack.not_delivery_ack"
    got = root.findtext(f"{{{xml.ENVELOPE_NS}}}DeliveryId")
    if got != delivery_id:
        return f"ack.wrong_delivery_id: {got!r}"
    return root


@dataclass(frozen=True)
class AckVerifier:
    """Checks what a DeliveryAck claims beyond its schema: signature, signer's agency, digest.

    ``trust`` is the gateway's :class:`pki.trust.TrustStore`; ``None`` (no PKI
    wired, e.g. CLI tools) refuses every signed ack rather than keep it unverified.
    """

    #: The gateway's trust store (anchors, revocation policy, the directory's agency binding).
    trust: Any = None
    #: Keeps what a signed ack's validation relied on (issue 16): ``await record(capture, facts)`` returns
    #: facts to add (the report's name); None keeps nothing.
    record: Callable[[Capture, dict[str, Any]], Awaitable[dict[str, Any]]] | None = None

    async def verify(self, body: bytes, *, agency: str, delivery_id: str, delivered: bytes,
                     read: etree._Element | PlainAck | None = None,
                     delivered_sha256: bytes | None = None) -> dict[str, Any]:
        """Facts about ``body`` (a DeliveryAck from ``agency`` that :func:`check_ack` passed), or raise
        :class:`AckRefused`.

        ``delivered``: the envelope bytes the gateway delivered to the office; ``delivered_sha256``
        their SHA-256 when the caller has it (the dispatcher's claim does; else hashed here, and only
        when the ack names a digest). ``read``: ``body`` as :func:`read_ack` read it (parsed here
        when not given). For a signed ack the delivery id and digest are read again from the tree
        the signature covers.
        """
        if read is None:
            read = xml.parse(body, what="ack")
        if isinstance(read, PlainAck):
            claimed: str | None = read.sha256
        elif read.find(_SIGNATURE) is None:
            claimed = (read.findtext(f"{{{xml.ENVELOPE_NS}}}Sha256") or "").strip() or None
        else:
            return await self._verify_signed(body, agency=agency, delivery_id=delivery_id,
                                             expected=_hex_sha256(delivered, delivered_sha256))
        if claimed is not None:
            self._check_digest(claimed, _hex_sha256(delivered, delivered_sha256))
        return {"ack_signed": False, "ack_sha256_checked": claimed is not None}

    async def _verify_signed(self, body: bytes, *, agency: str, delivery_id: str, expected: str) -> dict[str, Any]:
        if self.trust is None:
            raise AckRefused("a signed DeliveryAck cannot be verified here (no trust store)",
                             field="Signature")
        try:
            with capturing() as capture:
                verified = await verify_signed_ack(body, self.trust, agency=agency)
        except AgencyError as exc:
            raise AckRefused(f"the ack is signed by a certificate that may not sign for {agency}: "
                             f"{exc.message}", code="ack.wrong_agency", field="Signature") from None
        except PkiError as exc:
            raise AckRefused(f"the ack's signature does not verify ({exc.code}: {exc.message})",
                             field=exc.field or "Signature") from None
        if verified.delivery_id != delivery_id:
            raise AckRefused(f"the signed ack names delivery {verified.delivery_id!r}", field="DeliveryId")
        self._check_digest(verified.sha256, expected)
        facts = {"ack_signed": True, "ack_verified": True,
                "ack_signer": verified.signer.subject.rfc4514_string(),
                "ack_signer_sha256": fingerprint(verified.signer),
                "ack_signer_agency": verified.agency_code,
                "ack_signature_algorithm": verified.signature_algorithm,
                "ack_sha256_checked": verified.sha256 is not None}
        if self.record is not None:
            facts.update(await self.record(capture, facts))
        return facts

    @staticmethod
    def _check_digest(claimed: str | None, expected: str) -> None:
        if claimed is not None and claimed.lower() != expected:
            raise AckRefused(f"the ack names Sha256 {claimed}, but the delivered envelope's is {expected}",
                             code="ack.digest_mismatch", field="Sha256")


def _hex_sha256(delivered: bytes, known: bytes | None) -> str:
    """The delivered envelope's SHA-256 in hex: ``known`` (its caller's) or hashed now."""
    return (known if known is not None else hashlib.sha256(delivered).digest()).hex()


class PushAdapter:
    kind = "push"
    pushes = True

    def __init__(self, session: aiohttp.ClientSession, *, timeout_s: float = 30.0,
                 acks: AckVerifier | None = None, wire: Wire | None = None) -> None:
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.acks = acks or AckVerifier()
        #: The envelope alone (no files beside it) goes out on this lean client; multipart through ``session``
        self.wire = wire or Wire()

    def close(self) -> None:
        """Close the kept connections to offices (the session is its owner's to close)."""
        self.wire.close()

    async def deliver(self, d: OutboundDelivery) -> Outcome:
        url = d.route.settings["url"]
        timeout_s = float(d.route.settings.get("timeout_s", self.timeout.total))
        delivery_id = str(d.delivery_id)
        headers = {
            "Content-Type": "application/xml; charset=utf-8",
            "X-Saraban-Delivery-Id": delivery_id,
            "X-Saraban-Message-Id": d.message_id,
            "X-Saraban-Sender": d.sender,
            "X-Saraban-Attempt": str(d.attempt),
        }
        try:
            if d.parts:  # files beside the envelope: one multipart/related body, streamed from the store
                status, answer_headers, body = await self._post_related(
                    d, url, headers, aiohttp.ClientTimeout(total=timeout_s))
            else:
                answer = await self.wire.post(url, d.envelope, headers, timeout=timeout_s or 30.0)
                status, answer_headers, body = answer.status, answer.headers, answer.body
        except TRANSPORT_ERRORS as exc:
            return transport_retry(exc)
        verdict = classify_http_status(status)
        if verdict == "retry":
            return Retry(f"http {status}", retry_after(answer_headers.get("retry-after")))
        if verdict == "permanent":
            return Permanent(f"http {status}: {body[:200].decode('utf-8', 'replace')}")
        # The connection is back in the pool: checking a signed ack may fetch OCSP/CRLs.
        read = read_ack(body, delivery_id)
        if isinstance(read, str):
            return Retry(f"http {status} without a valid acknowledgement ({read})")
        try:
            facts = await self.acks.verify(body, agency=d.recipient, delivery_id=delivery_id,
                                           delivered=d.envelope, read=read, delivered_sha256=d.envelope_sha256)
        except AckRefused as exc:
            return Retry(f"http {status} with an acknowledgement that is not valid "
                         f"({exc.code}: {exc.message})")
        return Delivered(ack=body, facts=facts)

    async def _post_related(self, d: OutboundDelivery, url: str, headers: dict[str, str],
                            timeout: aiohttp.ClientTimeout) -> tuple[int, Mapping[str, str], bytes]:
        related = related_payload(d.envelope, d.parts, d.read_part)
        headers["Content-Type"] = related.headers["Content-Type"]
        async with self.session.post(url, data=related, headers=headers, timeout=timeout,
                                     allow_redirects=False) as resp:
            body = await resp.content.read(1 << 20)
            return resp.status, {"retry-after": resp.headers.get("Retry-After") or ""}, body
