"""Untrusted XML to a small element tree that remembers line numbers.

Answer files arrive from operators and over the network, so DTDs, entity declarations and
external references are refused outright (defusedxml): that stops XXE and entity expansion
("billion laughs") before anything expands. Line numbers let every problem point at its line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, ParseError

from answerfiles.errors import AnswerFileError, Problem
from answerfiles.namespace import NS, PREFIX


@dataclass(slots=True)
class Node:
    """One element: ``tag`` is ``{uri}name`` for namespaced elements, ``path`` its slash path."""

    tag: str
    attrs: dict[str, str]
    line: int
    path: str
    children: list[Node] = field(default_factory=list)
    text: str = ""

    def iter(self) -> list[Node]:
        """This node's descendants in document order (the node itself excluded)."""
        found: list[Node] = []
        for child in self.children:
            found.append(child)
            found.extend(child.iter())
        return found


class _LineTrackingBuilder:
    """Parser target building ``Node`` trees; asks the expat parser for the line at each start."""

    def __init__(self) -> None:
        self.expat = None
        self._stack: list[Node] = []
        self.root: Node | None = None

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        parent = self._stack[-1] if self._stack else None
        name = _display_name(tag)
        path = f"{parent.path}/{name}" if parent else name
        node = Node(tag, dict(attrs), self.expat.CurrentLineNumber, path)
        if parent is None:
            self.root = node
        else:
            parent.children.append(node)
        self._stack.append(node)

    def start_expat(self, tag: str, attrs: dict[str, str]) -> None:
        """``start`` as expat calls it: namespaced names come as ``uri}name``."""
        if "}" in tag:
            tag = "{" + tag
        if attrs and any("}" in name for name in attrs):
            attrs = {("{" + name if "}" in name else name): v for name, v in attrs.items()}
        self.start(tag, attrs)

    def end(self, tag: str) -> None:
        node = self._stack.pop()
        node.text = node.text.strip()

    def data(self, text: str) -> None:
        if self._stack:
            self._stack[-1].text += text

    def close(self) -> Node | None:
        return self.root


def _display_name(tag: str) -> str:
    """``{urn:...}token`` shows as ``xp:token`` in messages, as operators write it."""
    if tag.startswith(f"{{{NS}}}"):
        return f"{PREFIX}:{tag[len(NS) + 2 :]}"
    return tag


def parse_xml(data: str | bytes, source: str) -> Node:
    """The element tree of ``data``; raises ``AnswerFileError`` for malformed or unsafe XML."""
    builder = _LineTrackingBuilder()
    parser = DefusedXMLParser(target=builder, forbid_dtd=True, forbid_entities=True,
                              forbid_external=True)
    builder.expat = parser.parser
    # The builder takes expat's element events itself: ElementTree's handlers only rename and
    # repackage them for us, and were a fifth of the parse. defusedxml's refusals (DTDs,
    # entities, external references) are handlers of their own and stay in place.
    builder.expat.ordered_attributes = False
    builder.expat.StartElementHandler = builder.start_expat
    builder.expat.EndElementHandler = builder.end
    builder.expat.CharacterDataHandler = builder.data
    try:
        parser.feed(data)
        root = parser.close()
    except DefusedXmlException as exc:
        line = builder.expat.CurrentLineNumber
        raise AnswerFileError([Problem(source, line, "xml", _refusal(exc))]) from None
    except ParseError as exc:
        line, column = exc.position
        reason = str(exc).split(":")[0]
        raise AnswerFileError(
            [Problem(source, line, "xml", f"not well-formed XML ({reason}) at column {column + 1}")]
        ) from None
    if root is None:
        raise AnswerFileError([Problem(source, 0, "xml", "no root element: the file is empty")])
    return root


def _refusal(exc: DefusedXmlException) -> str:
    kind = type(exc).__name__
    what = {
        "DTDForbidden": "a DTD (<!DOCTYPE>)",
        "EntitiesForbidden": "an entity declaration",
        "ExternalReferenceForbidden": "an external reference",
    }.get(kind, "an unsafe construct")
    return (f"{what} is refused: answer files are untrusted input and may not declare DTDs, "
            "entities or external references; remove it")
