"""The project as a tree (project -> directory -> file -> class -> function) and the model's walk down it
(PLATFORM.md §5): at each node the model scores the children 0-10 in one call, children scoring at least
``EXPAND`` are opened best first, a child scoring at least ``ENOUGH`` that yields results ends its siblings' turn,
no deeper than ``depth`` levels and no more than ``calls`` model calls. Each child shows its name and its summary
(the background's, ``summaries``), or its signature and docstring while it has none.

    found = await walk(index, "where are cookies merged into a request?", complete, summaries, calls=40, depth=6)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from atlas_pageindex.index import Piece, ProjectIndex

# A prompt and the most tokens to write in, the model's text out (raises when the model is down).
Complete = Callable[[str, int], Awaitable[str]]
SCORE_TOKENS = 200  # one "number: score" line for each of up to BATCH children
EXPAND = 6
ENOUGH = 8
BATCH = 20  # children scored per call
_SCORE = re.compile(r"^\s*\[?(\d{1,3})\]?\s*[:.)=-]\s*(\d{1,2})\b", re.MULTILINE)


@dataclass
class TreeNode:
    label: str  # "dir requests/", "file requests/api.py", "class Session", "function Session.send"
    key: str  # the summary key (``summaries.node_key``)
    piece: int | None = None  # the piece it is, for classes and functions
    children: list[TreeNode] = field(default_factory=list)


def build(index: ProjectIndex) -> TreeNode:
    """The tree of the index's pieces: directories from the paths, classes and functions nested by line range."""
    root = TreeNode("project", "dir:")
    dirs: dict[str, TreeNode] = {"": root}

    def directory(path: str) -> TreeNode:
        if path in dirs:
            return dirs[path]
        parent, _, _ = path.rpartition("/")
        node = TreeNode(f"dir {path}/", f"dir:{path}")
        directory(parent).children.append(node)
        dirs[path] = node
        return node

    by_file: dict[str, list[int]] = {}
    for i, piece in enumerate(index.pieces):
        by_file.setdefault(piece.path, []).append(i)
    for path in sorted(by_file):
        entry = index.files.get(path)
        folder, _, _ = path.rpartition("/")
        file_node = TreeNode(f"file {path}", f"file:{path}:{entry.sha if entry else ''}")
        directory(folder).children.append(file_node)
        stack: list[tuple[Piece, TreeNode]] = []
        for i in sorted(by_file[path], key=lambda n: (index.pieces[n].start_line, -index.pieces[n].end_line)):
            piece = index.pieces[i]
            if piece.kind in ("file", "text"):
                continue
            node = TreeNode(f"{piece.kind} {piece.qualname or piece.name}", f"node:{piece.embed_key}", i)
            while stack and stack[-1][0].end_line < piece.start_line:
                stack.pop()
            (stack[-1][1] if stack else file_node).children.append(node)
            if piece.kind == "class":
                stack.append((piece, node))
    _seal(root)
    return root


def _seal(node: TreeNode) -> None:
    """A directory's summary key follows what it holds, so that its summary is written again when that changes."""
    for child in node.children:
        _seal(child)
    if node.key.startswith("dir:"):
        inside = "|".join(c.key for c in node.children)
        node.key = f"dir:{hashlib.sha256((node.label + inside).encode()).hexdigest()[:32]}"


def nodes(root: TreeNode) -> list[TreeNode]:
    """Every node of the tree, ``root`` included."""
    out: list[TreeNode] = []
    stack = [root]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.children)
    return out


def describe(node: TreeNode, index: ProjectIndex, summaries: dict[str, str]) -> str:
    if node.key in summaries:
        return summaries[node.key]
    if node.piece is not None:
        p = index.pieces[node.piece]
        doc = p.doc.strip().splitlines()[0] if p.doc.strip() else ""
        return f"{p.signature[:160]}{' - ' + doc[:160] if doc else ''}"
    names = [c.label for c in node.children[:8]]
    return "contains " + ", ".join(names) + (" ..." if len(node.children) > 8 else "")


def prompt(query: str, children: list[TreeNode], index: ProjectIndex, summaries: dict[str, str]) -> str:
    items = "\n".join(f"{n}. {c.label}: {describe(c, index, summaries)}" for n, c in enumerate(children, start=1))
    return (f"A developer looks for the code that answers: {query}\n\n"
            "Rate each item below from 0 (surely not there) to 10 (surely there). Answer one line per item, "
            "as \"number: score\", and nothing else.\n\n" + items)


def scores_of(answer: str, count: int) -> list[int]:
    """The model's scores by item; an item it skipped or garbled scores 0."""
    out = [0] * count
    for n, score in _SCORE.findall(answer):
        i = int(n) - 1
        if 0 <= i < count:
            out[i] = min(10, int(score))
    return out


@dataclass
class Walk:
    calls: int = 0
    found: list[tuple[int, int, int]] = field(default_factory=list)  # (piece, score, order found)


async def walk(index: ProjectIndex, query: str, complete: Complete, summaries: dict[str, str], *, calls: int = 40,
               depth: int = 6, k: int = 10, root: TreeNode | None = None) -> tuple[list[tuple[int, float]], int]:
    """The pieces the walk reached, best first (score / 10), and the model calls it made (``root``: the index's
    tree when the caller has built it already)."""
    state = Walk()
    await _visit(root or build(index), query, complete, summaries, index, state, calls, depth, 0)
    ranked = sorted(state.found, key=lambda f: (-f[1], f[2]))
    seen: set[int] = set()
    out: list[tuple[int, float]] = []
    for piece, score, _ in ranked:
        if piece not in seen:
            seen.add(piece)
            out.append((piece, score / 10))
    return out[:k], state.calls


async def _visit(node: TreeNode, query: str, complete: Complete, summaries: dict[str, str], index: ProjectIndex,
                 state: Walk, calls: int, depth: int, level: int) -> bool:
    """Scores ``node``'s children and opens the promising ones; True when it found anything."""
    if level >= depth or not node.children:
        return False
    if len(node.children) == 1 and node.children[0].piece is None:  # one directory or file: no choice to score
        return await _visit(node.children[0], query, complete, summaries, index, state, calls, depth, level + 1)
    scored: list[tuple[TreeNode, int]] = []
    for start in range(0, len(node.children), BATCH):
        if state.calls >= calls:
            break
        batch = node.children[start:start + BATCH]
        state.calls += 1
        answer = await complete(prompt(query, batch, index, summaries), SCORE_TOKENS)
        scored.extend(zip(batch, scores_of(answer, len(batch)), strict=True))
    found = False
    for child, score in sorted(scored, key=lambda x: -x[1]):
        if score < EXPAND:
            break
        hit = False
        if child.piece is not None:
            state.found.append((child.piece, score, len(state.found)))
            hit = True
        if child.children and state.calls < calls:
            hit = await _visit(child, query, complete, summaries, index, state, calls, depth, level + 1) or hit
        found = found or hit
        if hit and score >= ENOUGH:
            break  # a sure child that delivered: its siblings are not opened
    return found
