"""Gateway processes starting side by side on one data directory share one development PKI.

Each `gateway serve` (and each worker of ``--workers``) creates the development
PKI on first start if it is missing. When several start at once, exactly one
must create it and the others load that one: two roots half-written over each
other leave a PKI whose keys and certificates do not match.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from pki.devca import init_dev_pki

AGENCIES = {"0100000000": "สำนักนายกรัฐมนตรี", "1550100000": "เชียงใหม่"}


def _start(directory: str, barrier=None) -> bytes:
    """What one starting process ends up trusting: its loaded root certificate."""
    if barrier is not None:
        barrier.wait(30)  # all start together, as the workers of one supervisor do
    dev = init_dev_pki(Path(directory), AGENCIES)
    return dev.root_cert.public_bytes(serialization.Encoding.PEM)


def test_processes_starting_at_once_create_one_pki_and_all_load_it(tmp_path):
    directory = tmp_path / "pki"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(4, mp_context=ctx) as pool:
        barrier = manager.Barrier(4)
        roots = list(pool.map(_start, [str(directory)] * 4, [barrier] * 4))
    assert len(set(roots)) == 1, "every process loaded the same root"
    assert (directory / "ca/root.pem").read_bytes() == roots[0]
    # and what is on disk is one consistent PKI: loading it again gives the same root
    assert _start(str(directory)) == roots[0]
