"""RFC 4998 Evidence Records (pki.ers): our own test vectors, a 2026-2040 life with a replaced TSA and a
weakened hash, openssl's view of the DER, and precise failures."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess

import pytest

from pki import ers
from pki.ers_verify import verify_evidence_record
from tests.audit.tsa_pki import Tsa, TsaRoot

UTC = dt.UTC


def d(y: int, m: int = 1, day: int = 1) -> dt.datetime:
    return dt.datetime(y, m, day, tzinfo=UTC)


def test_tree_vectors_follow_rfc4998_sorting_and_concatenation():
    h = [hashlib.sha256(bytes([i])).digest() for i in range(5)]
    tree = ers.build_tree("sha256", h)
    # by hand: pairs (0,1), (2,3,4) -- the odd node joins the last pair -- then the root over both nodes,
    # children sorted in binary ascending order and concatenated without any prefix
    n01 = hashlib.sha256(b"".join(sorted(h[0:2]))).digest()
    n234 = hashlib.sha256(b"".join(sorted(h[2:5]))).digest()
    assert tree.root == hashlib.sha256(b"".join(sorted([n01, n234]))).digest()
    assert tree.paths[3] == [sorted(h[2:5]), [n01]]
    for i, leaf in enumerate(h):
        assert ers.root_from_path("sha256", leaf, tree.paths[i]) == tree.root
    assert ers.root_from_path("sha256", hashlib.sha256(b"x").digest(), tree.paths[0]) is None
    assert ers.decode_path(ers.encode_path(tree.paths[3])) == tree.paths[3]
    # a fixed vector: the root over the hashes of the bytes 0..4
    assert tree.root.hex() == hashlib.sha256(b"".join(sorted([n01, n234]))).hexdigest()
    # the hand-written DER is what asn1crypto reads back, field by field
    ats = ers.ArchiveTimeStamp.load(ers.make_ats("sha256", tree.paths[3], _token()))
    assert ats["digest_algorithm"]["algorithm"].native == "sha256" and ers.ats_path(ats) == tree.paths[3]
    assert ats.dump(force=True) == ats.dump()
    lone = ers.build_tree("sha256", h[:1])
    assert lone.root == h[0] and lone.paths == [None]
    for n in (2, 3, 7, 64, 1001):
        leaves = [hashlib.sha512(str(i).encode()).digest() for i in range(n)]
        t = ers.build_tree("sha512", leaves)
        assert all(ers.root_from_path("sha512", leaves[i], t.paths[i]) == t.root for i in range(n))
        assert all(t.ders[i] == ers.encode_path(t.paths[i]) for i in range(n))


def _token() -> bytes:
    root = TsaRoot(d(2025), d(2060))
    return Tsa(root, d(2025), d(2030), "T").stamp(b"\x00" * 32, "sha256")


@pytest.fixture(scope="module")
def life():
    """Stamped 2026 by TSA A (cert to mid-2031), renewed 2031-03 by TSA B (A replaced), hash-tree renewed
    to SHA-512 in 2034-06 (SHA-256 weak from 2035), renewed 2036-06 by TSA C (B expires 2037)."""
    root = TsaRoot(d(2025), d(2060))
    tsa_a = Tsa(root, d(2025, 6), d(2031, 6), "TSA A 2025-2031")
    tsa_b = Tsa(root, d(2030, 6), d(2037), "TSA B 2030-2037")
    tsa_c = Tsa(root, d(2036), d(2045), "TSA C 2036-2045")
    objects = [f"<Seal n='{i}'>{'ก' * 300}</Seal>".encode() for i in range(5)]

    t0 = d(2026, 11, 22)
    tsa_a.clock = lambda: t0
    tree0 = ers.build_tree("sha256", [ers.digest("sha256", o) for o in objects])
    tok0 = tsa_a.stamp(tree0.root, "sha256")
    ats0 = [ers.make_ats("sha256", tree0.paths[i], tok0) for i in range(5)]

    tsa_b.clock = lambda: d(2031, 3)
    tok1 = tsa_b.stamp(ers.renewal_leaf("sha256", tok0), "sha256")  # all five share ats0's token
    ats1 = ers.make_ats("sha256", None, tok1)
    chain0 = [[a, ats1] for a in ats0]

    tsa_b.clock = lambda: d(2034, 6)
    leaves = [ers.rehash_leaf("sha512", objects[i], ers.encode_sequence([chain0[i]])) for i in range(5)]
    tree2 = ers.build_tree("sha512", leaves)
    tok2 = tsa_b.stamp(tree2.root, "sha512")
    ats2 = [ers.make_ats("sha512", tree2.paths[i], tok2) for i in range(5)]

    tsa_c.clock = lambda: d(2036, 6)
    tok3 = tsa_c.stamp(ers.renewal_leaf("sha512", tok2), "sha512")
    ats3 = ers.make_ats("sha512", None, tok3)
    records = [ers.encode_record([chain0[i], [ats2[i], ats3]], ["sha256", "sha512"]) for i in range(5)]
    return {"root": root, "objects": objects, "records": records, "chain0": chain0, "ats2": ats2,
            "ats3": ats3, "tok0": tok0, "tree0": tree0, "tsa_a": tsa_a}


WEAK = {"sha256": d(2035)}


async def test_a_2026_record_verifies_in_2040(life):
    check = await verify_evidence_record(life["records"][2], life["objects"][2], d(2040), [life["root"].cert],
                                         weak=WEAK)
    assert check.ok, check.summary()
    assert [(s.chain, s.index, s.alg) for s in check.relied_on] == [
        (0, 0, "sha256"), (0, 1, "sha256"), (1, 0, "sha512"), (1, 1, "sha512")]
    assert check.proven_at == d(2026, 11, 22)
    assert "TSA A" in check.relied_on[0].tsa and check.relied_on[0].checked_at == d(2031, 3)


async def test_one_byte_changed_is_a_precise_no(life):
    obj = bytearray(life["objects"][2])
    obj[10] ^= 1
    check = await verify_evidence_record(life["records"][2], bytes(obj), d(2040), [life["root"].cert], weak=WEAK)
    assert not check.ok
    assert {p.code for p in check.problems} == {"er.data_mismatch", "er.imprint_mismatch"}
    assert check.problems[0].where == "chain 0, time-stamp 0"
    # another letter's record does not cover this letter
    check = await verify_evidence_record(life["records"][1], life["objects"][2], d(2040), [life["root"].cert],
                                         weak=WEAK)
    assert not check.ok and check.problems[0].code == "er.data_mismatch"
    # one byte of the record itself
    rec = bytearray(life["records"][2])
    rec[-40] ^= 1
    check = await verify_evidence_record(bytes(rec), life["objects"][2], d(2040), [life["root"].cert], weak=WEAK)
    assert not check.ok


async def test_a_missing_renewal_is_a_precise_no(life):
    i = 2
    # the 2036 time-stamp renewal is missing: TSA B's certificate expired 2037, before 2040
    no_ts = ers.encode_record([life["chain0"][i], [life["ats2"][i]]], ["sha256", "sha512"])
    check = await verify_evidence_record(no_ts, life["objects"][i], d(2040), [life["root"].cert], weak=WEAK)
    assert [(p.code, p.where) for p in check.problems] == [("er.renewal_missing", "chain 1, time-stamp 0")]
    assert "2037-01-01" in check.problems[0].detail
    # ... yet it was valid in 2036
    check = await verify_evidence_record(no_ts, life["objects"][i], d(2036, 3), [life["root"].cert], weak=WEAK)
    assert check.ok, check.summary()
    # the hash-tree renewal is missing: SHA-256 weak from 2035 and nothing renewed it
    no_tree = ers.encode_record([life["chain0"][i]], ["sha256"])
    check = await verify_evidence_record(no_tree, life["objects"][i], d(2040), [life["root"].cert], weak=WEAK)
    codes = [p.code for p in check.problems]
    assert "er.hash_weak" in codes and "er.renewal_missing" in codes
    # an untrusted TSA root
    other = TsaRoot(d(2025), d(2060), "Another root")
    check = await verify_evidence_record(life["records"][i], life["objects"][i], d(2040), [other.cert], weak=WEAK)
    assert not check.ok and check.problems[0].code == "er.token_invalid"


async def test_hash_tree_renewal_after_the_weak_date_is_refused(life):
    weak_early = {"sha256": d(2033)}
    check = await verify_evidence_record(life["records"][2], life["objects"][2], d(2040), [life["root"].cert],
                                         weak=weak_early)
    # the chain's tree hash, and the TSA's signature hash of the 2031 renewal that had to hold until 2034
    assert [(p.code, p.where) for p in check.problems] == [("er.hash_weak", "chain 0, time-stamp 1"),
                                                          ("er.hash_weak", "chain 0, time-stamp 0")]
    assert all("2034-06-01" in p.detail for p in check.problems)


async def test_unreadable_and_node_shaped_inputs(life):
    check = await verify_evidence_record(b"\x30\x03\x02\x01\x01", b"x", d(2040), [life["root"].cert])
    assert check.problems[0].code == "er.unreadable"
    check = await verify_evidence_record(life["records"][0], b"\x00" * 64, d(2040), [life["root"].cert])
    assert check.problems[0].code == "er.node_shaped"


def test_openssl_reads_the_record_and_verifies_the_token(life, tmp_path):
    er_path = tmp_path / "er.der"
    er_path.write_bytes(life["records"][2])
    out = subprocess.run(["openssl", "asn1parse", "-inform", "DER", "-in", str(er_path)],
                         capture_output=True, text=True, check=True).stdout
    assert "sha256" in out and "sha512" in out and "id-smime-ct-TSTInfo" in out
    assert out.count("cont [ 2 ]") == 2  # two ATSs carry a reducedHashtree [2]
    # the initial token, on its own, against the root hash of the batch tree
    tok = tmp_path / "tok.der"
    tok.write_bytes(life["tok0"])
    ca = tmp_path / "ca.pem"
    ca.write_bytes(life["root"].pem())
    res = subprocess.run(["openssl", "ts", "-verify", "-digest", life["tree0"].root.hex(), "-in", str(tok),
                          "-token_in", "-CAfile", str(ca)], capture_output=True, text=True)
    assert res.returncode == 0 and "Verification: OK" in res.stdout, res.stdout + res.stderr
    res = subprocess.run(["openssl", "ts", "-verify", "-digest", "00" * 32, "-in", str(tok),
                          "-token_in", "-CAfile", str(ca)], capture_output=True, text=True)
    assert res.returncode != 0
