"""System.Xml as the two public e-CMS clients use it, over lxml, so that a replay reads answers the
way they do.

* ``XmlDocument.GetElementsByTagName(name)``: every element in document order whose *qualified*
  name (``prefix:local`` as written in the answer, or ``local``) equals ``name``, case-sensitively;
  namespaces are ignored (``"ram:ID"`` matches whatever URI the prefix ``ram`` is bound to);
* ``XmlNode.Item(name)`` (VB ``node.Item("x")``, C# ``node["x"]``): the first *child* element with that
  qualified name, or Nothing;
* ``XmlNode.SelectSingleNode("x")`` without a namespace manager: the first child element with local
  name ``x`` *in no namespace*;
* ``ChildNodes`` / ``NextSibling``: text nodes count, so white space between elements shifts what a
  positional reader gets;
* ``InnerText``, ``InnerXml``, ``Attributes(i)`` in document order.

A read of a missing node raises :class:`NullReference`, as .NET's NullReferenceException would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar
from xml.sax.saxutils import escape

from lxml import etree


class NullReference(Exception):
    """Object reference not set to an instance of an object."""


class WebException(Exception):
    """``WebRequest.GetResponse()`` on a non-2xx status: the client never reads the body."""


@dataclass(frozen=True)
class Text:
    """A text node (``#text``)."""

    value: str

    @property
    def inner_text(self) -> str:
        return self.value

    inner_xml = inner_text


class Node:
    """An ``XmlElement``."""

    def __init__(self, el: etree._Element) -> None:
        self.el = el

    @property
    def name(self) -> str:
        local = etree.QName(self.el).localname
        return f"{self.el.prefix}:{local}" if self.el.prefix else local

    def item(self, name: str) -> Node | None:
        return next((Node(c) for c in self.el if isinstance(c.tag, str) and Node(c).name == name), None)

    def select_single_node(self, name: str) -> Node | None:
        return next((Node(c) for c in self.el if isinstance(c.tag, str) and c.tag == name), None)

    @property
    def inner_text(self) -> str:
        return "".join(self.el.itertext())

    @property
    def inner_xml(self) -> str:
        head = escape(self.el.text or "")
        return head + "".join(etree.tostring(c, encoding="unicode") for c in self.el)

    @property
    def child_nodes(self) -> list[Node | Text]:
        nodes: list[Node | Text] = [Text(self.el.text)] if self.el.text else []
        for c in self.el:
            if isinstance(c.tag, str):
                nodes.append(Node(c))
            if c.tail:
                nodes.append(Text(c.tail))
        return nodes

    @property
    def next_sibling(self) -> Node | Text | None:
        if self.el.tail:
            return Text(self.el.tail)
        nxt = self.el.getnext()
        return Node(nxt) if nxt is not None else None

    @property
    def attributes(self) -> list[tuple[str, str]]:
        return list(self.el.attrib.items())


N = TypeVar("N", bound=Node | Text)


def need(node: N | None) -> N:
    """``node.X`` where node may be Nothing."""
    if node is None:
        raise NullReference("Object reference not set to an instance of an object.")
    return node


class Document:
    """An ``XmlDocument`` loaded from an answer's bytes (``Load`` throws on what is not XML)."""

    def __init__(self, body: bytes) -> None:
        try:
            self.root = etree.fromstring(body)
        except etree.XMLSyntaxError as exc:
            raise NullReference(f"XmlException: {exc}") from None

    def get_elements_by_tag_name(self, name: str) -> list[Node]:
        return [Node(e) for e in self.root.iter() if isinstance(e.tag, str) and Node(e).name == name]

    def first(self, name: str) -> Node:
        """``GetElementsByTagName(name).Item(0)`` dereferenced."""
        found = self.get_elements_by_tag_name(name)
        if not found:
            raise NullReference(f"GetElementsByTagName({name!r}).Item(0) is Nothing")
        return found[0]


def text_reader_values(body: bytes, start: str, names: tuple[str, ...]) -> dict[str, str]:
    """``XmlTextReader`` as BOI-DMS reads the outbound letter answer: once an element named ``start``
    is seen, every later element named one of ``names`` sets that value (``ReadString``); the last
    one wins."""
    values: dict[str, str] = {}
    started = False
    for el in etree.fromstring(body).iter():
        if not isinstance(el.tag, str):
            continue
        name = Node(el).name
        if name == start:
            started = True
        elif started and name in names:
            values[name] = el.text or "" if len(el) == 0 else Node(el).inner_xml
    return values
