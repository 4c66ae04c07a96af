"""Delivery ids built without ``uuid.UUID.__init__``'s checks are exactly what ``uuid.uuid4()`` builds."""

from __future__ import annotations

import os
import pickle
import uuid

from gateway.storage.messages import delivery_ids, uuid4s_from


def test_same_uuid_as_the_standard_library_for_every_byte_pattern() -> None:
    chunks = [bytes([b]) * 16 for b in (0x00, 0xFF, 0x0F, 0xF0, 0x3F, 0xC0, 0x80, 0x40)]
    chunks += [os.urandom(16) for _ in range(2000)]
    for chunk, got in zip(chunks, uuid4s_from(b"".join(chunks)), strict=True):
        want = uuid.UUID(bytes=chunk, version=4)
        assert got == want and hash(got) == hash(want) and str(got) == str(want)
        assert got.bytes == want.bytes and got.version == 4 and got.variant == uuid.RFC_4122
        assert got.is_safe is want.is_safe and type(got) is uuid.UUID
        assert pickle.loads(pickle.dumps(got)) == want


def test_one_id_per_sixteen_bytes_and_none_for_none() -> None:
    assert uuid4s_from(b"") == [] and delivery_ids(0) == []
    assert len(uuid4s_from(bytes(47))) == 2
    ids = delivery_ids(3)
    assert len(ids) == 3 and len(set(ids)) == 3 and all(i.version == 4 for i in ids)
