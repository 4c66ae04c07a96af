"""RFC 4998 Evidence Records: the ASN.1 types, hash trees and reduced hash trees, assembly and renewal inputs.

No library implements RFC 4998, so this module writes the format itself, to the RFC (Appendix B module,
``DEFINITIONS IMPLICIT TAGS``)::

    EvidenceRecord ::= SEQUENCE {
        version                   INTEGER { v1(1) },
        digestAlgorithms          SEQUENCE OF AlgorithmIdentifier,
        cryptoInfos               [0] CryptoInfos OPTIONAL,
        encryptionInfo            [1] EncryptionInfo OPTIONAL,
        archiveTimeStampSequence  ArchiveTimeStampSequence }
    ArchiveTimeStampSequence ::= SEQUENCE OF ArchiveTimeStampChain
    ArchiveTimeStampChain    ::= SEQUENCE OF ArchiveTimeStamp
    ArchiveTimeStamp ::= SEQUENCE {
        digestAlgorithm [0] AlgorithmIdentifier OPTIONAL,
        attributes      [1] Attributes OPTIONAL,
        reducedHashtree [2] SEQUENCE OF PartialHashtree OPTIONAL,
        timeStamp       ContentInfo }
    PartialHashtree ::= SEQUENCE OF OCTET STRING

Hash trees (RFC 4998 4.2, 4.3)
    A leaf is ``H(data object)``: the hash of the exact stored bytes of a seal or a receipt. An inner node is
    ``H(c1 || c2 [|| c3])``: the hash values of its children *sorted in binary ascending order* and
    concatenated, with no prefix (the RFC fixes this; a verifier of another make recomputes it the same way).
    Nodes are paired level by level; an odd node out joins the last pair (a node of three children), so
    every inner node hashes exactly 2 or 3 hash values (2L or 3L bytes, L the hash length).

    Domain separation: the RFC allows no leaf/node prefix, so leaves and nodes are told apart by what can be
    a data object. A node's preimage is always 2L or 3L bytes of hash values; the verifier refuses a data
    object of exactly that length (:func:`node_shaped`), so no inner node can be passed off as a data
    object. Every object the gateway stamps is an XML document far longer than that.

    The reduced hash tree of a leaf (4.3): the first list holds the leaf's own hash and its siblings; each
    further list holds the siblings of the node computed from the list below (the verifier adds that node
    to the list, sorts, concatenates and hashes), up to the root. The root is the time-stamp's
    ``messageImprint.hashedMessage`` and the tree's hash is its ``hashAlgorithm``. With a single leaf the
    ``reducedHashtree`` is left out and the imprint is the leaf itself.

Renewal (RFC 4998 5.2)
    *Time-stamp renewal*: a new ArchiveTimeStamp, appended to the same chain, over
    ``H(DER of the previous ArchiveTimeStamp's timeStamp field)`` with the chain's hash algorithm. Many
    previous time-stamps are renewed with one token: their hashes are the leaves of a new tree and each
    new ArchiveTimeStamp carries its reduced hash tree.
    *Hash-tree renewal*: a new chain with a new algorithm H'. For each data object ``d`` with its
    ArchiveTimeStampSequence so far ``atsc`` (the DER of the SEQUENCE OF chains, tag and length included),
    the leaf is ``H'(H'(d) || H'(atsc))`` (5.2 step 5, in that order), and a tree over all leaves gets one
    token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import algos, cms, core, tsp, x509
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp

#: Hash algorithms the records may use (asn1crypto names).
HASHES = ("sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512")


class PartialHashtree(core.SequenceOf):
    _child_spec = core.OctetString


class ReducedHashtree(core.SequenceOf):
    _child_spec = PartialHashtree


class ArchiveTimeStamp(core.Sequence):
    _fields = [
        ("digest_algorithm", algos.DigestAlgorithm, {"implicit": 0, "optional": True}),
        ("attributes", cms.CMSAttributes, {"implicit": 1, "optional": True}),
        ("reduced_hashtree", ReducedHashtree, {"implicit": 2, "optional": True}),
        ("time_stamp", cms.ContentInfo),
    ]


class ArchiveTimeStampChain(core.SequenceOf):
    _child_spec = ArchiveTimeStamp


class ArchiveTimeStampSequence(core.SequenceOf):
    _child_spec = ArchiveTimeStampChain


class DigestAlgorithms(core.SequenceOf):
    _child_spec = algos.DigestAlgorithm


class EncryptionInfo(core.Sequence):
    _fields = [("encryption_info_type", core.ObjectIdentifier), ("encryption_info_value", core.Any)]


class _CertificateLists(core.SequenceOf):
    _child_spec = asn1_crl.CertificateList


class _BasicOCSPResponses(core.SequenceOf):
    _child_spec = asn1_ocsp.BasicOCSPResponse


class RevocationValues(core.Sequence):
    """CAdES ``RevocationValues`` (RFC 5126 §6.3.4), the ``revocation-values`` unsigned attribute in which a
    time-stamp token keeps its TSA certificate's revocation data (:mod:`pki.ltv_tsa`)."""

    _fields = [
        ("crl_vals", _CertificateLists, {"explicit": 0, "optional": True}),
        ("ocsp_vals", _BasicOCSPResponses, {"explicit": 1, "optional": True}),
        ("other_rev_vals", core.Any, {"explicit": 2, "optional": True}),
    ]


class _SetOfRevocationValues(core.SetOf):
    _child_spec = RevocationValues


#: id-aa-ets-revocationValues, taught to asn1crypto (as pyHanko teaches it Adobe's attributes) so that a
#: token keeping it parses whole wherever it is read.
REVOCATION_VALUES_OID = "1.2.840.113549.1.9.16.2.24"
cms.CMSAttributeType._map[REVOCATION_VALUES_OID] = "revocation_values"
if cms.CMSAttributeType._reverse_map is not None:
    cms.CMSAttributeType._reverse_map["revocation_values"] = REVOCATION_VALUES_OID
cms.CMSAttribute._oid_specs["revocation_values"] = _SetOfRevocationValues


def kept_revocation(signed_data: cms.SignedData) -> tuple[list[asn1_ocsp.OCSPResponse], list[asn1_crl.CertificateList]]:
    """The OCSP responses and CRLs a token keeps for its TSA in ``revocation-values`` (:mod:`pki.ltv_tsa`)."""
    ocsps: list[asn1_ocsp.OCSPResponse] = []
    crls: list[asn1_crl.CertificateList] = []
    for attr in signed_data["signer_infos"][0]["unsigned_attrs"] or []:
        if attr["type"].dotted != REVOCATION_VALUES_OID:
            continue
        for value in attr["values"]:
            crls += list(value["crl_vals"] or [])
            ocsps += [asn1_ocsp.OCSPResponse({"response_status": "successful", "response_bytes": {
                "response_type": "basic_ocsp_response", "response": basic}}) for basic in value["ocsp_vals"] or []]
    return ocsps, crls


class EvidenceRecord(core.Sequence):
    _fields = [
        ("version", core.Integer),
        ("digest_algorithms", DigestAlgorithms),
        ("crypto_infos", cms.CMSAttributes, {"implicit": 0, "optional": True}),
        ("encryption_info", EncryptionInfo, {"implicit": 1, "optional": True}),
        ("archive_time_stamp_sequence", ArchiveTimeStampSequence),
    ]


Path = list[list[bytes]]
"""A reduced hash tree as lists of hash values, leaf level first."""


def digest(alg: str, data: bytes) -> bytes:
    if alg not in HASHES:
        raise ValueError(f"hash algorithm {alg!r} is not one of {', '.join(HASHES)}")
    return hashlib.new(alg, data).digest()


def node(alg: str, children: Sequence[bytes]) -> bytes:
    """An inner node: the children's hash values sorted in binary ascending order, concatenated, hashed."""
    return hashlib.new(alg, b"".join(sorted(children))).digest()


def node_shaped(alg: str, data: bytes) -> bool:
    """True when ``data`` could be an inner node's preimage of this module's trees (2 or 3 hash values)."""
    size = hashlib.new(alg).digest_size
    return len(data) in (2 * size, 3 * size)


@dataclass(frozen=True)
class Tree:
    """A hash tree over leaves: the root, and each leaf's reduced hash tree (``None`` for a lone leaf) as
    lists and as DER (``SEQUENCE OF PartialHashtree``, what the database keeps)."""

    alg: str
    root: bytes
    paths: list[Path | None]
    ders: list[bytes | None]


def build_tree(alg: str, leaves: Sequence[bytes]) -> Tree:
    """The RFC 4998 hash tree over ``leaves`` (hash values), with each leaf's reduced hash tree."""
    if not leaves:
        raise ValueError("a hash tree needs at least one leaf")
    if len(leaves) == 1:
        return Tree(alg, bytes(leaves[0]), [None], [None])
    paths: list[Path] = [[] for _ in leaves]
    chunks: list[list[bytes]] = [[] for _ in leaves]  # each list's DER, encoded once per node and shared
    members: list[list[int]] = [[i] for i in range(len(leaves))]  # leaves under each node of the level
    level = [bytes(h) for h in leaves]
    first = True
    while len(level) > 1:
        groups = [list(range(i, i + 2)) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            groups[-1].append(len(level) - 1)
        nxt: list[bytes] = []
        nxt_members: list[list[int]] = []
        for g in groups:
            values = [level[j] for j in g]
            for j in g:
                # the first list holds the leaf and its siblings; later lists only the siblings
                listed = sorted(values) if first else sorted(level[k] for k in g if k != j)
                der = _tlv(0x30, b"".join(_tlv(0x04, h) for h in listed))
                for leaf in members[j]:
                    paths[leaf].append(listed)
                    chunks[leaf].append(der)
            nxt.append(node(alg, values))
            nxt_members.append([leaf for j in g for leaf in members[j]])
        level, members, first = nxt, nxt_members, False
    return Tree(alg, level[0], list(paths), [_tlv(0x30, b"".join(c)) for c in chunks])


def root_from_path(alg: str, leaf: bytes, path: Path | None) -> bytes | None:
    """RFC 4998 4.3 steps 2-3: the root reached from ``leaf`` by ``path``; ``None`` when the leaf is not
    in the first list."""
    if not path:
        return leaf
    if leaf not in path[0]:
        return None
    h = node(alg, path[0])
    for listed in path[1:]:
        h = node(alg, [*listed, h])
    return h


def _tlv(tag: int, content: bytes) -> bytes:
    """One DER element (the records are written by hand: fast, and the bytes are exactly these)."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


#: DER of each hash's OBJECT IDENTIFIER (NIST hash algorithms arc 2.16.840.1.101.3.4.2).
_OID = {name: _tlv(0x06, bytes.fromhex("6086480165030402") + bytes((n,)))
        for name, n in (("sha256", 1), ("sha384", 2), ("sha512", 3), ("sha3_256", 8), ("sha3_384", 9),
                        ("sha3_512", 10))}


def encode_path(path: Path | None) -> bytes | None:
    """The DER of a reduced hash tree, ``SEQUENCE OF PartialHashtree`` (what the database keeps per item)."""
    if path is None:
        return None
    return _tlv(0x30, b"".join(_tlv(0x30, b"".join(_tlv(0x04, h) for h in lst)) for lst in path))


def decode_path(der: bytes | None) -> Path | None:
    if der is None:
        return None
    return [[bytes(h.native) for h in lst] for lst in ReducedHashtree.load(bytes(der))]


def make_ats(alg: str, path: Path | bytes | None, token: bytes) -> bytes:
    """The DER of one ArchiveTimeStamp: ``[0]`` the algorithm, ``[2]`` the reduced hash tree (given as lists
    or as its stored DER; left out for a lone leaf) and the RFC 3161 token (a ContentInfo)."""
    path_der = encode_path(path) if isinstance(path, list) else path
    body = _tlv(0xA0, _OID[alg])  # [0] IMPLICIT AlgorithmIdentifier (no parameters)
    if path_der is not None:
        body += b"\xa2" + bytes(path_der)[1:]  # [2] IMPLICIT: the SEQUENCE's tag replaced, content as is
    return _tlv(0x30, body + bytes(token))


def encode_sequence(chains: Sequence[Sequence[bytes]]) -> bytes:
    """``atsc``: the DER of the ArchiveTimeStampSequence of these chains of ATS DERs (the hash-tree renewal
    input: the whole SEQUENCE, tag and length included)."""
    return _tlv(0x30, b"".join(_tlv(0x30, b"".join(c)) for c in chains))


def encode_record(chains: Sequence[Sequence[bytes]], algs: Sequence[str]) -> bytes:
    """The DER of an EvidenceRecord holding these chains of ATS DERs (oldest first); ``algs``: each chain's."""
    distinct = list(dict.fromkeys(algs))
    return _tlv(0x30, b"\x02\x01\x01" + _tlv(0x30, b"".join(_tlv(0x30, _OID[a]) for a in distinct))
                + encode_sequence(chains))


def tst_info(ats: ArchiveTimeStamp) -> tsp.TSTInfo:
    content = ats["time_stamp"]["content"]
    return content["encap_content_info"]["content"].parsed


def ats_alg(ats: ArchiveTimeStamp) -> str:
    """4.1: the ATS's digestAlgorithm, else the time-stamp's message imprint algorithm."""
    if ats["digest_algorithm"].native is not None:
        return str(ats["digest_algorithm"]["algorithm"].native)
    return str(tst_info(ats)["message_imprint"]["hash_algorithm"]["algorithm"].native)


def ats_path(ats: ArchiveTimeStamp) -> Path | None:
    rht = ats["reduced_hashtree"]
    if rht.native is None:
        return None
    return [[bytes(h.native) for h in lst] for lst in rht]


def renewal_leaf(alg: str, previous_token: bytes) -> bytes:
    """Time-stamp renewal: the hash of the previous ATS's timeStamp field (its DER, tag included)."""
    return digest(alg, previous_token)


def rehash_leaf(alg: str, data: bytes, atsc: bytes) -> bytes:
    """Hash-tree renewal: ``H(H(d) || H(atsc))``."""
    return digest(alg, digest(alg, data) + digest(alg, atsc))


def load_record(der: bytes) -> list[list[ArchiveTimeStamp]]:
    """The chains of an EvidenceRecord (raises ``ValueError`` on anything but one whole DER record)."""
    er = EvidenceRecord.load(der, strict=True)
    if er["version"].native != 1:
        raise ValueError(f"EvidenceRecord version {er['version'].native} (only v1 is defined)")
    chains = [list(c) for c in er["archive_time_stamp_sequence"]]
    if not chains or any(not c for c in chains):
        raise ValueError("the EvidenceRecord holds an empty ArchiveTimeStampSequence or chain")
    for chain in chains:  # touch every field now, so a malformed record fails here and not half-way
        for ats in chain:
            ats_alg(ats), ats_path(ats), ats["time_stamp"]["content"]["signer_infos"].native
    return chains


def token_signer(sd: cms.SignedData) -> x509.Certificate | None:
    """The certificate among ``sd``'s that its (first) signer names, by issuer and serial or key id."""
    sid = sd["signer_infos"][0]["sid"]
    for c in sd["certificates"] or []:
        cert = c.chosen
        if (sid.name == "issuer_and_serial_number" and cert.issuer == sid.chosen["issuer"]
                and cert.serial_number == sid.chosen["serial_number"].native) or (
                sid.name == "subject_key_identifier" and cert.key_identifier == sid.chosen.native):
            return cert
    return None


def token_facts(token: bytes) -> tuple[dt.datetime, dt.datetime, str, bytes]:
    """(genTime, the TSA certificate's notAfter, imprint algorithm, imprint) of an RFC 3161 token.
    Raises ``ValueError`` when the token does not carry its TSA certificate."""
    sd = cms.ContentInfo.load(token)["content"]
    info = sd["encap_content_info"]["content"].parsed
    cert = token_signer(sd)
    if cert is None:
        raise ValueError("the time-stamp token does not carry its TSA certificate (ask the TSA with certReq)")
    return (info["gen_time"].native, cert["tbs_certificate"]["validity"]["not_after"].native,
            str(info["message_imprint"]["hash_algorithm"]["algorithm"].native),
            bytes(info["message_imprint"]["hashed_message"].native))


def parse_weak_hashes(text: str) -> dict[str, dt.datetime]:
    """``GATEWAY_WEAK_HASHES``: ``sha256@2035-01-01,sha1`` -> {name: weak from (UTC midnight)}; a name with no
    date is weak from always. Raises ``ValueError`` naming the part it cannot read."""
    out: dict[str, dt.datetime] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, day = part.partition("@")
        name = name.strip().lower().replace("-", "_")
        if name not in (*HASHES, "sha1", "md5", "sha224"):
            raise ValueError(f"unknown hash algorithm {name!r} in {part!r}")
        try:
            since = (dt.datetime.fromisoformat(day.strip()).replace(tzinfo=dt.UTC) if day.strip()
                     else dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
        except ValueError:
            raise ValueError(f"{part!r}: the date must be YYYY-MM-DD") from None
        out[name] = since
    return out


def strong_hash(preferred: str, weak: dict[str, dt.datetime]) -> str:
    """The hash for new trees: ``preferred`` unless it is declared weak, else the first of SHA-512, SHA3-512."""
    for alg in (preferred, "sha512", "sha3_512"):
        if alg in HASHES and alg not in weak:
            return alg
    raise ValueError("every hash algorithm the records may use is declared weak")
