"""A source file's outline: its classes and functions with their signatures, docstrings and line ranges, read
with tree-sitter (one grammar package per language, pinned, compiled into its wheel: nothing is fetched at run
time).

    outline = parse("pkg/util.py", source)
    [(n.kind, n.qualname, n.start_line, n.end_line) for n in outline.nodes]

One tree-sitter query per language finds the declarations (in C, so a 2,000-line file costs a few milliseconds);
a single sweep in source order then nests them, keeping a stack of the open classes. Whatever sits inside a
function body (locals, closures, callbacks' helpers) stays out: the outline is the file's API, not its code.
Parsing never raises on bad syntax: tree-sitter recovers, and the outline holds whatever did parse.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import tree_sitter as ts

from atlas_pageindex.grammars import (
    ATTRIBUTES,
    C_DECLARATORS,
    COMMENTS,
    WRAPPERS,
    grammar_of,
    language,
    query,
)

NodeKind = Literal["class", "function"]


@dataclass(frozen=True)
class Node:
    """One class (struct, interface, trait, impl, enum: whatever groups functions) or function (method)."""

    kind: NodeKind
    name: str
    qualname: str  # dotted through the enclosing classes: "Session.request"
    signature: str  # the declaration up to its body, on one line, at most 300 characters
    doc: str  # the docstring, or the comment right above the declaration; "" when none (at most 1,000 characters)
    start_line: int  # 1-based, inclusive, the declaration's first line (decorators included)
    end_line: int  # 1-based, inclusive
    parent: int | None = None  # index in Outline.nodes of the enclosing class


@dataclass(frozen=True)
class Outline:
    language: str | None  # None: a language the outline does not read (the file is still indexed as text)
    lines: int
    doc: str = ""  # the module docstring or the file's leading comment
    nodes: list[Node] = field(default_factory=list)


SIGNATURE_MAX = 300
DOC_MAX = 1000

# File extension -> grammar. "tsx" is a grammar of its own (JSX and `<T>` casts clash) but reports "typescript".
def language_of(path: str) -> str | None:
    """The language `parse` reads for this path ("typescript" for .tsx too), or None: decided by extension."""
    grammar = grammar_of(path)
    return "typescript" if grammar == "tsx" else grammar


def parse(path: str, text: str) -> Outline:
    """Outline `text` (the content of `path`) as the language its extension names; never raises on bad syntax.

    A language the outline does not read gives `Outline(language=None, lines=n)`. Lines count like an editor:
    "a\\nb" and "a\\nb\\n" are both 2 (tree-sitter rows, so only "\\n" ends a line).
    """
    lines = text.count("\n") + (1 if text and not text.endswith("\n") else 0)
    grammar = grammar_of(path)
    if grammar is None:
        return Outline(language=None, lines=lines)
    # "replace": a lone surrogate (text decoded with surrogateescape) must not raise; rows are unaffected.
    src = text.encode("utf-8", "replace")
    # A Parser holds per-parse state and is not safe to share between threads (the server parses in a pool);
    # building one costs under a microsecond, the Language and the compiled Query behind it are cached.
    tree = ts.Parser(language(grammar)).parse(src)
    walk = _Walk(grammar, src)
    walk.sweep(tree.root_node)
    return Outline(language=language_of(path), lines=lines, doc=walk.module_doc(tree.root_node), nodes=walk.nodes)


@dataclass(frozen=True)
class _Decl:
    """What a declaration node says about itself: its name path and where its body starts."""

    parts: tuple[str, ...]  # its name relative to the enclosing class: ("get",), or ("Widget", "get") for Widget::get
    body: ts.Node | None  # the signature stops here; None: the whole declaration is its signature
    signature: str | None = None  # set where the text before the body does not read well (Go type specs)


class _Walk:
    """One file's sweep: the captured declarations in source order, nested by a stack of open classes."""

    def __init__(self, grammar: str, src: bytes) -> None:
        self.grammar = grammar
        self.src = src
        self.wrappers = WRAPPERS.get(grammar, {})
        self.nodes: list[Node] = []
        self.tops: set[int] = set()  # start bytes of the nodes' first lines (decorators, attributes, export)

    def sweep(self, root: ts.Node) -> None:
        captured: dict[int, tuple[int, int, str, ts.Node]] = {}
        captures = ts.QueryCursor(query(self.grammar)).captures(root)
        for role in ("scope", "class", "function"):  # later roles win: a named arrow function is no scope
            for node in captures.get(role, []):
                captured[node.id] = (node.start_byte, -node.end_byte, role, node)
        classes: list[tuple[int, int, str]] = []  # (end byte, index in nodes, qualname) of the open classes
        inside_until = -1  # end byte of the function (or opaque scope) being skipped
        for start, neg_end, role, node in sorted(captured.values(), key=lambda item: (item[0], item[1])):
            if start < inside_until:
                continue  # inside a function body: locals and closures are not the file's outline
            while classes and classes[-1][0] <= start:
                classes.pop()
            decl = None if role == "scope" else _describe(self.grammar, node)
            if role != "class" or decl is _OPAQUE:
                inside_until = -neg_end
            if decl is None or decl is _OPAQUE:
                continue
            prefix = classes[-1][2] + "." if classes else ""
            self.nodes.append(self._node(node, role, decl, prefix, classes[-1][1] if classes else None))
            if role == "class":
                classes.append((-neg_end, len(self.nodes) - 1, self.nodes[-1].qualname))

    def _node(self, node: ts.Node, role: str, decl: _Decl, prefix: str, parent: int | None) -> Node:
        outer, sig_start = node, node
        while (up := outer.parent) is not None and up.type in self.wrappers:
            if up.type == "type_declaration" and up.named_child_count > 1:
                break  # a Go `type ( A struct{..}; B ... )` group: each spec is its own declaration
            outer = up
            if self.wrappers[up.type]:
                sig_start = up
        top, doc = self._leading(outer)
        self.tops.add(top.start_byte)
        if self.grammar == "python":
            doc = _py_docstring(decl.body)
        return Node(
            kind="class" if role == "class" else "function",
            name=decl.parts[-1],
            qualname=prefix + ".".join(decl.parts),
            signature=decl.signature or self._signature(node, sig_start, decl.body),
            doc=doc,
            start_line=top.start_point.row + 1,
            end_line=_last_row(outer) + 1,
            parent=parent,
        )

    def _signature(self, node: ts.Node, start: ts.Node, body: ts.Node | None) -> str:
        stop = node.end_byte if body is None else body.start_byte
        if self.grammar == "python":  # stop at the `:`, before any comment that follows it
            stop = next((c.start_byte for c in node.children if c.type == ":"), stop)
        # Bounded before decoding: a body-less declaration can be long, and only 300 characters are kept.
        raw = self.src[start.start_byte : min(stop, start.start_byte + 4 * SIGNATURE_MAX)]
        text = " ".join(raw.decode("utf-8", "ignore").split()).rstrip(" {;:")
        return text if len(text) <= SIGNATURE_MAX else text[: SIGNATURE_MAX - 1] + "…"

    def _leading(self, outer: ts.Node) -> tuple[ts.Node, str]:
        """The declaration's first node (Rust attributes above it count) and the comment block right above."""
        top, edge, texts = outer, outer.start_point.row, []
        sibling = outer.prev_named_sibling
        while sibling is not None and _last_row(sibling) >= edge - 1:
            before = sibling.prev_named_sibling
            if sibling.type in ATTRIBUTES:
                top = sibling
            elif sibling.type in COMMENTS and self.grammar != "python":
                text = _text(sibling)
                if text.startswith(("//!", "/*!")):
                    break  # a Rust inner doc comment documents the module
                if before is not None and _last_row(before) == sibling.start_point.row:
                    break  # `x = 1; // note` trails the code on its line, it is not this declaration's doc
                texts.append(text)
            else:
                break
            edge, sibling = sibling.start_point.row, before
        return top, _clean_comments(reversed(texts))

    def module_doc(self, root: ts.Node) -> str:
        """The Python module docstring, else the file's leading comment block unless it documents a node."""
        if self.grammar == "python" and (doc := _py_docstring(root)):
            return doc
        texts: list[str] = []
        child = _first_named(root)
        edge = -1
        while child is not None and (child.type in COMMENTS or child.type == "hash_bang_line"):
            text = _text(child)
            if texts and child.start_point.row > edge + 1:
                break  # a blank line ends the block
            if not text.startswith("#!") and not re.match(r"#.*coding[:=]", text):
                texts.append(text)
            edge, child = _last_row(child), child.next_named_sibling
        if not texts:
            return ""
        inner = all(t.startswith(("//!", "/*!")) for t in texts)
        if child is not None and child.start_point.row == edge + 1 and not inner and child.start_byte in self.tops:
            return ""  # the block sits right above a declaration: it is that declaration's doc
        return _clean_comments(texts)


_OPAQUE = _Decl(parts=(), body=None)  # an anonymous class (`module.exports = class {..}`): skip what it holds


def _describe(grammar: str, node: ts.Node) -> _Decl | None:
    """Name and body of a captured declaration; None when it has no usable name (then a class's contents still
    count, a function's stay out like any function body)."""
    kind, body = node.type, node.child_by_field_name("body")
    if kind in ("arrow_function", "function_expression", "generator_function", "class"):
        holder = node.parent  # named by the variable or class field it is assigned to
        if holder is not None and holder.type in ("variable_declarator", "field_definition", "public_field_definition"):
            var = holder.child_by_field_name("name") or holder.child_by_field_name("property")
            if var is not None and var.type.endswith("identifier"):  # not a destructuring pattern
                return _Decl((_text(var),), body)
        if kind == "class":
            own = node.child_by_field_name("name")
            if own is not None:
                return _Decl((_text(own),), body)
            return _Decl(("default",), body) if holder is not None and holder.type == "export_statement" else _OPAQUE
        return None
    if grammar in ("c", "cpp"):
        return _describe_c(node, body)
    if kind == "method_declaration" and grammar == "go":
        receiver = node.child_by_field_name("receiver")  # `(s *Server)`: the method is Server.Name
        param = _first_named(receiver)
        recv = _base_name(_text(param.child_by_field_name("type"))) if param is not None else ""
        method = _text(node.child_by_field_name("name"))
        return _Decl((recv, method) if recv else (method,), body)
    if kind == "type_spec":  # Go: `type Server struct` reads better than the spec's text up to its fields
        name_node, type_node = node.child_by_field_name("name"), node.child_by_field_name("type")
        if name_node is None or type_node is None:
            return None
        head = " ".join(_text_between(node, type_node).split())
        keyword = "struct" if type_node.type == "struct_type" else "interface"
        return _Decl((_text(name_node),), None, signature=f"type {head} {keyword}")
    if kind == "impl_item":  # Rust: `impl Display for Point` groups Point's methods
        implemented = _base_name(_text(node.child_by_field_name("type")))
        return _Decl((implemented,), body) if implemented else None
    name_node = node.child_by_field_name("name")
    return _Decl((_text(name_node),), body) if name_node is not None else None


def _describe_c(node: ts.Node, body: ts.Node | None) -> _Decl | None:
    if node.type == "function_definition":
        declarator = node.child_by_field_name("declarator")
        while declarator is not None and declarator.type in C_DECLARATORS:
            declarator = declarator.child_by_field_name("declarator") or _first_named(declarator)
        if declarator is None:
            return None
        parts = _cpp_parts(_text(declarator))
        return _Decl(parts, body) if parts else None
    name_node = node.child_by_field_name("name")
    if name_node is not None:  # a namespace `a::b`, a struct, a class, a specialisation `hash<Foo>`
        parts = _cpp_parts(_text(name_node))
        return _Decl(parts, body) if parts else None
    holder = node.parent  # `typedef struct { .. } point_t;` is named by its typedef
    if node.type != "namespace_definition" and holder is not None and holder.type == "type_definition":
        alias = holder.child_by_field_name("declarator")
        if alias is not None and alias.type == "type_identifier":
            return _Decl((_text(alias),), body)
    return None  # an anonymous struct or namespace: what it holds belongs to the enclosing scope


def _cpp_parts(name: str) -> tuple[str, ...]:
    """`ns::Box<T>::get` -> ("ns", "Box", "get"); operator names keep their symbols."""
    head, op, tail = name.partition("operator")
    out, depth = [], 0
    for ch in head:  # template arguments can hold `::` themselves, so drop them before splitting
        depth += (ch == "<") - (ch == ">")
        if depth == 0 and ch != ">":
            out.append(ch)
    parts = [p.strip() for p in "".join(out).split("::")]
    if op:
        parts[-1] = parts[-1] + op + tail.strip()
    return tuple(p for p in parts if p)


def _base_name(type_text: str) -> str:
    """The bare type under references, pointers and generics: `&'a mut Vec<T>` -> "Vec", `*Box[T]` -> "Box"."""
    text = re.sub(r"^(?:[&*\s]|'\w+|mut\b|dyn\b|const\b)+", "", type_text)
    text = re.split(r"[<\[(\s]", text, maxsplit=1)[0]
    return text.rsplit("::", 1)[-1].rsplit(".", 1)[-1]


def _py_docstring(block: ts.Node | None) -> str:
    """The docstring opening a Python block (or module), cleaned like `inspect.getdoc`; "" when none."""
    if block is None:
        return ""
    first = _first_named(block)
    while first is not None and first.type == "comment":
        first = first.next_named_sibling
    if first is None or first.type != "expression_statement" or first.named_child_count != 1:
        return ""
    string = _first_named(first)
    if string is None or string.type != "string":
        return ""
    match = re.match(r"([A-Za-z]*)('''|\"\"\"|'|\")", _text(string))
    if match is None or set(match.group(1).lower()) - {"r", "u"}:
        return ""  # bytes and f-strings are not docstrings
    quote = match.group(2)
    content = _text(string)[match.end() :]
    content = content[: -len(quote)] if content.endswith(quote) else content
    return _cap(inspect.cleandoc(content))


def _clean_comments(texts: Iterable[str]) -> str:
    """Comment nodes' text without their markers (`/** */`, `*`, `//`, `///`, `//!`, `#`), one block."""
    lines: list[str] = []
    for text in texts:
        for line in text.splitlines():
            line = line.strip()
            marker = re.match(r"/\*\*?!?|//[/!]?|#|\*(?!/)", line)
            line = line[marker.end() :] if marker else line
            line = line[:-2] if line.endswith("*/") else line
            lines.append(line[1:].rstrip() if line.startswith(" ") else line.rstrip())
    return _cap("\n".join(lines).strip("\n"))


def _cap(doc: str) -> str:
    return doc if len(doc) <= DOC_MAX else doc[: DOC_MAX - 1] + "…"


def _first_named(node: ts.Node | None) -> ts.Node | None:
    # Node.named_child raises IndexError past the end (an empty file, an empty receiver): check first.
    return node.named_child(0) if node is not None and node.named_child_count else None


def _text(node: ts.Node | None) -> str:
    raw = node.text if node is not None else None
    return raw.decode("utf-8", "replace") if raw is not None else ""


def _text_between(node: ts.Node, child: ts.Node) -> str:
    raw = node.text or b""
    return raw[: child.start_byte - node.start_byte].decode("utf-8", "replace")


def _last_row(node: ts.Node) -> int:
    """The node's last row: a line comment that swallowed its newline ends on its own row, not the next one."""
    end = node.end_point
    return end.row - 1 if end.column == 0 and end.row > node.start_point.row else end.row
