"""Wiring between the gateway and ``pki``: trust, verification, the seal, TLS.

Built once at start-up (keys are loaded once: an RSA key load costs ~240 ms):

* the **trust store** (anchors, intermediates, revocation policy, the hosts
  revocation checks may fetch from, and the directory's certificate pins as the
  agency binding);
* the **verifier** that :class:`gateway.intake.checks.Intake` calls: the author's
  signature over the body and every attachment, the signer's path to a trust
  anchor, the signer's authority for the sending agency, attachment digests;
  everything downstream reads the tree that was verified;
* the **sealer**: the gateway's own signature over what it forwards (covering
  the author's signature too) and over every receipt it issues;
* the **TLS context** for ``gateway serve`` with client-certificate
  authentication (the certificate's agency code identifies the caller).

In the development profile, with no keys configured, a development PKI is
created in ``pki_dir`` on first start (``gateway pki init-dev`` does the same).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from cryptography import x509
from lxml import etree

from gateway.core.clock import Clock
from gateway.core.directory import Directory
from gateway.core.errors import ConfigError, EnvelopeError
from gateway.core.metrics import Metrics
from gateway.core.receipts import ReceiptBytes
from gateway.core.sealing import PdfChecker, Verifier
from gateway.core.settings import Settings
from gateway.core.xml import ENVELOPE_NS
from pki import pdf as pdfsig
from pki.devca import DevPki, init_dev_pki
from pki.errors import PkiError
from pki.fetch import FetchPolicy
from pki.keys import FileSigner, Signer
from pki.receipts import sign_receipt, sign_receipt_tree
from pki.seal import seal_envelope, seal_tree
from pki.trust import AgencyBinding, TrustStore
from pki.verify import VerifiedEnvelope, verify_envelope

log = structlog.get_logger(__name__)


class VerifiedTrees:
    """The tree each envelope's bytes were verified as, handed from the verifier to the sealer.

    Parse once: intake parses the bytes received, the verifier checks the
    author's signature on that tree, and the seal is added to the same tree
    (:func:`pki.seal.seal_tree`) instead of to a second parse of the bytes
    (~0.1 ms for a 9 KB letter). The entry is keyed by the bytes object
    itself (held by the entry, so its ``id`` cannot be reused while it is
    there, and a hit is confirmed with ``is``): only a tree parsed from
    exactly the object the sealer is handed is ever taken, once. Bounded: a
    letter refused after its signature was checked leaves an entry that the
    oldest-first eviction removes (at most ``maxsize`` entries and
    ``max_bytes`` of letters held, so refused large letters cannot pile up);
    a miss only costs the parse.

    A tree the gateway *built* (an e-CMS letter mapped to a native envelope: the bytes are its
    serialisation, :class:`gateway.intake.checks.BuiltEnvelope`) is handed over by content instead
    (:meth:`put_built`): intake hands the sealer a copy of those bytes, not the object, and the
    built tree is read by nobody after the verifier, so whichever request with equal bytes takes it
    seals the same content. Without the handoff, every e-CMS letter was serialised, then parsed
    again to be sealed (~60 us a letter; native letters, signed in production, already skip it).
    """

    def __init__(self, maxsize: int = 1024, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self._held = 0
        self._trees: dict[object, tuple[bytes, etree._Element, VerifiedEnvelope | None]] = {}
        #: How many built trees of each length are held: a take looks them up by content only then.
        self._built_lengths: dict[int, int] = {}

    def put(self, raw: bytes, root: etree._Element, verified: VerifiedEnvelope | None = None) -> None:
        """Hand over the tree parsed from exactly the object ``raw``; ``verified``: what its verifier found
        in it (the id index, the digests it checked), so the seal need not walk and digest it again."""
        self._put(id(raw), raw, root, verified if verified is not None and verified.root is root else None)

    def put_built(self, raw: bytes, root: etree._Element) -> None:
        """Hand over a tree whose serialisation is ``raw`` and that nobody reads again but the sealer."""
        key = bytes(raw)
        if self._put(key, key, root):
            self._built_lengths[len(key)] = self._built_lengths.get(len(key), 0) + 1

    def _put(self, key: object, raw: bytes, root: etree._Element, verified: VerifiedEnvelope | None = None) -> bool:
        if len(raw) > self.max_bytes // 4:
            return False  # a large letter is parsed again rather than held
        self._drop(key)
        while self._trees and (len(self._trees) >= self.maxsize or self._held + len(raw) > self.max_bytes):
            self._drop(next(iter(self._trees)))
        self._trees[key] = (raw, root, verified)
        self._held += len(raw)
        return True

    def _drop(self, key: object) -> tuple[etree._Element, VerifiedEnvelope | None] | None:
        entry = self._trees.pop(key, None)
        if entry is None:
            return None
        self._held -= len(entry[0])
        if not isinstance(key, int):
            left = self._built_lengths[len(entry[0])] - 1
            if left:
                self._built_lengths[len(entry[0])] = left
            else:
                del self._built_lengths[len(entry[0])]
        return entry[1], entry[2]

    def __len__(self) -> int:
        """How many trees are held (not yet taken by the sealer)."""
        return len(self._trees)

    def clear(self) -> None:
        """Drop every tree held (each is only a saved parse: a letter whose tree is gone is parsed again)."""
        self._trees.clear()
        self._built_lengths.clear()
        self._held = 0

    def take(self, raw: bytes) -> etree._Element | None:
        entry = self.take_verified(raw)
        return None if entry is None else entry[0]

    def take_verified(self, raw: bytes) -> tuple[etree._Element, VerifiedEnvelope | None] | None:
        """:meth:`take`, with what the verifier found in the tree when it handed that over (else None)."""
        entry = self._trees.get(id(raw))
        if entry is not None and entry[0] is raw:
            return self._drop(id(raw))
        if len(raw) in self._built_lengths:
            return self._drop(bytes(raw))
        return None


#: One per process: the verifier (:meth:`Trust.verifier`) puts, :class:`PkiSealer` takes.
VERIFIED_TREES = VerifiedTrees()


class VerifiedContents:
    """Attachments the verifier decoded and checked, handed to intake by the very tree they were read from.

    Intake reads the verified tree's attachments into records after the verifier has decoded each
    Content and checked it against its Size and Sha256 (``pki.verify``); doing that again cost a base64
    decode and a SHA-256 per file. The verifier puts the contents it decoded exactly as the envelope
    reader would (strict base64, no white-space pass: :attr:`pki.verify.VerifiedEnvelope.strict_contents`)
    under the tree object itself, and intake takes them with that same object: the entry holds the tree,
    so no other tree can have its identity while the entry exists, and a take checks identity, not
    equality. Another document can never reuse them. Taken at once after the verifier returns; the few
    left by a request that failed in between are dropped oldest first.
    """

    def __init__(self, maxsize: int = 64, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self._bytes = 0
        self._held: dict[int, tuple[etree._Element, Mapping[str, bytes], int]] = {}

    def put(self, root: etree._Element, contents: Mapping[str, bytes]) -> None:
        size = sum(len(c) for c in contents.values())
        if not contents or size > self.max_bytes // 4:
            return  # nothing, or large files: intake decodes them again rather than the process holding them
        self._pop(id(root))
        while self._held and (len(self._held) >= self.maxsize or self._bytes + size > self.max_bytes):
            self._pop(next(iter(self._held)))
        self._held[id(root)] = (root, contents, size)
        self._bytes += size

    def _pop(self, key: int) -> tuple[etree._Element, Mapping[str, bytes], int] | None:
        entry = self._held.pop(key, None)
        if entry is not None:
            self._bytes -= entry[2]
        return entry

    def __len__(self) -> int:
        """How many trees' contents are held (not yet taken by intake)."""
        return len(self._held)

    def clear(self) -> None:
        """Drop every entry held (intake decodes a letter whose contents are gone again)."""
        self._held.clear()
        self._bytes = 0

    def take(self, root: etree._Element) -> Mapping[str, bytes]:
        """The contents put under ``root`` (this very object), or nothing."""
        entry = self._held.get(id(root))
        if entry is None or entry[0] is not root:
            return {}
        self._pop(id(root))
        return entry[1]


#: One per process: the verifier (:meth:`Trust.verifier`) puts, :class:`gateway.intake.checks.Intake` takes.
VERIFIED_CONTENTS = VerifiedContents()


class PkiSealer:
    """The gateway's seal and receipt signatures, with the key loaded once."""

    def __init__(self, signer: Signer, trees: VerifiedTrees = VERIFIED_TREES) -> None:
        self.signer = signer
        self.trees = trees
        subject = signer.certificate.subject.rfc4514_string()
        self.description = f"sealed by {subject} ({signer.key_algorithm})"

    def seal_envelope(self, envelope: bytes) -> bytes:
        taken = self.trees.take_verified(envelope)
        if taken is not None:
            tree, verified = taken
            if verified is None:
                return seal_tree(tree, self.signer)
            # a verified tree, taken: nobody reads it after the seal, so the seal is not read back into it
            return seal_tree(tree, self.signer, ids=verified.ids, exclusive_sha256=verified.exclusive_sha256,
                             keep_seal=False)
        return seal_envelope(envelope, self.signer)

    def sign_receipt(self, receipt: bytes) -> bytes:
        if isinstance(receipt, ReceiptBytes):
            if receipt.written is not None:  # written as bytes: signed as written, no tree
                return receipt.written.sign(self.signer)
            return sign_receipt_tree(receipt.tree, self.signer)
        return sign_receipt(receipt, self.signer)


@dataclass
class Trust:
    """What start-up built; held by the app for its lifetime."""

    store: TrustStore
    seal_signer: Signer | None
    gateway_cert: x509.Certificate | None
    tls_cert: Path | None
    tls_key: Path | None
    anchors_pem: tuple[Path, ...]
    """The PEM files of the anchors, every one (for the TLS client-certificate check)."""
    intermediates_pem: tuple[Path, ...] = ()
    dev_pki: DevPki | None = None

    def verifier(self, settings: Settings) -> Verifier:
        """The callable :class:`gateway.intake.checks.Intake` runs after the schema and sender checks."""
        store = self.store

        signatures_tag = f"{{{ENVELOPE_NS}}}Signatures"

        async def verify(raw: bytes, root: etree._Element, sender: str, /, *,
                         channel: str = "native") -> tuple[etree._Element, dict[str, Any]]:
            require = settings.require_signature and channel == "native"
            if not require and root.find(signatures_tag) is None:
                # An unsigned envelope where none is required (e.g. built by the e-CMS facade from a
                # legacy letter whose own signature it checked): nothing to verify here; intake still
                # checks every attachment's size and digest.
                if getattr(raw, "tree", None) is root:  # built, not parsed: the seal goes onto it
                    VERIFIED_TREES.put_built(raw, root)
                return root, {"signed": False}
            # intake checked this tree's signature zone just before (seal=False: stricter), and validated
            # a tree it parsed against the envelope XSD (a built tree is proven to fit it instead, and
            # carries no ds:Signature of its own: the signature's schema check then stays)
            verified = await verify_envelope(raw, store, sender=sender, allow_sha1=settings.allow_sha1,
                                             require_signature=require, root=root, zone_checked=True,
                                             schema_checked=getattr(raw, "tree", None) is not root)
            if verified.root is root and verified.raw is raw:
                VERIFIED_TREES.put(raw, root, verified)  # the seal goes onto this tree (parse once)
            VERIFIED_CONTENTS.put(verified.root, verified.strict_contents)  # intake reads them (decode once)
            r = verified.report
            facts: dict[str, Any] = {"signed": r.signed, "signature_intact": r.signature_intact, "signer_trusted": r.signer_trusted,
                     "signer_authorised": r.signer_authorised, "digests_ok": r.digests_ok}
            if r.signed:
                facts.update(signer=r.signer_subject, signer_agency=r.agency_code,
                             signature_algorithm=r.signature_algorithm)
            if verified.validated is not None:  # "unknown": soft-fail accepted without revocation status
                facts["revocation"] = verified.validated.revocation
            return verified.root, facts

        return verify


    def pdf_checker(self, settings: Settings) -> PdfChecker:
        """``async check(pdf_bytes, sender) -> facts`` for the main PDF, per the policy."""
        store = self.store

        async def check(content: bytes, sender: str, /) -> dict[str, Any]:
            if b"/ByteRange" not in content:  # no PDF signature dictionary at all: cheap and certain
                if settings.require_pdf_signature:
                    raise EnvelopeError("the main PDF must carry the author's signature",
                                        code="pdf.signature_required", field="Attachments/Attachment[@role='main']")
                return {"pdf_signed": False}
            report = await pdfsig.validate_pdf(content, store)
            sigs = report.signatures
            # Each signature's agency: the same binding as the XML signatures (code in the subject, pins).
            agency_ok = []
            for sig in sigs:
                try:
                    agency_ok.append(sig.signer is not None and bool(store.check_agency(sig.signer, sender)))
                except PkiError:
                    agency_ok.append(False)
            holds = report.signed and all(sig.signature_holds for sig in sigs)
            unmodified = report.signed and all(sig.modifications_allowed for sig in sigs)
            authorised = report.signed and all(agency_ok)
            facts = {"pdf_signed": report.signed, "pdf_valid": report.ok and authorised,
                     "pdf_signature_holds": holds, "pdf_modifications_allowed": unmodified,
                     "pdf_signer_authorised": authorised,
                     # strings: the accept event keeps scalar facts only
                     "pdf_modification_levels": ",".join(str(sig.modification_level) for sig in sigs),
                     "pdf_signer_agencies": ",".join(str(sig.agency_code) for sig in sigs)}
            if settings.require_pdf_signature:
                where = "Attachments/Attachment[@role='main']"
                if not holds:
                    raise EnvelopeError(f"the main PDF's signature does not validate ({report.status})",
                                        code="pdf.signature_invalid", field=where)
                if not unmodified:
                    levels = ", ".join(f"{sig.coverage}/{sig.modification_level}" for sig in sigs)
                    raise EnvelopeError("the main PDF was changed after it was signed beyond form filling and "
                                        f"annotations ({levels})", code="pdf.signature_modified", field=where)
                if not authorised:
                    others = ", ".join(sorted({str(sig.agency_code) for sig, ok in zip(sigs, agency_ok, strict=False) if not ok}))
                    raise EnvelopeError(f"the main PDF is signed by a certificate that may not sign for {sender} "
                                        f"(agency {others})", code="pdf.wrong_agency", field=where)
            return facts

        return check


def _pems(paths: str) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for p in [p.strip() for p in paths.split(",") if p.strip()]:
        try:
            out += x509.load_pem_x509_certificates(Path(p).read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read certificates from {p}: {exc}", field="GATEWAY_TRUST_ANCHORS") from None
    return out


def _paths(value: str) -> tuple[Path, ...]:
    return tuple(Path(p.strip()) for p in value.split(",") if p.strip())


def _crls(paths: str) -> list[x509.CertificateRevocationList]:
    out = []
    for path in _paths(paths):
        try:
            data = path.read_bytes()
            out.append(x509.load_pem_x509_crl(data) if data.lstrip().startswith(b"-----")
                       else x509.load_der_x509_crl(data))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read a CRL from {path}: {exc}", field="GATEWAY_CRL_FILES") from None
    return out


def _fetch_allow(settings: Settings) -> list[str] | None:
    """``GATEWAY_FETCH_ALLOW`` as entries; None (unset) lets the trust store derive them from the CAs."""
    if settings.fetch_allow is None:
        return None
    if settings.fetch_allow.strip().lower() == "none":
        return []
    try:
        FetchPolicy.parse(settings.fetch_allow)
    except ValueError as exc:
        raise ConfigError(f"GATEWAY_FETCH_ALLOW: {exc}", field="GATEWAY_FETCH_ALLOW") from None
    return [h for h in settings.fetch_allow.split(",") if h.strip()]


def _trust_store(settings: Settings, anchors: list[x509.Certificate], intermediates: list[x509.Certificate],
                 binding: AgencyBinding, metrics: Metrics | None, clock: Clock | None) -> TrustStore:
    def count(kind: str, outcome: str) -> None:
        if metrics is not None:
            metrics.pki_fetches.labels(kind=kind, outcome=outcome).inc()

    store = TrustStore(anchors, intermediates, revocation=settings.revocation, binding=binding,
                       crls=_crls(settings.crl_files), fetch_allow=_fetch_allow(settings), on_fetch=count,
                       clock=clock.now if clock is not None else None)
    allow = sorted(store.fetch_policy.allow)
    if settings.revocation == "hard-fail" and not allow and not settings.crl_files.strip():
        raise ConfigError(
            "GATEWAY_REVOCATION=hard-fail needs revocation information, and there is none: the trust anchors "
            "and intermediates name no OCSP or CRL host, GATEWAY_FETCH_ALLOW names none and GATEWAY_CRL_FILES "
            "is empty. Set GATEWAY_FETCH_ALLOW to your CAs' OCSP and CRL hosts (host or host:port, "
            "comma-separated), or GATEWAY_CRL_FILES to their CRLs, or use GATEWAY_REVOCATION=soft-fail",
            field="GATEWAY_FETCH_ALLOW")
    log.info("revocation checks", policy=settings.revocation, fetch_allow=allow,
             derived=settings.fetch_allow is None)
    return store


def build_trust(settings: Settings, directory: Directory, metrics: Metrics | None = None,
                clock: Clock | None = None) -> Trust:
    """Blocking (key generation on a first development start): run in a thread at start-up.

    ``metrics`` counts the trust store's fetches and refusals to fetch (``gateway_pki_fetches_total``).
    ``clock`` is the gateway's: certificates, OCSP answers and their cache are judged at its time (a
    test's fake clock included), never at the machine's.
    """
    binding = AgencyBinding(directory.pins())  # a live view: directory changes re-pin at once
    dev = None
    if settings.trust_anchors:
        anchors = _pems(settings.trust_anchors)
        intermediates = _pems(settings.trust_intermediates)
        anchors_pem, intermediates_pem = _paths(settings.trust_anchors), _paths(settings.trust_intermediates)
    elif settings.profile == "development":
        # generated example rows (thousands of local offices) get no development keys: a first start stays quick
        dev = init_dev_pki(settings.pki_path, {a.code: a.name_th for a in directory.all() if not a.generated})
        anchors, intermediates, anchors_pem = [dev.root_cert], [dev.intermediate_cert], (dev.anchors,)
        intermediates_pem = (dev.intermediates,)
        log.info("development PKI ready", directory=str(settings.pki_path))
    else:
        raise ConfigError("production needs GATEWAY_TRUST_ANCHORS (PEM files of trusted CAs)",
                          field="GATEWAY_TRUST_ANCHORS")
    store = _trust_store(settings, anchors, intermediates, binding, metrics, clock)
    signer = None
    if settings.seal:
        if settings.seal_key and settings.seal_cert:
            signer = FileSigner.from_pem(settings.seal_key, settings.seal_cert)
        elif dev is not None:
            signer = dev.seal_signer()
        else:
            raise ConfigError("production needs GATEWAY_SEAL_KEY and GATEWAY_SEAL_CERT", field="GATEWAY_SEAL_KEY")
    tls_cert = settings.tls_cert or (dev.tls_server_cert if dev is not None else None)
    tls_key = settings.tls_key or (dev.tls_server_key if dev is not None else None)
    return Trust(store=store, seal_signer=signer, gateway_cert=signer.certificate if signer else None,
                 tls_cert=tls_cert, tls_key=tls_key, anchors_pem=anchors_pem, intermediates_pem=intermediates_pem,
                 dev_pki=dev)


def server_ssl_context(settings: Settings, trust: Trust) -> ssl.SSLContext | None:
    if not settings.tls:
        return None
    if trust.tls_cert is None or trust.tls_key is None:
        raise ConfigError("HTTPS needs GATEWAY_TLS_CERT and GATEWAY_TLS_KEY", field="GATEWAY_TLS_CERT")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(trust.tls_cert), str(trust.tls_key))
    if settings.client_certs != "off" and trust.anchors_pem:
        for path in (*trust.anchors_pem, *trust.intermediates_pem):  # every configured file, not the first
            ctx.load_verify_locations(cafile=str(path))
        ctx.verify_mode = ssl.CERT_REQUIRED if settings.client_certs == "required" else ssl.CERT_OPTIONAL
    return ctx
