"""The tree-sitter outline: for every language it reads, the exact classes and functions with their line ranges,
qualnames, parents, signatures and doc comments; and the edges (unknown languages, syntax errors, non-ASCII text
before a declaration, decorators, limits)."""

from __future__ import annotations

import pytest

from atlas_pageindex.outline import DOC_MAX, SIGNATURE_MAX, Outline, language_of, parse
from tests.pageindex.outlines import node, rows

PYTHON = '''\
"""Sessions over HTTP."""

import functools


class Session:
    """A pooled HTTP session."""

    def __init__(self, base: str) -> None:
        self.base = base

    @functools.cache
    def request(self, path: str) -> bytes:
        """Fetch one path."""

        def helper() -> None:
            pass

        return b""

    class Config:
        retries = 3


async def fetch(url: str, *, timeout: float = 5.0) -> bytes:
    return b""
'''


def test_python() -> None:
    outline = parse("pkg/session.py", PYTHON)
    assert (outline.language, outline.lines, outline.doc) == ("python", 26, "Sessions over HTTP.")
    assert rows(outline) == [
        ("class", "Session", 6, 22),
        ("function", "Session.__init__", 9, 10),
        ("function", "Session.request", 12, 19),  # the decorator's line starts it; the nested helper stays out
        ("class", "Session.Config", 21, 22),
        ("function", "fetch", 25, 26),
    ]
    assert [n.parent for n in outline.nodes] == [None, 0, 0, 0, None]
    request = node(outline, "Session.request")
    assert (request.name, request.signature, request.doc) == (
        "request",
        "def request(self, path: str) -> bytes",
        "Fetch one path.",
    )
    assert node(outline, "Session").doc == "A pooled HTTP session."
    assert node(outline, "fetch").signature == "async def fetch(url: str, *, timeout: float = 5.0) -> bytes"
    assert node(outline, "fetch").doc == ""


JAVASCRIPT = """\
// Shopping cart helpers.

import { money } from "./money.js";

/**
 * A cart of line items.
 */
export class Cart {
  items = [];

  /** Add one item. */
  add(item) {
    this.items.push(item);
  }

  total = () => this.items.reduce((s, i) => s + i.price, 0);
}

// Formats a price.
export const format = (cents) => money(cents);

function helper() {
  const inner = () => 1;
  return inner();
}
"""


def test_javascript() -> None:
    outline = parse("web/cart.mjs", JAVASCRIPT)
    assert (outline.language, outline.lines, outline.doc) == ("javascript", 25, "Shopping cart helpers.")
    assert rows(outline) == [
        ("class", "Cart", 8, 17),
        ("function", "Cart.add", 12, 14),
        ("function", "Cart.total", 16, 16),
        ("function", "format", 20, 20),
        ("function", "helper", 22, 25),
    ]
    assert [n.parent for n in outline.nodes] == [None, 0, 0, None, None]
    assert node(outline, "Cart").doc == "A cart of line items."
    assert node(outline, "Cart").signature == "export class Cart"
    assert (node(outline, "Cart.add").signature, node(outline, "Cart.add").doc) == ("add(item)", "Add one item.")
    assert node(outline, "Cart.total").signature == "total = () =>"
    fmt = node(outline, "format")
    assert (fmt.name, fmt.signature, fmt.doc) == ("format", "export const format = (cents) =>", "Formats a price.")


TYPESCRIPT = """\
/** Storage backends. */

/** Something that stores blobs. */
export interface Store {
  get(key: string): Promise<Uint8Array>;
}

export enum Mode {
  Read,
  Write,
}

export abstract class Base<T> implements Store {
  constructor(protected readonly root: string) {}

  abstract get(key: string): Promise<Uint8Array>;

  /** Join a key onto the root. */
  protected path(key: string): string {
    return `${this.root}/${key}`;
  }
}

export function open(url: string): Store {
  throw new Error(url);
}
"""


def test_typescript() -> None:
    outline = parse("src/store.ts", TYPESCRIPT)
    assert (outline.language, outline.lines, outline.doc) == ("typescript", 26, "Storage backends.")
    assert rows(outline) == [
        ("class", "Store", 4, 6),
        ("function", "Store.get", 5, 5),
        ("class", "Mode", 8, 11),
        ("class", "Base", 13, 22),
        ("function", "Base.constructor", 14, 14),
        ("function", "Base.get", 16, 16),
        ("function", "Base.path", 19, 21),
        ("function", "open", 24, 26),
    ]
    assert [n.parent for n in outline.nodes] == [None, 0, None, None, 3, 3, 3, None]
    assert node(outline, "Store").doc == "Something that stores blobs."
    assert node(outline, "Store.get").signature == "get(key: string): Promise<Uint8Array>"
    assert node(outline, "Base").signature == "export abstract class Base<T> implements Store"
    assert node(outline, "Base.path").doc == "Join a key onto the root."
    assert node(outline, "open").signature == "export function open(url: string): Store"


TSX = """\
import React from "react";

type Props = { name: string };

/** Greets someone. */
export function Hello({ name }: Props) {
  return <h1>Hello {name}</h1>;
}

export class Counter extends React.Component<Props> {
  render() {
    return <button onClick={() => this.setState({})}>{this.props.name}</button>;
  }
}

export const Badge = (props: Props) => <span className="badge">{props.name}</span>;
"""


def test_tsx() -> None:
    outline = parse("ui/Hello.tsx", TSX)
    assert (outline.language, outline.doc) == ("typescript", "")
    assert rows(outline) == [
        ("function", "Hello", 6, 8),
        ("class", "Counter", 10, 14),
        ("function", "Counter.render", 11, 13),
        ("function", "Badge", 16, 16),
    ]
    assert node(outline, "Hello").doc == "Greets someone."
    assert node(outline, "Hello").signature == "export function Hello({ name }: Props)"
    assert node(outline, "Badge").signature == "export const Badge = (props: Props) =>"


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("a.py", "python"), ("a.pyi", "python"), ("a.js", "javascript"), ("a.mjs", "javascript"),
        ("a.cjs", "javascript"), ("a.jsx", "javascript"), ("a.ts", "typescript"), ("a.mts", "typescript"),
        ("a.cts", "typescript"), ("a.tsx", "typescript"), ("a.go", "go"), ("a.rs", "rust"), ("A.java", "java"),
        ("a.c", "c"), ("a.h", "c"), ("a.cc", "cpp"), ("a.cpp", "cpp"), ("a.cxx", "cpp"), ("a.hpp", "cpp"),
        ("a.hh", "cpp"), ("a.hxx", "cpp"), ("dir.py/README.md", None), ("Makefile", None), ("notes.txt", None),
    ],
)  # fmt: skip
def test_language_of(path: str, language: str | None) -> None:
    assert language_of(path) == language


def test_unknown_language_is_lines_only() -> None:
    assert parse("docs/notes.txt", "one\ntwo\n") == Outline(language=None, lines=2)
    assert parse("Makefile", "all:\n\techo hi") == Outline(language=None, lines=2)
    assert parse("empty.py", "") == Outline(language="python", lines=0)


def test_syntax_errors_keep_what_parses() -> None:
    broken = "def good(a):\n    return a\n\ndef broken(:\n    pass\n\nclass Later:\n    def m(self):\n        pass\n"
    outline = parse("broken.py", broken)
    assert ("function", "good", 1, 2) in rows(outline)
    assert ("class", "Later", 7, 9) in rows(outline)
    assert ("function", "Later.m", 8, 9) in rows(outline)
    js = parse("broken.js", "function ok() {}\nclass X {\n  m( {\n}\n")
    assert rows(js)[0] == ("function", "ok", 1, 1)
    for path in ("x.py", "x.js", "x.ts", "x.tsx", "x.go", "x.rs", "X.java", "x.c", "x.cpp"):
        parse(path, "}{ )( <<< \x00 \ufffd class def fn func struct {{{{ ;;; /* unterminated")


def test_non_ascii_before_a_declaration() -> None:
    # Multi-byte characters before and inside declarations: tree-sitter counts bytes, lines must not drift.
    text = (
        "# ünïcödé → 𝄞 ✓\n"
        'GREETING = "grüß dich, 世界"\n'
        "\n"
        "def grüße(name: str = '→') -> str:\n"
        '    """Sagt Grüß Gott 👋."""\n'
        "    return name\n"
    )
    outline = parse("hallo.py", text)
    assert rows(outline) == [("function", "grüße", 4, 6)]
    assert node(outline, "grüße").signature == "def grüße(name: str = '→') -> str"
    assert node(outline, "grüße").doc == "Sagt Grüß Gott 👋."
    js = parse("x.js", "const s = '日本語'; /* ü */\n/** Ünïcode doc. */\nfunction after() {}\n")
    assert rows(js) == [("function", "after", 3, 3)]
    assert node(js, "after").doc == "Ünïcode doc."


def test_crlf_and_lone_surrogates() -> None:
    outline = parse("win.py", "def a():\r\n    pass\r\n\r\ndef b(x):\r\n    pass\r\n")
    assert rows(outline) == [("function", "a", 1, 2), ("function", "b", 4, 5)]
    assert node(outline, "b").signature == "def b(x)"
    assert rows(parse("odd.py", "x = '\udcff'\ndef f():\n    pass\n")) == [("function", "f", 2, 3)]


def test_decorators_start_the_range() -> None:
    text = (
        "@dataclass(frozen=True)\n"
        "@total_ordering\n"
        "class Point:\n"
        "    x: int\n"
        "\n"
        "    @property\n"
        "    def norm(self) -> int:\n"
        "        return self.x\n"
    )
    outline = parse("point.py", text)
    assert rows(outline) == [("class", "Point", 1, 8), ("function", "Point.norm", 6, 8)]
    assert node(outline, "Point").signature == "class Point"
    angular = '@Component({selector: "x"})\nexport class A {\n  @HostListener("click")\n  onClick() {}\n}\n'
    ts = parse("a.component.ts", angular)  # a method decorator sits beside the method in the class body
    assert rows(ts) == [("class", "A", 1, 5), ("function", "A.onClick", 3, 4)]


def test_limits_and_deep_nesting() -> None:
    params = ", ".join(f"argument_{i}: int" for i in range(60))
    doc = "word " * 400
    outline = parse("long.py", f'def f({params}) -> None:\n    """{doc}"""\n')
    f = node(outline, "f")
    assert len(f.signature) == SIGNATURE_MAX and f.signature.startswith("def f(argument_0: int")
    assert len(f.doc) == DOC_MAX
    # A 5,000-term expression makes a very deep tree: nothing may recurse over it.
    deep = "x = " + " + ".join(["1"] * 5000) + "\n\ndef after():\n    pass\n"
    assert rows(parse("deep.py", deep)) == [("function", "after", 3, 4)]
