"""Element trees made from a kept skeleton of their shape, for documents built on every request.

Making an element (``SubElement``) costs about a microsecond, and the e-CMS letter path builds two
documents of ~50 elements per letter (the native envelope, :mod:`gateway.core.envelope_builder`,
and the letter's answer, :mod:`gateway.core.ecmswire.building`). A builder lists a document's
elements with their values in document order (:data:`Item`); the first document of a shape (which
elements, in which order, at which depth) is built element by element (:func:`append_items`) and its
emptied copy kept (:class:`Shapes`, :func:`emptied`: no letter's content is kept); the next one of
that shape is a copy of the skeleton with the values put in (:func:`fill`, ~6 us for the copy).
"""

from __future__ import annotations

import copy

from lxml import etree

#: One element below the root, in document order: (depth, tag, text, attributes); depth 0 is a child
#: of the root, text None a container, "" an empty element written ``<a></a>``.
Item = tuple[int, str, str | None, tuple[tuple[str, str], ...]]


def append_items(root: etree._Element, items: list[Item]) -> etree._Element:
    """Build ``items`` below ``root``, each element made in place (``SubElement``); return ``root``."""
    parents = [root]
    for depth, tag, text, attrib in items:
        del parents[depth + 1:]
        el = etree.SubElement(parents[depth], tag, dict(attrib) if attrib else None)
        if text is not None:
            el.text = text
        parents.append(el)
    return root


def emptied(root: etree._Element) -> etree._Element:
    """A copy of ``root`` with every text and attribute value below it emptied."""
    tpl = copy.deepcopy(root)
    for el in tpl.iterdescendants():
        if el.text is not None:
            el.text = ""
        for name in el.attrib:
            el.set(name, "")
    return tpl


def fill(root: etree._Element, items: list[Item]) -> None:
    """Put the texts and attribute values of ``items`` below ``root``, a copy of their shape's skeleton."""
    for el, (_, _, text, attrib) in zip(root.iterdescendants(), items, strict=True):
        if text is not None:
            el.text = text
        if attrib:
            for name, value in attrib:
                el.set(name, value)


class Shapes:
    """Skeletons by shape key, at most ``limit`` of them (a document of a shape beyond is built anew)."""

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self.skeletons: dict[object, etree._Element] = {}

    def copy_of(self, shape: object) -> etree._Element | None:
        """A copy of the skeleton of ``shape``, or None if none is kept."""
        known = self.skeletons.get(shape)
        return None if known is None else copy.deepcopy(known)

    def keep(self, shape: object, built: etree._Element) -> None:
        """Keep ``built``'s emptied copy as the skeleton of ``shape`` (unless the limit is reached)."""
        if len(self.skeletons) < self.limit:
            self.skeletons[shape] = emptied(built)

    def clear(self) -> None:
        self.skeletons.clear()
