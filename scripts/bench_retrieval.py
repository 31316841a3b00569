"""make bench-retrieval: PageIndex's retrieval on real code ATLAS did not write.

For each package (the source of well-known packages installed in .venv: requests, click, httpx by default):
1. every function's and method's docstring is removed from the indexed copy (replaced by ``pass`` and blank
   lines, so every line keeps its number); the first sentence of each removed docstring (at least 4 words,
   unique in its package) is a query whose answer is that function;
2. the copy is synced into a project through the real store (Redis, tree-sitter), timed: index time per 10,000
   lines; the pieces are embedded by the real embedding server (all-MiniLM-L6-v2, as `atlas up` runs it), timed;
3. each query is searched with BM25, embeddings, hybrid and (on a sample, with the model: SmolLM2-135M by
   default) tree search; a hit is the function's own piece. Reported: recall@1, @5, @10 and MRR per mode,
   query latency p50/p95 per mode (hybrid includes embedding the query);
4. one file is changed and synced again: the re-index time of one file (its write, parse and the in-memory
   index brought up to date), and with its new pieces embedded.

    python scripts/bench_retrieval.py --out bench-results/retrieval.json
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import importlib.metadata
import json
import os
import platform
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis.asyncio as aioredis

from atlas_lens.features import EmbeddingClient
from atlas_llama.models import default_chat_model, default_embed_model
from atlas_pageindex.index import ProjectIndex
from atlas_pageindex.search import search
from atlas_pageindex.service import PageIndex
from atlas_pageindex.settings import PageIndexSettings
from atlas_pageindex.store import ProjectStore
from atlas_pageindex.tree import walk
from atlas_rag.projects import Embeddings

sys.path.insert(0, str(Path(__file__).parent))
from bench_sandbox import free_port
from bench_solve import Llama

MODES = ("bm25", "embed", "hybrid")
SENTENCE = re.compile(r"^(.+?[.!?])(?:\s|$)", re.DOTALL)


@dataclass(frozen=True)
class Query:
    path: str
    qualname: str
    start_line: int
    text: str


def first_sentence(doc: str) -> str | None:
    text = " ".join(doc.strip().split())
    m = SENTENCE.match(text)
    sentence = (m.group(1) if m else text).strip()
    return sentence if len(sentence.split()) >= 4 else None


def strip_docstrings(source: str, path: str) -> tuple[str, list[Query]]:
    """The source without its functions' docstrings (line numbers kept), and a query per removed docstring."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    edits: list[tuple[int, int, int, int]] = []
    queries: list[Query] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = child.body
                if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                        and isinstance(body[0].value.value, str) and body[0].end_lineno is not None
                        and body[0].lineno > child.lineno):
                    doc = body[0]
                    assert doc.end_lineno is not None and doc.end_col_offset is not None
                    edits.append((doc.lineno, doc.col_offset, doc.end_lineno, doc.end_col_offset))
                    sentence = first_sentence(str(body[0].value.value))
                    start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                    if sentence:
                        queries.append(Query(path, f"{prefix}{child.name}", start, sentence))
                visit(child, f"{prefix}{child.name}.")

    visit(tree, "")
    for first, col, last, end_col in sorted(edits, reverse=True):
        # ast's column offsets count UTF-8 bytes
        head = lines[first - 1].encode()[:col].decode()
        tail = lines[last - 1].encode()[end_col:].decode()
        lines[first - 1:last] = [head + "pass" + tail.rstrip("\n") + "\n"] + ["\n"] * (last - first)
    out = "".join(lines)
    ast.parse(out)  # still Python
    return out, queries


def package_files(name: str) -> dict[str, str]:
    module = __import__(name)
    root = Path(module.__file__).parent
    return {f"{name}/{p.relative_to(root).as_posix()}": p.read_text(encoding="utf-8")
            for p in sorted(root.rglob("*.py")) if "__pycache__" not in p.parts}


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    from atlas_cli.plan import redis_binary

    port = free_port()
    proc = subprocess.Popen([redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"redis://127.0.0.1:{port}/0"


def start_embedder(workdir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    port, api_key = free_port(), secrets.token_urlsafe(32)
    env = os.environ | {"ATLAS_EMBED_PORT": str(port), "ATLAS_LLAMA_API_KEY": api_key,
                        "ATLAS_EMBED_MODEL_PATH": str(default_embed_model()), "ATLAS_STATE_DIR": str(workdir),
                        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ATLAS_METRICS_TOKEN": api_key}
    proc = subprocess.Popen([sys.executable, "-m", "atlas_llama.embed"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url, api_key
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("bench-retrieval: the embedding server did not start")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def scores(ranks: list[int | None]) -> dict[str, float]:
    n = max(1, len(ranks))
    return {"recall@1": round(sum(1 for r in ranks if r is not None and r < 1) / n, 4),
            "recall@5": round(sum(1 for r in ranks if r is not None and r < 5) / n, 4),
            "recall@10": round(sum(1 for r in ranks if r is not None and r < 10) / n, 4),
            "mrr": round(sum(1 / (r + 1) for r in ranks if r is not None) / n, 4), "queries": len(ranks)}


def rank_of(index: ProjectIndex, found: list[int], q: Query) -> int | None:
    for rank, i in enumerate(found):
        p = index.pieces[i]
        if p.path == q.path and p.qualname == q.qualname and p.start_line == q.start_line:
            return rank
    return None


async def bench_package(name: str, pages: PageIndex, store: ProjectStore, embedder: Embeddings | None,
                        queries_embedder: Embeddings | None, llm: Any, tree_queries: int, seed: int
                        ) -> dict[str, Any]:
    files = package_files(name)
    stripped: dict[str, str] = {}
    queries: list[Query] = []
    for path, text in files.items():
        stripped[path], found = strip_docstrings(text, path)
        queries += found
    counts: dict[str, int] = {}
    for q in queries:
        counts[q.text] = counts.get(q.text, 0) + 1
    queries = [q for q in queries if counts[q.text] == 1]  # a sentence two functions share answers neither
    lines = sum(t.count("\n") + 1 for t in stripped.values())
    project = await store.create("bench", name)
    started = time.perf_counter()
    await store.write("bench", project.id, [{"path": p, "content": t} for p, t in stripped.items()], [])
    written_s = time.perf_counter() - started
    index = await pages.index(project.id)
    structure_s = time.perf_counter() - started
    embed_s = 0.0
    if embedder is not None:
        started = time.perf_counter()
        while await pages.background_once():
            pass
        await index.refresh(store)
        embed_s = time.perf_counter() - started
    out: dict[str, Any] = {"files": len(stripped), "lines": lines, "pieces": len(index.pieces),
                           "queries": len(queries),
                           "index_s": round(structure_s, 3), "write_s": round(written_s, 3),
                           "index_s_per_10k_lines": round(structure_s / lines * 10_000, 3),
                           "embed_s": round(embed_s, 2),
                           "embed_s_per_10k_lines": round(embed_s / lines * 10_000, 2), "modes": {}}
    pos = {id(p): i for i, p in enumerate(index.pieces)}
    for mode in MODES if embedder is not None else ("bm25",):
        ranks: list[int | None] = []
        times: list[float] = []
        for q in queries:
            t0 = time.perf_counter()
            found = await search(index, q.text, 10, mode, queries_embedder)
            times.append(time.perf_counter() - t0)
            ranks.append(rank_of(index, [pos[id(h.piece)] for h in found.hits], q))
        out["modes"][mode] = scores(ranks) | {"p50_ms": round(pct(times, 0.5) * 1000, 2),
                                              "p95_ms": round(pct(times, 0.95) * 1000, 2)}
        print(name, mode, json.dumps(out["modes"][mode]), flush=True)
    if llm is not None and tree_queries:
        rng = np.random.default_rng(seed)
        sample = [queries[i] for i in sorted(rng.choice(len(queries), min(tree_queries, len(queries)),
                                                        replace=False))]
        ranks, times, calls = [], [], []
        for q in sample:
            t0 = time.perf_counter()
            ranked, n = await walk(index, q.text, llm, {}, calls=40, depth=6, k=10)
            times.append(time.perf_counter() - t0)
            calls.append(n)
            ranks.append(rank_of(index, [i for i, _ in ranked], q))
        out["modes"]["tree"] = scores(ranks) | {"p50_ms": round(pct(times, 0.5) * 1000, 1),
                                                "p95_ms": round(pct(times, 0.95) * 1000, 1),
                                                "model_calls_mean": round(statistics.mean(calls), 1),
                                                "sample": len(sample)}
        # the same sample with hybrid, for a side-by-side comparison
        same = []
        for q in sample:
            found = await search(index, q.text, 10, "hybrid" if embedder else "bm25", embedder)
            same.append(rank_of(index, [pos[id(h.piece)] for h in found.hits], q))
        out["modes"]["tree"]["hybrid_on_sample"] = scores(same)
        print(name, "tree", json.dumps(out["modes"]["tree"]), flush=True)
    out["reindex"] = await reindex(name, project.id, stripped, pages, store, embedder)
    await store.delete("bench", project.id)
    return out


async def reindex(name: str, pid: str, stripped: dict[str, str], pages: PageIndex, store: ProjectStore,
                  embedder: Embeddings | None) -> dict[str, Any]:
    """One file changed (a function added at its end), synced, the index brought up to date: five times, median."""
    path = max(stripped, key=lambda p: len(stripped[p]))
    structure, embedded = [], []
    for n in range(5):
        text = stripped[path] + f"\n\ndef bench_added_{n}(value):\n    return [value] * {n + 2}\n"
        t0 = time.perf_counter()
        await store.write("bench", pid, [{"path": path, "content": text}], [])
        index = await pages.index(pid)
        structure.append(time.perf_counter() - t0)
        if embedder is not None:
            await store.redis.srem("atlas:proj:pending", pid)
            await store.mark_pending(pid)
            while await pages.background_once():
                pass
            await index.refresh(store)
            embedded.append(time.perf_counter() - t0)
    return {"file": path, "file_lines": stripped[path].count("\n") + 1,
            "reindex_ms": round(statistics.median(structure) * 1000, 1),
            "reindex_with_embeddings_ms": round(statistics.median(embedded) * 1000, 1) if embedded else None}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-retrieval-"))
    redis_proc, redis_url = start_redis(workdir)
    embed_proc = llama = None
    try:
        await asyncio.sleep(0.5)
        redis = aioredis.from_url(redis_url)
        settings = PageIndexSettings(project_summaries=False, project_max_per_user=100)
        store = ProjectStore(redis, settings)
        async with httpx.AsyncClient() as http:
            embedder = queries = None
            if not args.no_embeddings:
                embed_proc, url, api_key = start_embedder(workdir)
                embedder = Embeddings(EmbeddingClient(http, url, api_key, timeout_s=300))
                # Queries through a client that remembers one text: each query's latency includes embedding it.
                queries = Embeddings(EmbeddingClient(http, url, api_key, timeout_s=300, cache=1))
            complete = None
            if args.tree_queries:
                llama = Llama(workdir, Path(args.model or default_chat_model() or ""), args.threads)
                server = llama

                async def complete(prompt: str, max_tokens: int) -> str:
                    answer = await http.post(f"{server.url}/v1/chat/completions", timeout=300,
                                             headers={"Authorization": f"Bearer {server.key}"},
                                             json={"messages": [{"role": "user", "content": prompt}],
                                                   "temperature": 0, "max_tokens": max_tokens, "seed": 0})
                    answer.raise_for_status()
                    return str(answer.json()["choices"][0]["message"]["content"] or "")

            pages = PageIndex(store, settings, embedder, complete)
            result: dict[str, Any] = {
                "packages": {}, "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                "embedding_model": "all-MiniLM-L6-v2" if embedder else None,
                "tree_model": Path(args.model or default_chat_model() or "").name if complete else None}
            for name in args.packages.split(","):
                result["packages"][name] = {"version": importlib.metadata.version(name)} | await bench_package(
                    name, pages, store, embedder, queries, complete,
                    args.tree_queries if name in args.tree_packages.split(",") else 0, args.seed)
            held = set(args.held_out.split(",")) if args.held_out else set()
            tuned = {n: p for n, p in result["packages"].items() if n not in held}
            result["overall"] = overall(result["packages"])
            result["tuned_on"] = overall(tuned) if tuned and held else None
            result["held_out"] = overall({n: p for n, p in result["packages"].items() if n in held}) or None
            await redis.aclose()
            return result
    finally:
        for proc in (embed_proc, redis_proc):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
        if llama is not None:
            llama.close()


def overall(packages: dict[str, Any]) -> dict[str, Any]:
    """Each mode's measures over every query of every package (weighted by queries)."""
    out: dict[str, Any] = {}
    if not packages:
        return out
    for mode in ("bm25", "embed", "hybrid", "tree"):
        rows = [p["modes"][mode] for p in packages.values() if mode in p["modes"]]
        if not rows:
            continue
        n = sum(r["queries"] for r in rows)
        out[mode] = {m: round(sum(r[m] * r["queries"] for r in rows) / n, 4)
                     for m in ("recall@1", "recall@5", "recall@10", "mrr")} | {"queries": n}
        out[mode]["p50_ms_max"] = max(r["p50_ms"] for r in rows)
        out[mode]["p95_ms_max"] = max(r["p95_ms"] for r in rows)
    lines = sum(p["lines"] for p in packages.values())
    out["index_s_per_10k_lines"] = round(sum(p["index_s"] for p in packages.values()) / lines * 10_000, 3)
    out["embed_s_per_10k_lines"] = round(sum(p["embed_s"] for p in packages.values()) / lines * 10_000, 2)
    out["reindex_ms_max"] = max(p["reindex"]["reindex_ms"] for p in packages.values())
    with_embed = [p["reindex"]["reindex_with_embeddings_ms"] for p in packages.values()
                  if p["reindex"]["reindex_with_embeddings_ms"] is not None]
    out["reindex_with_embeddings_ms_max"] = max(with_embed) if with_embed else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", default="requests,click,httpx,starlette,jinja2")
    parser.add_argument("--held-out", default="starlette,jinja2",
                        help="packages the fusion weights were not chosen on (reported apart)")
    parser.add_argument("--tree-queries", type=int, default=20, help="queries sampled for tree search (0: none)")
    parser.add_argument("--tree-packages", default="requests", help="packages tree search runs on (it is slow)")
    parser.add_argument("--no-embeddings", action="store_true")
    parser.add_argument("--model", default=None, help="GGUF for tree search (default: SmolLM2-135M)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench-results/retrieval.json")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["overall"], indent=2))


if __name__ == "__main__":
    main()
