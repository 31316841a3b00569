"""make bench-lens: what the Geometric Lens buys, on problems disjoint from its training data.

Inputs: the labelled training data ``atlas lens bootstrap`` wrote (``<state>/lens/data/*.jsonl``), and atlas-bench
evaluation runs (HumanEval, MBPP's test split) with the ``public``, ``lens`` and ``lens-stop`` ablations
(``--eval-runs``; ``make bench-lens`` makes them first). Steps, each printed and written to the JSON:

1. the decontamination check: no evaluation problem among the training problems, by hash and by near-duplicate
   embedding (the run stops if there is one);
2. for each feature source (``embed``: the embedding server's vector of the code; ``main``: the main model's own
   mean-pooled embeddings of problem + code, from a llama.cpp embedding server of the same GGUF that this script
   starts): C(x) trained on the training data (validation split by task, as ``atlas lens train``), then its AUC
   on the evaluation runs' sampled candidates with a bootstrap 95 % interval over problems, and the first-pick
   gain among the candidates the public tests leave tied against a random pick; G(x)'s AUC for the problems no
   sample solves;
3. selected@1, sandbox runs and tokens of the three ablations, from the runs themselves (the live platform with
   the live weights), and the sandbox runs of ``lens-stop`` against ``public`` on the same (problem, seed) pairs;
4. the Lens's cost: the MLP's time per candidate, the embedding's, and training time for 10,000 samples.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_solve import Llama

from atlas_bench.access import local_urls, model_key
from atlas_bench.datasets import load
from atlas_bench.lens import labelled_rows
from atlas_bench.lens_eval import ablation_rows, first_pick, paired_runs, tie_sets
from atlas_bench.report import read_tasks
from atlas_lens import (
    EmbeddingClient,
    FeatureCache,
    LensModel,
    Sample,
    TrainConfig,
    auc,
    bootstrap_ci,
    contamination,
    featurise,
    from_labelled,
    lens_dir,
    train_energy,
)
from atlas_lens.data import embed_texts, problems, read_jsonl
from atlas_lens.features import code_text
from atlas_lens.train import train_difficulty
from atlas_llama.models import default_chat_model


def eval_data(run_dir: Path, data: Path) -> tuple[list[dict[str, Any]], list[Sample], dict[str, str]]:
    """An evaluation run's records, its sampled candidates as samples, and its problems' texts."""
    config = json.loads((run_dir / "results.json").read_text())["config"]
    extra = config.get("extra") or {}
    loaded = load(config["dataset"], data, split=extra.get("split") or "test")
    wanted = set(extra.get("problems") or [p.id for p in loaded.problems])
    chosen = [p for p in loaded.problems if p.id in wanted]
    records = list(read_tasks(run_dir).values())
    return records, from_labelled(labelled_rows(run_dir, chosen)), {p.id: p.prompt for p in chosen}


async def source_measures(source: str, embedder: EmbeddingClient, train: list[Sample], test: list[Sample],
                          records: list[dict[str, Any]], cache_dir: Path, rounds: int
                          ) -> tuple[dict[str, Any], LensModel, np.ndarray]:
    """The source's measures, and the model and training features they came from (the cost measures reuse
    them)."""
    cache = FeatureCache(cache_dir / f"{source}.jsonl")
    started = time.perf_counter()
    x_train = await featurise(train, source, embedder, cache)  # type: ignore[arg-type]
    x_test = await featurise(test, source, embedder, cache)  # type: ignore[arg-type]
    embed_s = time.perf_counter() - started
    y_train = np.array([s.passed for s in train], dtype=np.int64)
    y_test = np.array([s.passed for s in test], dtype=np.int64)
    model, report, _ = train_energy(x_train, y_train, [s.task for s in train], TrainConfig())
    scores = -model.energies(x_test)
    tasks = [s.task for s in test]
    low, high = bootstrap_ci(scores, y_test, tasks, rounds=rounds)
    problem_of = {s.task: s.problem for s in test}

    def energies(tie: Any) -> list[float]:
        texts = [code_text(source, problem_of[tie.task], c) for c in tie.codes]  # type: ignore[arg-type]
        return [float(e) for e in model.energies(np.stack([cache.vectors[_h(t)] for t in texts]))]

    ties = [t for t in tie_sets(records) if t.task in problem_of]
    out: dict[str, Any] = {
        "dim": int(x_train.shape[1]), "train": report.__dict__, "test_samples": len(test),
        "test_tasks": len(set(tasks)), "test_positives": int(y_test.sum()),
        "auc": round(auc(scores, y_test), 4), "auc_ci95": [round(low, 4), round(high, 4)],
        "first_pick": first_pick(ties, energies, rounds=rounds),
        "embed_s_per_candidate": round(embed_s / max(1, len(train) + len(test)), 4)}
    # G(x): trained on the training problems, judged on whether an evaluation problem's samples all fail
    ptasks, ptexts, hardness = problems(train)
    fitted = train_difficulty(await embed_texts(ptexts, embedder, cache), hardness, ptasks)
    if fitted is not None:
        net, norm, _ = fitted
        _, etexts, ehard = problems(test)
        with torch.inference_mode():
            predicted = net(norm(await embed_texts(etexts, embedder, cache))).numpy()
        out["difficulty_auc"] = round(auc(predicted, (ehard >= 1.0).astype(int)), 4)
    return out, model, x_train


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def cost(model: LensModel, x: np.ndarray, y: np.ndarray, tasks: list[str]) -> dict[str, Any]:
    """The MLP's time per candidate (scoring k=5 at once, and one), and training time on 10,000 samples made
    by resampling the training rows (timing only: they say nothing of accuracy)."""
    batch = x[:5]
    for _ in range(20):
        model.energies(batch)
    reps = 2000
    started = time.perf_counter()
    for _ in range(reps):
        model.energies(batch)
    per_candidate_ms = (time.perf_counter() - started) / reps / len(batch) * 1000
    started = time.perf_counter()
    for _ in range(reps):
        model.energies(x[:1])
    single_ms = (time.perf_counter() - started) / reps * 1000
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(x), 10_000)
    big_x = x[idx] + rng.normal(0, 0.01, (10_000, x.shape[1])).astype(np.float32)
    big_tasks = [f"{tasks[i]}#{n % 7}" for n, i in enumerate(idx)]
    started = time.perf_counter()
    _, report, _ = train_energy(big_x, y[idx], big_tasks, TrainConfig())
    return {"mlp_ms_per_candidate_batch5": round(per_candidate_ms, 4), "mlp_ms_single": round(single_ms, 4),
            "train_10k_s": round(time.perf_counter() - started, 2), "train_10k_epochs": report.epochs,
            "torch_threads": torch.get_num_threads()}


@dataclass
class Inputs:
    state: Path
    train: list[Sample]
    test: list[Sample]
    records: list[dict[str, Any]]
    eval_texts: dict[str, str]


def inputs(args: argparse.Namespace) -> Inputs:
    state = Path(args.state_dir or os.environ.get("ATLAS_STATE_DIR") or "~/.local/state/atlas").expanduser()
    data = Path(args.data_path or os.environ.get("ATLAS_DATA_DIR") or "datasets")
    train = [s for path in sorted((lens_dir(state) / "data").glob("bootstrap-*.jsonl"))
             for s in from_labelled(read_jsonl(path))]
    found = Inputs(state, train, [], [], {})
    for run_dir in args.eval_runs.split(","):
        r, t, texts = eval_data(Path(run_dir), data)
        found.records += r
        found.test += t
        found.eval_texts |= texts
    return found


async def main_async(args: argparse.Namespace, given: Inputs) -> dict[str, Any]:
    state, train, test, records, eval_texts = given.state, given.train, given.test, given.records, given.eval_texts
    result: dict[str, Any] = {"train": {"samples": len(train), "tasks": len({s.task for s in train}),
                                        "positives": sum(s.passed for s in train)},
                              "eval_runs": args.eval_runs.split(",")}
    urls, key = local_urls(state), model_key(state) or ""
    async with httpx.AsyncClient() as http:
        embed = EmbeddingClient(http, urls["embedding-server"], key, timeout_s=300)
        train_texts = {s.task: s.problem for s in train}
        check = await contamination(train_texts, eval_texts, embed)
        print("\n".join(check.lines()), flush=True)
        result["decontamination"] = {"training": check.training, "evaluation": check.evaluation,
                                     "exact": check.exact, "near": check.near, "clean": check.clean}
        if not check.clean:
            raise SystemExit("bench-lens: evaluation problems are in the training data; see above")
        cache_dir = Path(args.out).parent / "lens-features"
        result["sources"] = {}
        started = time.perf_counter()
        result["sources"]["embed"], model, x = await source_measures("embed", embed, train, test, records,
                                                                     cache_dir, args.rounds)
        print("embed:", json.dumps(result["sources"]["embed"]), flush=True)
        if "main" in args.sources.split(","):
            server = Llama(Path(args.out).parent, Path(args.model or default_chat_model() or ""), args.threads,
                           embedding=True)
            try:
                main = EmbeddingClient(http, server.url, server.key, timeout_s=600)
                result["sources"]["main"], _, _ = await source_measures("main", main, train, test, records,
                                                                        cache_dir, args.rounds)
                print("main:", json.dumps(result["sources"]["main"]), flush=True)
            finally:
                server.close()
        result["features_s"] = round(time.perf_counter() - started, 1)
    result["cost"] = cost(model, x, np.array([s.passed for s in train], dtype=np.int64), [s.task for s in train])
    result["ablations"] = {}
    stops = dict(zip(args.eval_runs.split(","), args.stop_runs.split(","), strict=True)) if args.stop_runs else {}
    for run_dir, summary, records in ablation_runs(args.eval_runs.split(","), stops):
        result["ablations"][summary["config"]["dataset"]] = {
            "rows": ablation_rows(summary, ("public", "lens", "lens-stop", "lens-stop-sequential")),
            "lens-stop_vs_public": paired_runs(records, "public", "lens-stop"),
            "lens_vs_public": paired_runs(records, "public", "lens"),
            "runs": [run_dir] + ([stops[run_dir]] if run_dir in stops else [])}
    best = max(result["sources"], key=lambda s: float(np.nan_to_num(result["sources"][s]["auc"])))
    result["kept_source"] = best
    return result


def ablation_runs(run_dirs: list[str], stops: dict[str, str]
                  ) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """Each evaluation run's summary and records. A run of the lens-stop ablation made separately on the same
    problems and seeds (``--stop-runs``) replaces the run's own; the run's own is kept as
    ``lens-stop-sequential`` (the one-at-a-time judging an earlier engine did)."""
    out = []
    for run_dir in run_dirs:
        summary = json.loads((Path(run_dir) / "results.json").read_text())
        records = read_tasks(Path(run_dir))
        if run_dir in stops:
            stop = json.loads((Path(stops[run_dir]) / "results.json").read_text())
            summary["ablations"]["lens-stop-sequential"] = summary["ablations"].pop("lens-stop", None)
            summary["ablations"]["lens-stop"] = stop["ablations"]["lens-stop"]
            for key, record in read_tasks(Path(stops[run_dir])).items():
                if key in records:
                    records[key]["ablations"]["lens-stop"] = record["ablations"]["lens-stop"]
        out.append((run_dir, summary, list(records.values())))
    return out


def table(result: dict[str, Any]) -> str:
    lines = ["| feature source | dim | test AUC (95% CI) | first-pick: Lens / random (gain, 95% CI) | tie sets "
             "(mixed) | G(x) AUC |", "|---|---|---|---|---|---|"]
    for name, s in result["sources"].items():
        fp = s["first_pick"]
        lines.append(f"| {name} | {s['dim']} | {s['auc']} ({s['auc_ci95'][0]}-{s['auc_ci95'][1]}) | "
                     f"{fp['lens_pick']} / {fp['random_pick']} ({fp['gain']}, {fp['gain_ci95']}) | "
                     f"{fp['tie_sets']} ({fp['mixed']}) | {s.get('difficulty_auc')} |")
    lines += ["", "| dataset | ablation | tasks | selected@1 (95% CI) | per seed | sandbox runs/task | tokens/task |",
              "|---|---|---|---|---|---|---|"]
    for dataset, a in result["ablations"].items():
        for r in a["rows"]:
            lines.append(f"| {dataset} | {r['ablation']} | {r['tasks']} | {r['selected@1']} ({r['ci95'][0]}-"
                         f"{r['ci95'][1]}) | {r['per_seed']} | {r['sandbox_runs_per_task']} | "
                         f"{r['tokens_per_task']} |")
    c = result["cost"]
    lines += ["", f"MLP {c['mlp_ms_per_candidate_batch5']} ms per candidate (k=5 batch), {c['mlp_ms_single']} ms "
              f"for one; training on 10,000 samples {c['train_10k_s']} s ({c['train_10k_epochs']} epochs)."]
    return "\n".join(lines)


def finite(value: Any) -> Any:
    """NaN (an AUC with no passing candidate to rank) as null: JSON has no NaN."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-runs", required=True, help="comma-separated atlas-bench --out directories")
    parser.add_argument("--stop-runs", help="comma-separated runs of the lens-stop ablation alone, one per "
                        "--eval-runs entry (same problems and seeds), replacing theirs")
    parser.add_argument("--state-dir")
    parser.add_argument("--data-path")
    parser.add_argument("--sources", default="embed,main")
    parser.add_argument("--model", help="the main model's GGUF (default: the bundled SmolLM2-135M)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--out", default="bench-results/lens.json")
    args = parser.parse_args()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(main_async(args, inputs(args)))
    Path(args.out).write_text(json.dumps(finite(result), indent=1))
    print(table(result))


if __name__ == "__main__":
    main()
