"""Receipts written as bytes, canonical by construction, signed once (the tree way: :mod:`pki.receipts`).

A receipt the gateway issues is a fixed shape (an envelope whose body is ``env:Receipt``) with a
handful of text values. Made as a tree, each one cost a template copy, the values set one by one, a
serialisation (the unsigned receipt), the exclusive c14n of the whole envelope (the enveloped
reference's digest), the c14n of SignedInfo and a second serialisation with the signature: ~30 us
above the one ECDSA sign, for each of the three receipts of a letter (one submission, two delivery).

Here lxml writes each receipt *shape* once (:meth:`ReceiptForm.of`): the gateway's template, each
value a marker ``@@<n>@@``, written three ways and cut at the markers into format strings:

* ``unsigned``: serialised (XML declaration, UTF-8), the bytes of the unsigned receipt;
* ``canonical``: the exclusive c14n of the envelope with its empty ``env:Signatures``, exactly what
  the ``URI=""`` reference with the enveloped-signature transform digests;
* ``signed``: serialised with the signature in ``env:Signatures``, as
  :func:`pki.receipts.sign_receipt_tree` writes it.

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


def _format_of(text: str, n_values: int) -> str:
    """``text`` as a format string: each marker ``@@n@@`` becomes ``{n}``; every value must occur."""
    literal = text.replace("{", "{{").replace("}", "}}")
    found = {int(n) for n in _MARK.findall(literal)}
    if found != set(range(n_values)) or "@@" in _MARK.sub("", literal):
        raise ValueError(f"the template carries markers {sorted(found)}, not 0..{n_values - 1}")
    return _MARK.sub(r"{\1}", literal)


@dataclass(frozen=True)
class ReceiptForm:
    """One receipt shape as lxml writes it, cut where the values go (see the module)."""

    #: How many values a receipt of this shape carries (``{0}`` ... in the format strings).
    n_values: int
    #: The unsigned receipt as serialised (XML declaration, UTF-8).
    unsigned: str
    #: The exclusive c14n of the receipt with an empty ``env:Signatures``: what the signature digests.
    canonical: str
    #: The signed receipt as serialised; the signature is value ``{n_values}``.
    signed: str

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
        return cls(n_values, _format_of(unsigned, n_values), _format_of(canonical, n_values),
                   _format_of(signed, n_values + 1))

    def write(self, values: Sequence[str]) -> WrittenReceipt | None:
        """The receipt of ``values`` (in marker order), or ``None`` where a value has a character not
        planned for (then build the tree)."""
        if len(values) != self.n_values:
            raise ValueError(f"this receipt carries {self.n_values} values, not {len(values)}")
        if _PLAIN.fullmatch("\t".join(values)):  # the usual receipt: nothing to escape
            written = canonical = tuple(values)
        elif all(_WRITABLE.fullmatch(v) for v in values):
            written = tuple(_escaped(v, "&#13;") for v in values)
            canonical = tuple(_escaped(v, "&#xD;") for v in values)
        else:
            return None
        return WrittenReceipt(self, written, self.unsigned.format(*written).encode(),
                              self.canonical.format(*canonical).encode())


class WrittenReceipt(NamedTuple):
    """A receipt written by :meth:`ReceiptForm.write`, to be signed by :meth:`sign` (a named tuple: made
    once a receipt, where a frozen dataclass's ``__init__`` costs ~1 us more)."""

    form: ReceiptForm
    #: The values as serialised (escaped).
    escaped: tuple[str, ...]
    #: The unsigned receipt's bytes (what the tree serialises to).
    unsigned: bytes
    #: Its exclusive c14n with an empty ``env:Signatures`` (what the enveloped reference digests).
    canonical: bytes

    def sign(self, signer: Signer) -> bytes:
        """The receipt signed by ``signer``: the bytes :func:`pki.receipts.sign_receipt_tree` gives for
        the tree of the same values (one c14n, the SignedInfo and the signature written as text)."""
        digest = hashlib.sha256(self.canonical).digest()
        signature = lean_signature_text(signer, [("", digest)], signature_id=RECEIPT_SIGNATURE_ID, enveloped=True)
        return self.form.signed.format(*self.escaped, signature).encode()
