"""Decode once: the attachments the verifier decoded reach intake's reader keyed by the very tree.

The verifier hands intake the contents it decoded exactly as the envelope reader would (strict base64,
no white-space pass), under the tree object they were read from; the reader then skips the decode and
the SHA-256. These hold that the hand-off never crosses documents and never changes a record.
"""

from __future__ import annotations

import base64
import textwrap

from lxml import etree
from samples import envelope

from gateway.core.envelope_reader import read_attachments
from gateway.core.signing import VerifiedContents
from gateway.core.xml import ENVELOPE_NS
from pki.sign import sign_envelope
from pki.verify import verify_envelope

E = "{%s}" % ENVELOPE_NS


def _wrapped(raw: bytes, att_index: int) -> bytes:
    """The envelope with attachment ``att_index``'s Content line-wrapped (MIME style)."""
    root = etree.fromstring(raw)
    content = root.findall(f"{E}Attachments/{E}Attachment")[att_index].find(f"{E}Content")
    assert content is not None and content.text
    content.text = "\n".join(textwrap.wrap(content.text, 76))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


async def test_verified_contents_are_the_readers_records(signer1, trust):
    raw = sign_envelope(envelope(attachments=3), signer1)
    verified = await verify_envelope(raw, trust, sender="00001")
    assert set(verified.strict_contents) == set(verified.contents) and len(verified.contents) == 3
    assert read_attachments(verified.root, verified.strict_contents) == read_attachments(verified.root)


async def test_a_whitespace_pass_is_not_handed_over(signer1, trust):
    """Only contents decoded the reader's first way travel: the reader judges any other text itself."""
    raw = sign_envelope(_wrapped(envelope(attachments=2), 1), signer1)
    verified = await verify_envelope(raw, trust, sender="00001")
    ids = [a.get("Id") for a in verified.attachments]
    assert set(verified.contents) == set(ids)
    assert set(verified.strict_contents) == {ids[0]}
    assert read_attachments(verified.root, verified.strict_contents) == read_attachments(verified.root)


def test_contents_go_only_to_the_very_tree():
    held = VerifiedContents()
    a = etree.fromstring(envelope(attachments=1))
    twin = etree.fromstring(etree.tostring(a))  # the same document, another tree
    held.put(a, {"att-1": b"x"})
    assert held.take(twin) == {}
    assert held.take(a) == {"att-1": b"x"}
    assert held.take(a) == {}  # once


def test_a_stale_entry_is_never_read_by_another_tree():
    """Entries left by failed requests are dropped oldest first; none is read by a tree it was not put for."""
    held = VerifiedContents(maxsize=4)
    trees = [etree.fromstring(envelope(attachments=1)) for _ in range(6)]
    for i, t in enumerate(trees):
        held.put(t, {"att-1": bytes([i])})
    assert held.take(trees[0]) == {} and held.take(trees[1]) == {}
    assert [held.take(t) for t in trees[2:]] == [{"att-1": bytes([i])} for i in range(2, 6)]


def test_a_reader_given_other_contents_still_reads_the_tree_for_unknown_ids():
    root = etree.fromstring(envelope(attachments=2))
    records = read_attachments(root)
    assert read_attachments(root, {"no-such-id": b"?"}) == records
    assert base64.b64encode(records[0].content)  # decoded by the reader


def test_held_bytes_are_bounded():
    held = VerifiedContents(maxsize=64, max_bytes=4000)
    trees = [etree.fromstring(envelope(attachments=1)) for _ in range(6)]
    held.put(trees[0], {"att-1": b"x" * 1001})  # over a quarter of the budget: not held
    assert held.take(trees[0]) == {}
    for t in trees[1:]:
        held.put(t, {"att-1": b"y" * 1000})
    assert held.take(trees[1]) == {}  # dropped: five of 1000 bytes are over 4000
    assert all(held.take(t) == {"att-1": b"y" * 1000} for t in trees[2:])
