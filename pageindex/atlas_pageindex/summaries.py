"""One-line summaries written by the model bottom-up (functions, then the classes and files that hold them, then
directories), for tree search to show. Each is kept under a key that changes with what it summarises (a piece's
text, a file's hash, a directory's contents), so an unchanged file's summaries are reused as they are; at most
``budget`` new ones per run (ATLAS_PROJECT_SUMMARY_MAX_NODES)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from atlas_pageindex.index import ProjectIndex
from atlas_pageindex.tree import Complete, TreeNode, describe

Save = Callable[[str, str], Awaitable[None]]
CODE_CHARS = 1_500
SUMMARY_TOKENS = 60  # one short sentence


def _clean(answer: str) -> str:
    line = next((x.strip() for x in answer.strip().splitlines() if x.strip()), "")
    return line.strip("`*# ")[:300]


async def summarise(root: TreeNode, index: ProjectIndex, sources: dict[str, str], complete: Complete,
                    have: dict[str, str], save: Save, budget: int) -> int:
    """Writes the summaries ``have`` lacks, children first; returns how many the model wrote."""
    written = 0

    async def visit(node: TreeNode) -> None:
        nonlocal written
        for child in node.children:
            await visit(child)
        if node.key in have or written >= budget or node.label == "project":
            return
        if node.piece is not None and not node.children:
            p = index.pieces[node.piece]
            code = "\n".join(sources.get(p.path, "").split("\n")[p.start_line - 1:p.end_line])[:CODE_CHARS]
            prompt = f"In one short sentence, say what this code does.\n\n```\n{code}\n```"
        else:
            parts = "\n".join(f"- {c.label}: {describe(c, index, have)}" for c in node.children[:30])
            prompt = f"In one short sentence, say what {node.label} is for, given what it holds:\n{parts}"
        text = _clean(await complete(prompt, SUMMARY_TOKENS))
        written += 1
        if text:
            have[node.key] = text
            await save(node.key, text)

    await visit(root)
    return written
