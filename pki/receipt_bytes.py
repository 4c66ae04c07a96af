"""Receipts written as bytes, canonical by construction, signed once (the tree way: :mod:`pki.receipts`).

A receipt the gateway issues is a fixed shape (an envelope whose body is ``env:Receipt``) with a
handful of text values. Made as a tree, each one cost a template copy, the values set one by one, a
serialisation (the unsigned receipt), the exclusive c14n of the whole envelope (the enveloped
reference's digest) and a second serialisation with the signature: ~320k instructions above the
ECDSA sign's ~300k (callgrind), for each of the three receipts of a letter (one submission, two
delivery).

Here lxml writes each receipt *shape* once (:meth:`ReceiptForm.of`): the gateway's template, each
value a marker ``@@<n>@@``, written three ways and cut at the markers into pieces:

* ``unsigned``: serialised (XML declaration, UTF-8), the bytes of the unsigned receipt;
* ``canonical``: the exclusive c14n of the envelope with its empty ``env:Signatures``, exactly what
  the ``URI=""`` reference with the enveloped-signature transform digests;
* signed: serialised with the signature in ``env:Signatures``, as
  :func:`pki.receipts.sign_receipt_tree` writes it; up to the last value that is the unsigned
  receipt (checked when the form is made), so a signed receipt is the unsigned bytes with their
  ending (``</Envelope>``) cut, and the signature spliced in between the two pieces that remain.

A receipt is then its values, each escaped as that writer escapes text, between the pieces lxml
wrote: the bytes the tree would give (the tests hold the two ways equal byte for byte, and verify the
receipts with signxml and libxmlsec1). The structure is never written here, only text between
elements; this is the one place the house rule "XML is built with an element builder" is bent, for a
shape the builder wrote itself.

Text is escaped by both writers alike (``&`` ``<`` ``>``) but for CR (serialised ``&#13;``,
canonical ``&#xD;``). Only values every character of which is planned for take this way: tab, LF,
CR, printable ASCII and every non-ASCII character XML 1.0 allows except the C1 controls (Thai text is
UTF-8 as is). A value with any other character (a control character, U+FFFE, a lone surrogate ...)
makes :meth:`ReceiptForm.write` answer ``None``: the caller builds the tree, whose writer escapes or
refuses it.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from lxml import etree

from pki.keys import Signer
from pki.xmlsig_lean import lean_signature_text
from pki.xmlsig_parts import (
    DSIG_NS,
    RECEIPT_SIGNATURE_ID,
    E,
    c14n,
    envelope_parts,
    serialize,
    signatures_container,
)

__all__ = ["ReceiptForm", "WrittenReceipt", "mark"]

#: Text neither writer escapes or changes (no ``& < > CR``), of characters planned for (see the module).
_PLAIN = re.compile("[\t\n\x20-\x25\x27-\x3b\x3d\x3f-\x7e\u00a0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")
#: Text of characters planned for, some of which the writers escape.
_WRITABLE = re.compile("[\t\n\r\x20-\x7e\u00a0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")
_MARK = re.compile(r"@@(\d+)@@")


def mark(n: int) -> str:
    """The marker a template carries in place of value ``n`` (plain text: both writers write it as is)."""
    return f"@@{n}@@"


def _escaped(value: str, cr: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", cr)


class _Cut(NamedTuple):
    """A text cut at its markers: ``pieces[0] + values[slots[0]] + pieces[1] + ...`` is the text."""

    pieces: tuple[str, ...]
    slots: tuple[int, ...]

    @classmethod
    def of(cls, text: str, n_values: int) -> _Cut:
        """``text`` cut at its markers; every value ``0 .. n_values - 1`` must occur, nothing else marked."""
        parts = _MARK.split(text)
        pieces, slots = tuple(parts[0::2]), tuple(int(n) for n in parts[1::2])
        if set(slots) != set(range(n_values)) or any("@@" in piece for piece in pieces):
            raise ValueError(f"the template carries markers {sorted(set(slots))}, not 0..{n_values - 1}")
        return cls(pieces, slots)

    def join(self, values: Sequence[str]) -> str:
        # (one join: str.format parsed the ~700 characters of each form again, ~18k instructions a call)
        out = [""] * (2 * len(self.pieces) - 1)
        out[0::2] = self.pieces
        out[1::2] = [values[n] for n in self.slots]
        return "".join(out)


@dataclass(frozen=True)
class ReceiptForm:
    """One receipt shape as lxml writes it, cut where the values go (see the module)."""

    #: How many values a receipt of this shape carries.
    n_values: int
    #: The unsigned receipt as serialised (XML declaration, UTF-8).
    unsigned: _Cut
    #: The exclusive c14n of the receipt with an empty ``env:Signatures``: what the signature digests.
    canonical: _Cut
    #: The signed receipt is the unsigned one without this ending (``</Envelope>``) ...
    unsigned_end: bytes
    #: ... then these bytes (``<Signatures>``), the signature, and these (``</Signatures></Envelope>``).
    around_signature: tuple[bytes, bytes]

    @classmethod
    def of(cls, template: etree._Element, n_values: int) -> ReceiptForm | None:
        """The form of ``template`` (a receipt envelope whose texts carry :func:`mark` ``(0)`` ...
        ``(n_values - 1)``, unsigned; left as it was), or ``None`` where the signature could not be
        spliced as written (the XML-DSig namespace declared above ``env:Signatures``: lxml would
        move the signature onto that prefix)."""
        root = copy.deepcopy(template)
        parts = envelope_parts(root)
        if parts.body.tag != E + "Receipt" or parts.signatures is not None:
            raise ValueError("a receipt template is an unsigned envelope with a Receipt body")
        unsigned = serialize(root).decode()
        container = signatures_container(parts)
        if DSIG_NS in container.nsmap.values():
            return None
        container.text = None
        canonical = c14n(root).decode()
        container.text = mark(n_values)
        signed = serialize(root).decode()
        # The signed receipt's bytes up to the last value are the unsigned receipt's: only what
        # follows them is cut here (checked, never assumed).
        before, _, after = signed.partition(mark(n_values))
        last = max(m.end() for m in _MARK.finditer(unsigned))
        if before[:last] != unsigned[:last] or "@@" in before[last:] + after + unsigned[last:]:
            raise ValueError("the signed receipt is not the unsigned one up to its last value")
        return cls(n_values, _Cut.of(unsigned, n_values), _Cut.of(canonical, n_values),
                   unsigned[last:].encode(), (before[last:].encode(), after.encode()))

    def write(self, values: Sequence[str]) -> WrittenReceipt | None:
        """The receipt of ``values`` (in marker order), or ``None`` where a value has a character not
        planned for (then build the tree)."""
        if len(values) != self.n_values:
            raise ValueError(f"this receipt carries {self.n_values} values, not {len(values)}")
        if _PLAIN.fullmatch("\t".join(values)):  # the usual receipt: nothing to escape
            written = canonical = values
        elif all(_WRITABLE.fullmatch(v) for v in values):
            written = tuple(_escaped(v, "&#13;") for v in values)
            canonical = tuple(_escaped(v, "&#xD;") for v in values)
        else:
            return None
        return WrittenReceipt(self, self.unsigned.join(written).encode(), self.canonical.join(canonical).encode())


class WrittenReceipt(NamedTuple):
    """A receipt written by :meth:`ReceiptForm.write`, to be signed by :meth:`sign` (a named tuple: one is
    made per receipt, and a frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``)."""

    form: ReceiptForm
    #: The unsigned receipt's bytes (what the tree serialises to).
    unsigned: bytes
    #: Its exclusive c14n with an empty ``env:Signatures`` (what the enveloped reference digests).
    canonical: bytes

    def sign(self, signer: Signer) -> bytes:
        """The receipt signed by ``signer``: the bytes :func:`pki.receipts.sign_receipt_tree` gives for
        the tree of the same values (one SHA-256 of the canonical form written, the SignedInfo and the
        signature written as text, one sign)."""
        digest = hashlib.sha256(self.canonical).digest()
        signature = lean_signature_text(signer, [("", digest)], signature_id=RECEIPT_SIGNATURE_ID, enveloped=True)
        form, unsigned = self.form, self.unsigned
        opening, closing = form.around_signature
        return b"".join((unsigned[:len(unsigned) - len(form.unsigned_end)], opening, signature.encode(), closing))
