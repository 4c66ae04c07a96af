"""Tamper-evident audit log: hash chain, signed checkpoints, archives, verifier.

What is recorded
    Every state change appends a row to ``audit_events`` in the same
    transaction as the change (``gateway.storage.audit.append`` or the insert
    CTE of a message). The request path only INSERTs; it never reads or locks a
    chain head. Sealing happens afterwards, in the background.

The chain
    Each sealed event gets a row in ``audit_chain``::

        leaf = SHA-256(canonical bytes of the event)                 (see chain.canonical)
        hash = SHA-256(hash of the previous chained event || leaf)   (32 + 32 bytes)

    starting from 32 zero bytes (``prev_seq`` 0). The row also records
    ``prev_seq``, the sequence number of the event before it in the chain, so
    a missing event is named even when nothing else is known. Hashing the leaf
    rather than the raw bytes lets a proof carry an unrelated event as its
    32-byte leaf only (evidence bundles do not disclose other letters).

Concurrent writers, commit order, rolled-back numbers
    ``seq`` comes from a sequence, so numbers are handed out in one order and
    committed in another, and a rolled-back transaction leaves a gap forever.
    The sealer must never chain seq 6 while the transaction holding seq 5 may
    still commit. The first idea, "chain visible events up to the first one
    whose xid is >= the snapshot's xmin", has a hole: the writer of seq 6 may
    have an *older* xid than the still-running holder of seq 5 (it got its xid
    earlier, its number later), so seq 6 passes the test while seq 5 is
    invisible and may commit after seq 6 is sealed. What is needed is a
    *fence*, a grace period:

    1. ``audit_next_seq()`` (the column default) assigns the transaction id
       before calling ``nextval``: whoever holds a sequence number has an xid.
    2. The sealer reads the sequence's last value ``L``, then (a later
       statement) the set ``R`` of xids of the transactions running now that
       hold a number, from ``pg_locks``: ``nextval`` locks the sequence (in
       this database) before it hands a number out and the lock is kept until
       the transaction ends, and every transaction with an xid holds an
       exclusive lock on it. A transaction holding a number <= L took that
       lock and its xid before L was read, so it has either ended already or
       is in ``R``. Transactions of other databases on the same server, and
       of this one that hold no number, are not waited for: any number they
       take later is above L. (L, R) is the fence, kept in
       ``audit_chain_head``. A snapshot's xmin/xmax cannot replace R: ``xmax``
       is "latest completed xid + 1", so a running transaction with a newer
       xid is neither in ``xip`` nor counted in ``xmin`` (a test reproduces
       exactly that case).
    3. In a later round, once no xid of R still runs, every event with
       seq <= L is final: committed or rolled back for good. The sealer chains
       the ones it can see, in seq order; numbers it cannot see are gaps
       (rolled back) and are skipped; ``prev_seq`` records the link over them.
       If R is empty the fence is ready at once.

    The extra ``xid`` column (``pg_current_xact_id()``) is kept on every event
    for diagnosis (which transaction wrote it). One sealer runs at a time in
    the whole cluster: rounds run in the process holding the session lock
    ``LEADER_LOCK`` (:mod:`gateway.audit.sealer`; when it exits or dies another
    process takes it within an interval, and a standby still runs a round every
    ten seconds), and each round still takes ``pg_try_advisory_xact_lock``, so
    two processes that both believe they lead never seal at once. Only the sealer writes ``audit_chain_head``. Sealing lag is
    about two sealer intervals (default 0.25 s) plus the longest transaction
    that holds an audit number; such a transaction left open (e.g. an
    idle-in-transaction session) holds sealing back and the sealer logs it,
    it never guesses.

Checkpoints
    Every N events or T seconds (settings ``audit_checkpoint_events``,
    ``audit_checkpoint_seconds``) the sealer signs (seq, hash, count, time)
    with the gateway's key through a :class:`gateway.core.sealing.CheckpointSigner` (``sign(data)
    -> signature`` and ``certificate``; ``pki.keys.FileSigner`` fits). The
    signed bytes are canonical JSON (see :func:`chain.checkpoint_payload`).
    ``count`` is the number of events chained since the genesis, so dropping
    events and re-hashing the rest is still caught. An RFC 3161 time-stamp
    over the signature can be attached (``tsa_token``); see ``tsa.py``.

Archives and verification
    ``export.py`` writes a closed range (ending at a checkpoint) to a JSON Lines
    file whose bytes depend only on the range; each file links to the previous
    file's last hash. ``verify.py`` checks files, bundles or the live database
    with only the gateway certificate and names each edited, deleted,
    reordered or inserted event by its seq.
"""

from gateway.audit.chain import GENESIS, canonical, chain_hash, leaf_hash  # noqa: F401
