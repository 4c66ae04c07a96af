"""bench/gap.py drives the server's accept path up to storage, and on it every handoff is taken.

The driver is how the server's crypto-and-parse stages are compared with bench/crypto.py (issue 17):
a letter accepted as ``gateway serve`` accepts it is parsed once (the sealer takes the verified tree,
:data:`gateway.core.signing.VERIFIED_TREES`) and its attachments decoded once (intake takes the
verifier's contents, :data:`gateway.core.signing.VERIFIED_CONTENTS`). The driver raises when a handoff
is left behind, so a change that makes the server parse or decode a letter twice fails here.
"""

import asyncio

from lxml import etree

from bench import gap
from gateway.core.signing import VERIFIED_CONTENTS, VERIFIED_TREES


def test_the_server_path_parses_and_decodes_each_letter_once():
    ms = asyncio.run(gap.run("server", 3, batched=False, repeat=1))
    assert len(ms) == 1 and ms[0] > 0
    assert len(VERIFIED_TREES) == 0 and len(VERIFIED_CONTENTS) == 0


def test_the_crypto_path_runs_on_the_same_letters():
    assert len(asyncio.run(gap.run("crypto", 3, batched=True, repeat=1))) == 1


def test_handoffs_left_by_earlier_work_in_the_process_do_not_count():
    """Earlier tests in the same process may leave handoffs behind (a request that failed between the
    verifier and the sealer); the driver judges only the letters it runs."""
    stale = etree.fromstring(b"<stale/>")
    VERIFIED_TREES.put(b"<stale/>", stale)
    VERIFIED_CONTENTS.put(stale, {"a": b"x"})
    ms = asyncio.run(gap.run("server", 3, batched=False, repeat=1))
    assert len(ms) == 1
    assert len(VERIFIED_TREES) == 0 and len(VERIFIED_CONTENTS) == 0
