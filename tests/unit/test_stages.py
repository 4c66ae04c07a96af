"""bench/stages.py's two ways through the accept path do the same work on the same letters.

The bench compares the CPU of each letter through ``Intake.check``, the receipt and the seal in turn
(letter-major) with ``Intake.check``'s body split into stages run over a micro-batch (stage-major).
Its figure means something only if both ways produce the same things: the same checked records,
and the seal and receipt signatures over the same bytes. ECDSA signatures differ from one signing to
the next, so the gateway's real seal signer is watched (every input it signs is recorded) and the
signature values are left out of the byte comparison.
"""

import asyncio
import datetime as dt
import re
from dataclasses import replace

from bench import stages
from bench.gap import accept_path
from gateway.core.signing import VERIFIED_CONTENTS, VERIFIED_TREES, PkiSealer

_VALUE = re.compile(rb"(SignatureValue[^>]*>)[^<]*(<)")


class Watched:
    """The real signer, with every input it is asked to sign recorded."""

    def __init__(self, signer):
        self._signer = signer
        self.signed: list[bytes] = []

    def __getattr__(self, name):
        return getattr(self._signer, name)

    def sign(self, data: bytes) -> bytes:
        self.signed.append(bytes(data))
        return self._signer.sign(data)


def _unsigned(data: bytes) -> bytes:
    return _VALUE.sub(rb"\1\2", data)


def test_both_ways_check_seal_and_sign_the_same_bytes():
    # handoffs an earlier test of this process left behind (a request refused after its signature was
    # checked leaves one) are not this test's: it judges only what its own letters leave
    VERIFIED_TREES.clear()
    VERIFIED_CONTENTS.clear()
    path = accept_path(3)
    watched = Watched(path.trust.seal_signer)
    server = stages.Server(replace(path, sealer=PkiSealer(watched)), now=dt.datetime(2026, 12, 7, tzinfo=dt.UTC))

    by_letter = asyncio.run(stages.letter_major(server, path.letters))
    signed_by_letter, watched.signed = watched.signed, []
    by_stage = asyncio.run(stages.stage_major(server, path.letters))

    assert len(by_letter) == len(by_stage) == 3
    # the seal and receipt of each letter, in the order the server signs them (receipt, then seal) for the
    # letter-major way, all receipts then all seals for the stage-major way: the same inputs, reordered
    receipts, seals = signed_by_letter[0::2], signed_by_letter[1::2]
    assert watched.signed == receipts + seals
    for (checked_a, receipt_a, sealed_a), (checked_b, receipt_b, sealed_b), raw in zip(
            by_letter, by_stage, path.letters, strict=True):
        assert checked_a == checked_b and checked_a.raw is raw
        assert checked_a.facts["signed"] and checked_a.facts["signature_intact"]
        assert _unsigned(receipt_a) == _unsigned(receipt_b)
        assert _unsigned(sealed_a) == _unsigned(sealed_b)
        assert b'Id="GatewaySeal"' in sealed_a and sealed_a != raw
    assert len(VERIFIED_TREES) == 0 and len(VERIFIED_CONTENTS) == 0  # every tree sealed, every content read


def test_a_quick_measurement_runs_every_way_with_other_work_between():
    ms = asyncio.run(stages.measure(1, "code", pool=stages.BLOCK))
    assert set(ms) == {"letter", *(f"stage{k}" for k in stages.KS)}
    assert all(len(v) == 1 and v[0] > 0 for v in ms.values())
