"""Helpers of the outline tests: an outline as comparable rows, a node by qualname."""

from __future__ import annotations

from atlas_pageindex.outline import Node, Outline

Row = tuple[str, str, int, int]


def rows(outline: Outline) -> list[Row]:
    return [(n.kind, n.qualname, n.start_line, n.end_line) for n in outline.nodes]


def node(outline: Outline, qualname: str, index: int = 0) -> Node:
    return [n for n in outline.nodes if n.qualname == qualname][index]
