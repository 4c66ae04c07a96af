"""The forwarded envelope stored as edits of the received one (migration 0019).

What a letter's seal changes is small: the gateway adds ``Id="Header"`` to the header and appends
its ``ds:Signature`` (~3 KB) to the author's ~10 KB envelope, serialising the rest byte for byte
as received. Storing the forwarded bytes whole sent ~13 KB more per letter to PostgreSQL (socket,
TOAST, WAL) than these edits do. So a message row keeps ``received`` whole and, in place of
``forwarded``, ``forwarded_edits`` (triples: offset in ``received``, bytes of ``received`` cut
there, bytes inserted there) and ``forwarded_inserts`` (the inserted bytes, in order).
``forwarded`` itself is stored only when the edits would not be much smaller (:func:`edits` gives
``None``): whatever the sealer does, the bytes are always exact.

Every reader gets the forwarded bytes through the SQL function ``forwarded_bytes(received,
forwarded, forwarded_edits, forwarded_inserts)`` (:func:`apply` is the same rule in Python, for
tests): one rule, in one place, never a copy of it per query.

:func:`edits` is exact by construction (every byte it does not insert is one it compared equal)
and cheap: equal runs are found by comparing slices (memcmp) and the XOR of the last window, a change
by searching for the next 32 bytes of ``received`` in what follows in ``forwarded`` (``bytes.find``).
A sealed letter costs ~10 µs.
"""

from __future__ import annotations

ANCHOR = 32
"""Bytes of ``received`` searched for in ``forwarded`` to find where an insertion ends."""
MAX_EDITS = 16
"""More edits than this: store the forwarded bytes whole (the sealer did something else)."""
MOST = 0.5
"""Inserted bytes above this share of the forwarded ones: store them whole (a letter's edits save half)."""
RECEIPT_MOST = 0.9
"""The same for a delivery receipt's message (0023): the signature (~2.4 KB, two certificates) is most of
a signed receipt (~3.3 KB), and the edits still save the unsigned receipt's ~0.9 KB."""


def _common(a: bytes, i: int, b: bytes, j: int, window: int = 512) -> int:
    """How many bytes ``a[i:]`` and ``b[j:]`` have in common at their start: the first ``window`` bytes,
    then the whole rest compared at once (memcmp), halved where it differs down to ``window`` bytes, whose
    first difference is the highest set bit of their XOR read as big-endian integers (a few slices
    instead of dozens)."""
    n = min(len(a) - i, len(b) - j)
    head = min(n, window)
    if a[i:i + head] != b[j:j + head]:  # a change right here (the seal's header Id)
        lo, hi = 0, head
    elif a[i + head:i + n] == b[j + head:j + n]:
        return n
    else:
        lo, hi = head, n  # equal before lo, a difference before hi
    while hi - lo > window:
        mid = (lo + hi) // 2
        if a[i + lo:i + mid] == b[j + lo:j + mid]:
            lo = mid
        else:
            hi = mid
    diff = int.from_bytes(a[i + lo:i + hi], "big") ^ int.from_bytes(b[j + lo:j + hi], "big")
    return hi - 1 - (diff.bit_length() - 1) // 8


def edits(received: bytes, forwarded: bytes, *, most: float = MOST) -> tuple[list[int], bytes] | None:
    """``forwarded`` as edits of ``received``: (flat triples ``[at, cut, inserted, ...]`` in order,
    the inserted bytes), or ``None`` when they would insert more than ``most`` of ``forwarded`` (by
    default: save less than half of it)."""
    a, b = received, forwarded
    la, lb = len(a), len(b)
    n = _common(a, 0, b, 0)
    grown = lb - la
    # one insertion (a signed receipt's signature): no search. The anchor first, so that a letter (two
    # insertions) copies no whole tail to find out
    if grown > 0 and b[n + grown:n + grown + ANCHOR] == a[n:n + ANCHOR] and b[n + grown:] == a[n:]:
        return ([n, 0, grown], b[n:n + grown]) if grown <= most * lb else None
    out: list[int] = []
    inserts: list[bytes] = []
    inserted = 0
    i = j = 0
    while True:
        i += n
        j += n
        if i == la and j == lb:
            break
        if len(out) >= 3 * MAX_EDITS:
            return None
        if i == la:  # the rest of forwarded is new
            k, cut = lb, 0
        elif j == lb:  # the rest of received is gone
            k, cut = j, la - i
        else:
            k, cut = b.find(a[i:i + ANCHOR], j), 0
            if k < 0:  # not an insertion: a cut up to where forwarded's next bytes recur, or the rest replaced
                at = a.find(b[j:j + ANCHOR], i)
                k, cut = (j, at - i) if at >= 0 else (lb, la - i)
        out += [i, cut, k - j]
        inserts.append(b[j:k])
        inserted += k - j
        i += cut
        j = k
        n = _common(a, i, b, j)
    if inserted > most * lb:
        return None
    return out, b"".join(inserts)


def apply(received: bytes, forwarded: bytes | None, edit_list: list[int] | None, inserts: bytes | None) -> bytes:
    """The forwarded bytes of a stored row (SQL ``forwarded_bytes``, for tests and checks)."""
    if forwarded is not None:
        return forwarded
    if edit_list is None or inserts is None:
        raise ValueError("a message row has neither forwarded bytes nor edits")
    parts: list[bytes] = []
    pos = used = 0
    for t in range(0, len(edit_list), 3):
        at, cut, n = edit_list[t:t + 3]
        parts += [received[pos:at], inserts[used:used + n]]
        pos, used = at + cut, used + n
    parts.append(received[pos:])
    return b"".join(parts)
