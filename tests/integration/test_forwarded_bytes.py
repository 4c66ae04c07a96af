"""Migration 0025: forwarded_bytes() as one inlined SQL expression for one or two edits, the same bytes.

Up to 0025 every reader rebuilt a message's forwarded bytes with a PL/pgSQL loop over its edits. The loop
is kept here as it was (pg_temp.forwarded_bytes_0019, its body copied from migration 0019) and held
together with the function as it stands, and with Python's own rule (gateway.storage.forwarded.apply),
over the edits the gateway makes (a sealed letter, a signed delivery receipt) and over generated edits of
every count, including the edges (an edit at the start or the end, nothing cut, nothing inserted).
"""

import random

import pytest

from gateway.storage import forwarded

LOOP_0019 = """
CREATE FUNCTION pg_temp.forwarded_bytes_0019(received bytea, forwarded bytea, edits integer[], inserts bytea)
RETURNS bytea LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    out  bytea := '';
    pos  integer := 0;  -- bytes of received consumed
    used integer := 0;  -- bytes of inserts consumed
BEGIN
    IF forwarded IS NOT NULL THEN
        RETURN forwarded;
    END IF;
    FOR k IN 1 .. coalesce(array_length(edits, 1), 0) / 3 LOOP
        out := out || substring(received FROM pos + 1 FOR edits[3 * k - 2] - pos)
                   || substring(inserts FROM used + 1 FOR edits[3 * k]);
        pos := edits[3 * k - 2] + edits[3 * k - 1];
        used := used + edits[3 * k];
    END LOOP;
    RETURN out || substring(received FROM pos + 1);
END $$"""

RECEIVED = b"<E><Header><S>0100000000</S></Header><Body>" + b"b" * 4000 + b"</Body><Signatures><A/></Signatures></E>"
SEALED = RECEIVED.replace(b"<Header>", b'<Header Id="Header">').replace(
    b"<A/>", b'<A/><ds:Signature Id="GatewaySeal">' + b"s" * 1500 + b"</ds:Signature>")
UNSIGNED_RECEIPT = b"<Receipt><For>abc</For><At>2026-12-07</At></Receipt>"
SIGNED_RECEIPT = UNSIGNED_RECEIPT.replace(b"</Receipt>", b"<ds:Signature>" + b"r" * 2400 + b"</ds:Signature></Receipt>")


def generated(rng: random.Random, n: int) -> tuple[bytes, list[int], bytes]:
    """Received bytes and ``n`` edits of them (offsets ascending, each past the last one's cut)."""
    received = rng.randbytes(rng.randrange(0, 300))
    offsets = sorted(rng.randrange(0, len(received) + 1) for _ in range(n))
    edit_list: list[int] = []
    inserts = b""
    pos = 0
    for off in offsets:
        off = max(off, pos)
        cut = rng.randrange(0, len(received) - off + 1) if rng.random() < 0.5 else 0
        added = rng.randbytes(rng.choice([0, 1, rng.randrange(0, 50)]))
        edit_list += [off, cut, len(added)]
        inserts += added
        pos = off + cut
    return received, edit_list, inserts


def cases() -> list[tuple[str, bytes, list[int] | None, bytes | None]]:
    out: list[tuple[str, bytes, list[int] | None, bytes | None]] = []
    for name, received, sent in (("sealed letter", RECEIVED, SEALED), ("signed receipt", UNSIGNED_RECEIPT, SIGNED_RECEIPT),
                                 ("unchanged", RECEIVED, RECEIVED)):
        made = forwarded.edits(received, sent, most=0.99)
        assert made is not None, name
        out.append((name, received, made[0], made[1]))
    out += [("no edits", RECEIVED, [], b""), ("edits NULL", RECEIVED, None, None), ("empty", b"", [], b"")]
    rng = random.Random(25)
    for n in (1, 2, 3, 4, 7):
        for i in range(60):
            received, edit_list, inserts = generated(rng, n)
            out.append((f"{n} edits #{i}", received, edit_list, inserts))
    for n in (1, 2):  # the edges of the written-out pieces
        received = rng.randbytes(40)
        out += [(f"{n} at the start", received, [0, 3, 2] + [20, 0, 1] * (n - 1), b"xy" + b"z" * (n - 1)),
                (f"{n} at the end", received, [10, 0, 0] * (n - 1) + [40, 0, 3], b"abc"),
                (f"{n} cut to the end", received, [5, 1, 1] * (n - 1) + [30, 10, 0], b"q" * (n - 1))]
    return out


@pytest.mark.parametrize("whole", [False, True])
async def test_forwarded_bytes_is_the_loop_it_replaced(pool, whole):
    async with pool.acquire() as conn:
        await conn.execute(LOOP_0019)
        rows = cases()
        for name, received, edit_list, inserts in rows:
            whole_bytes = forwarded.apply(received, None, edit_list, inserts) if edit_list is not None else received
            stored = whole_bytes if whole else None
            old, new, inlined = await conn.fetchrow(
                "SELECT pg_temp.forwarded_bytes_0019($1, $2, $3, $4), forwarded_bytes($1, $2, $3, $4), "
                "(SELECT forwarded_bytes(r, f, e, i) FROM (VALUES ($1::bytea, $2::bytea, $3::integer[], $4::bytea)) "
                "v (r, f, e, i))", received, stored, edit_list, inserts)
            assert old == new == inlined == whole_bytes, name


async def test_one_or_two_edits_are_read_without_a_function_call(pool):
    """The reader's plan holds the expression, not a call: the planner inlined it (a PL/pgSQL function
    would show by name)."""
    plan = "\n".join(r[0] for r in await pool.fetch(
        "EXPLAIN (VERBOSE, FORMAT TEXT) SELECT forwarded_bytes(received, forwarded, forwarded_edits, forwarded_inserts) "
        "FROM messages"))
    assert "forwarded_bytes(" not in plan and "forwarded_bytes_edits(" in plan and "substr" in plan.lower()
