"""Empty optional structures, treated as absent wherever the e-CMS schema makes them optional.

Clients write every element whether or not they have a value: mil-doc
(``TEST.XML.WEB.SERVICE/Controllers/APIController.cs``) adds one empty ``ReferenceCorrespondence``
(empty ``ID``, ``CorrespondenceDate``, ``Subject``) and one ``AttachmentBinaryObject mimeCode=""``
when a letter has none. The schema cannot say "absent or complete", so such a structure is
detached while the operation is validated and put back afterwards (a legacy signature over
``#Letter`` covers it as sent), and the readers (:mod:`.reading`) skip it.

Optional structures (``ecms-ram.xsd``): ``ReferenceCorrespondence``, ``MainLetterBinaryObject``,
``AttachmentBinaryObject`` and a ``GovernmentSignature`` that holds no ``ds:Signature``; a notifier's
or selector's ``AcceptDepartment``/``SenderDepartment`` is optional and read as "" already.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from lxml import etree

from gateway.core.ecmswire.soap import DS_NS, RAM_NS

_R = f"{{{RAM_NS}}}"
_OPTIONAL = (f"{_R}ReferenceCorrespondence", f"{_R}MainLetterBinaryObject", f"{_R}AttachmentBinaryObject",
             f"{_R}GovernmentSignature")
T = TypeVar("T")


def is_blank(el: etree._Element) -> bool:
    """No text anywhere inside (attributes such as an empty ``mimeCode`` do not count) and no
    ``ds:Signature``."""
    if el.text and not el.text.isspace():  # a binary object's base64 or a leaf's value: no walk, no copy
        return False
    if any(text and not text.isspace() for text in el.itertext()):
        return False
    return next(el.iter(f"{{{DS_NS}}}Signature"), None) is None


def _blank_optionals(op: etree._Element) -> Iterator[etree._Element]:
    for el in op.iter(*_OPTIONAL):
        if is_blank(el):
            yield el


def without_blank_optionals(op: etree._Element, check: Callable[[], T]) -> T:
    """Run ``check`` (schema validation) with the blank optional structures of ``op`` detached, then
    put them back where they were (with their tails), whatever ``check`` does."""
    detached = []
    for el in list(_blank_optionals(op)):
        parent = el.getparent()
        if parent is not None:
            detached.append((parent, parent.index(el), el))
            parent.remove(el)
    try:
        return check()
    finally:
        for parent, index, el in reversed(detached):
            parent.insert(index, el)
