"""Verifying an RFC 4998 Evidence Record at a given date (5.3), with a precise yes or no.

What is checked, in order, for a record over data objects ``d`` (one or several, a data object group):

1. The record decodes (one whole DER EvidenceRecord, version 1).
2. Chain 0, its first ArchiveTimeStamp: ``H(d)`` of every data object is in the first list of the reduced
   hash tree (or is the imprint, when there is no tree); the path leads to the root; the root and the
   algorithm are the time-stamp's ``messageImprint``. A data object shaped like an inner node
   (:func:`pki.ers.node_shaped`) is refused.
3. Every later ArchiveTimeStamp of a chain (time-stamp renewal) covers ``H(timeStamp field)`` of the one
   before it, with the chain's algorithm; all ATSs of a chain use one algorithm.
4. The first ArchiveTimeStamp of chain k > 0 (hash-tree renewal) covers ``H'(H'(d) || H'(atsc))`` where
   ``atsc`` is the DER of chains 0..k-1 as they stand in the record.
5. Times: each token's genTime is not before the previous one's. Each token is valid (intact signature,
   TSA certificate chaining to ``tsa_trust``, within its validity) *at the genTime of the next ATS* (the
   renewal that preserved it), the last one at ``at``. A TSA certificate that expired before the next
   renewal (or before ``at``) is ``er.renewal_missing``.
6. Hash algorithms: the algorithm of chain k must not have been declared weak (``weak``: name -> from
   when) before the first ATS of chain k+1 (or, for the last chain, before ``at``):
   ``er.hash_weak`` otherwise.

The result names every time-stamp relied on (TSA, serial, genTime, algorithm, the date it was checked at)
and every failure with a stable code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from asn1crypto import cms
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import RevokedError

from pki import ers


@dataclass(frozen=True)
class ReliedStamp:
    """One RFC 3161 time-stamp the verdict rests on."""

    chain: int
    """Which ArchiveTimeStampChain (0 = the initial one; one more per hash-tree renewal)."""
    index: int
    """Its place in the chain (0 = the chain's first; one more per time-stamp renewal)."""
    alg: str
    """The chain's hash algorithm."""
    gen_time: dt.datetime
    """The TSA's time."""
    tsa: str
    """The TSA certificate's subject."""
    serial: int
    """The token's serial number."""
    checked_at: dt.datetime
    """When it had to be valid: the next renewal's genTime, or the verification date for the last one."""
    revocation: str = "none kept"
    """The TSA certificate's revocation data the token keeps (``revocation-values``, :mod:`pki.ltv_tsa`),
    judged at the token's genTime: ``1 CRL, 0 OCSP kept, not revoked`` or ``none kept``."""


@dataclass(frozen=True)
class ErProblem:
    code: str
    """Stable code: er.unreadable, er.data_mismatch, er.node_shaped, er.path_mismatch, er.imprint_mismatch,
    er.algorithm, er.order, er.token_invalid, er.renewal_missing, er.hash_weak."""
    where: str
    """Which ATS ("chain 1, time-stamp 0") or "record"."""
    detail: str


@dataclass
class ErCheck:
    """The answer of :func:`verify_evidence_record`."""

    at: dt.datetime
    """The verification date (the verifier's "now")."""
    relied_on: list[ReliedStamp] = field(default_factory=list)
    problems: list[ErProblem] = field(default_factory=list)
    proven_at: dt.datetime | None = None
    """The earliest time the data objects are proven to have existed (first token's genTime)."""

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.relied_on)

    def summary(self) -> str:
        if self.ok:
            head = f"หลักฐานใช้ได้ / evidence record valid at {self.at:%Y-%m-%d}: existed by {self.proven_at}"
        else:
            head = f"หลักฐานใช้ไม่ได้ / evidence record NOT valid at {self.at:%Y-%m-%d}"
        lines = [head]
        lines += [f"  relied on: chain {s.chain} stamp {s.index} {s.alg} {s.gen_time:%Y-%m-%d %H:%M:%S}Z "
                  f"by {s.tsa} (serial {s.serial}), valid at {s.checked_at:%Y-%m-%d}; TSA revocation data: "
                  f"{s.revocation}" for s in self.relied_on]
        lines += [f"  {p.code} ({p.where}): {p.detail}" for p in self.problems]
        return "\n".join(lines)


def _where(k: int, j: int) -> str:
    return f"chain {k}, time-stamp {j}"


def _signer_cert(sd: cms.SignedData) -> ax509.Certificate | None:
    sid = sd["signer_infos"][0]["sid"]
    for c in sd["certificates"] or []:
        cert = c.chosen
        if sid.name == "issuer_and_serial_number":
            if (cert.issuer == sid.chosen["issuer"]
                    and cert.serial_number == sid.chosen["serial_number"].native):
                return cert
        elif cert.key_identifier == sid.chosen.native:
            return cert
    return None


async def _check_revocation(check: ErCheck, where: str, sd: cms.SignedData, signer: ax509.Certificate,
                            anchors: list[ax509.Certificate]) -> str:
    """The TSA certificate judged at the token's genTime with the revocation data the token keeps (none
    fetched): a certificate revoked before it stamped is ``er.token_invalid``. What was relied on, in words."""
    ocsps, crls = ers.kept_revocation(sd)
    if not ocsps and not crls:
        return "none kept"
    kept = f"{len(crls)} CRL, {len(ocsps)} OCSP kept"
    gen = sd["encap_content_info"]["content"].parsed["gen_time"].native
    vc = ValidationContext(trust_roots=anchors, other_certs=[c.chosen for c in sd["certificates"] or []],
                           moment=gen, allow_fetching=False, revocation_mode="soft-fail", crls=crls, ocsps=ocsps)
    try:
        await CertificateValidator(signer, validation_context=vc).async_validate_usage(set())
    except RevokedError as exc:
        check.problems.append(ErProblem("er.token_invalid", where, f"the TSA certificate "
                                        f"({signer.subject.human_friendly}) was revoked before it stamped at "
                                        f"{gen:%Y-%m-%d %H:%M:%S}Z, by the revocation data the token keeps: {exc}"))
        return f"{kept}, revoked"
    except Exception:  # noqa: BLE001 - other failures are the token check's to name
        return kept
    return f"{kept}, not revoked at {gen:%Y-%m-%d}"


async def _check_token(check: ErCheck, where: str, ats: ers.ArchiveTimeStamp, imprint: bytes,
                       moment: dt.datetime, anchors: list[ax509.Certificate]) -> str:
    sd = ats["time_stamp"]["content"]
    signer = _signer_cert(sd)
    if signer is None:
        check.problems.append(ErProblem("er.token_invalid", where, "the token does not carry its TSA certificate"))
        return "none kept"
    revocation = await _check_revocation(check, where, sd, signer, anchors)
    not_after = signer["tbs_certificate"]["validity"]["not_after"].native
    if not_after < moment:
        check.problems.append(ErProblem(
            "er.renewal_missing", where,
            f"the TSA certificate ({signer.subject.human_friendly}) expired {not_after:%Y-%m-%d}, before "
            f"{moment:%Y-%m-%d} when the next renewal (or the verification) needed it; "
            "a time-stamp renewal was missing"))
        return revocation
    embedded = [c.chosen for c in sd["certificates"] or []]
    vc = ValidationContext(trust_roots=anchors, other_certs=embedded, moment=moment, allow_fetching=False,
                           revocation_mode="soft-fail")
    try:
        status = await validate_tst_signed_data(sd, vc, lambda _algo: imprint)
    except Exception as exc:  # noqa: BLE001 - pyHanko raises several kinds; each is "not valid"
        check.problems.append(ErProblem("er.token_invalid", where, f"the time-stamp token does not validate: {exc}"))
        return revocation
    if not (status.get("intact") and status.get("valid")):
        check.problems.append(ErProblem("er.token_invalid", where, "the token's signature is not intact"))
    elif status.get("trust_problem_indic") is not None or status.get("validation_path") is None:
        check.problems.append(ErProblem("er.token_invalid", where,
                                        f"the TSA ({signer.subject.human_friendly}) does not chain to a "
                                        f"given trust anchor at {moment:%Y-%m-%d}"))
    return revocation


def _expected_first(check: ErCheck, k: int, alg: str, data_objects: Sequence[bytes],
                    chains: list[list[ers.ArchiveTimeStamp]]) -> list[bytes] | None:
    for d in data_objects:
        if ers.node_shaped(alg, d):
            check.problems.append(ErProblem("er.node_shaped", _where(k, 0),
                                            "a data object has the length of an inner hash-tree node"))
            return None
    if k == 0:
        return [ers.digest(alg, d) for d in data_objects]
    atsc = ers.encode_sequence([[a.dump() for a in c] for c in chains[:k]])
    return [ers.rehash_leaf(alg, d, atsc) for d in data_objects]


def _check_tree(check: ErCheck, where: str, alg: str, ats: ers.ArchiveTimeStamp, leaves: list[bytes],
                renewal: bool) -> bytes:
    """The imprint the ATS must carry (the root from its first leaf); problems for the others."""
    path = ers.ats_path(ats)
    if path is not None and any(leaf not in path[0] for leaf in leaves):
        check.problems.append(ErProblem(
            "er.data_mismatch", where,
            "the hash of the previous time-stamp is not in this renewal's reduced hash tree" if renewal else
            "the hash of the data object is not in the reduced hash tree "
            "(the data object differs from what was stamped)"))
    root = ers.root_from_path(alg, leaves[0], path)
    return root if root is not None else b""


async def verify_evidence_record(er_bytes: bytes, data_objects: bytes | Sequence[bytes], at: dt.datetime,
                                 tsa_trust: Iterable[x509.Certificate | ax509.Certificate], *,
                                 weak: Mapping[str, dt.datetime] | None = None) -> ErCheck:
    """Verify ``er_bytes`` over ``data_objects`` at ``at`` with TSA anchors ``tsa_trust`` (see the module)."""
    check = ErCheck(at=at)
    objects = [data_objects] if isinstance(data_objects, bytes | bytearray) else list(data_objects)
    anchors = [c if isinstance(c, ax509.Certificate) else ax509.Certificate.load(c.public_bytes(Encoding.DER))
               for c in tsa_trust]
    weak = dict(weak or {})
    try:
        chains = ers.load_record(er_bytes)
    except Exception as exc:  # noqa: BLE001 - any decoding failure is the one answer "unreadable"
        check.problems.append(ErProblem("er.unreadable", "record", f"not a readable RFC 4998 EvidenceRecord: {exc}"))
        return check
    if not objects:
        check.problems.append(ErProblem("er.data_mismatch", "record", "no data object given"))
        return check
    flat: list[tuple[int, int, ers.ArchiveTimeStamp, str, bytes]] = []  # (k, j, ats, alg, imprint)
    for k, chain in enumerate(chains):
        alg = ers.ats_alg(chain[0])
        if alg not in ers.HASHES:
            check.problems.append(ErProblem("er.algorithm", _where(k, 0), f"hash algorithm {alg} is not accepted"))
            return check
        for j, ats in enumerate(chain):
            where = _where(k, j)
            if ers.ats_alg(ats) != alg:
                check.problems.append(ErProblem("er.algorithm", where, "a chain mixes hash algorithms"))
            if j == 0:
                leaves = _expected_first(check, k, alg, objects, chains)
                if leaves is None:
                    return check
            else:
                leaves = [ers.renewal_leaf(alg, chain[j - 1]["time_stamp"].dump())]
            expected = _check_tree(check, where, alg, ats, leaves, renewal=j > 0)
            imprint = ers.tst_info(ats)["message_imprint"]
            if imprint["hash_algorithm"]["algorithm"].native != alg:
                check.problems.append(ErProblem("er.algorithm", where,
                                                "the token's imprint algorithm is not the chain's"))
            if bytes(imprint["hashed_message"].native) != expected:
                check.problems.append(ErProblem(
                    "er.imprint_mismatch", where,
                    "the time-stamp is not over this tree's root" if j == 0 or k == 0 else
                    "the time-stamp does not cover the previous one"))
            flat.append((k, j, ats, alg, bytes(imprint["hashed_message"].native)))
    previous: dt.datetime | None = None
    for n, (k, j, ats, alg, imprint) in enumerate(flat):
        gen = ers.tst_info(ats)["gen_time"].native
        if previous is not None and gen < previous:
            check.problems.append(ErProblem("er.order", _where(k, j), "time-stamps are not in ascending time"))
        previous = gen
        moment = ers.tst_info(flat[n + 1][2])["gen_time"].native if n + 1 < len(flat) else at
        revocation = await _check_token(check, _where(k, j), ats, imprint, moment, anchors)
        sig_alg = ats["time_stamp"]["content"]["signer_infos"][0]["digest_algorithm"]["algorithm"].native
        if sig_alg in weak and weak[sig_alg] <= moment:
            check.problems.append(ErProblem(
                "er.hash_weak", _where(k, j),
                f"the TSA signed with {sig_alg}, declared weak from {weak[sig_alg]:%Y-%m-%d}, and the token "
                f"was not renewed before then (it had to hold until {moment:%Y-%m-%d})"))
        signer = _signer_cert(ats["time_stamp"]["content"])
        check.relied_on.append(ReliedStamp(
            chain=k, index=j, alg=alg, gen_time=gen, checked_at=moment,
            tsa=signer.subject.human_friendly if signer is not None else "?",
            serial=int(ers.tst_info(ats)["serial_number"].native), revocation=revocation))
    for k, chain in enumerate(chains):
        alg = ers.ats_alg(chain[0])
        until = ers.tst_info(chains[k + 1][0])["gen_time"].native if k + 1 < len(chains) else at
        since = weak.get(alg)
        if since is not None and since <= until:
            check.problems.append(ErProblem(
                "er.hash_weak", _where(k, 0),
                f"{alg} was declared weak from {since:%Y-%m-%d}, and this chain was "
                + (f"only renewed with a new hash tree on {until:%Y-%m-%d}" if k + 1 < len(chains)
                   else f"never renewed with a new hash tree (verification at {until:%Y-%m-%d})")))
    check.proven_at = check.relied_on[0].gen_time if check.relied_on else None
    return check
