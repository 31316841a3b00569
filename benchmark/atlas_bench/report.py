"""What a run's per-task records add up to: ``results.json``, ``report.md`` and the PNG plots (two runs are
compared in compare.py). Everything here reads ``tasks.jsonl`` (or its archived ``tasks.jsonl.gz``) only, so a
report can be rebuilt at any time (``atlas-bench report DIR``) and two runs compared long after they ended.

Metrics per ablation, over the problems (seeds averaged per problem first, so a problem run with three seeds
weighs as much as one run with one):

- **selected@1**: the one answer the pipeline returned passed the hidden tests.
- **random pick**: a uniformly random one of the k sampled candidates passes, c/n (the unbiased pass@1
  estimator over the samples; repairs are not independent samples and are left out).
- **pass@k**: at least one of k samples passes (Chen et al.'s unbiased estimator, the seeds' samples pooled):
  coverage, the ceiling of selecting among the samples (repairs are not samples, so the repair ablation can
  exceed it).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from atlas_bench.metrics import bootstrap, pass_at_k

TASKS_FILE = "tasks.jsonl"
SEGMENTS_FILE = "segments.jsonl"  # one line per run segment (a resumed run has several): wall clock and tasks


def task_key(problem_id: str, seed: int) -> str:
    return f"{problem_id}#{seed}"


def _json_lines(path: Path) -> list[dict[str, Any]]:
    """Every whole JSON line of ``path`` (a line torn by a kill mid-write is skipped), after those of an archived
    ``path.gz`` beside it: a run kept compressed is read as it is, and resuming it appends to ``path``."""
    archived = path.with_name(path.name + ".gz")
    texts = [gzip.decompress(archived.read_bytes()).decode("utf-8")] if archived.is_file() else []
    if path.is_file():
        texts.append(path.read_text(encoding="utf-8"))
    rows = []
    for line in "\n".join(texts).splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def read_tasks(out: Path) -> dict[str, dict[str, Any]]:
    """The finished tasks in ``out``, keyed ``id#seed``."""
    return {task_key(r["id"], r["seed"]): r for r in _json_lines(out / TASKS_FILE)}


def read_segments(out: Path) -> list[dict[str, Any]]:
    return _json_lines(out / SEGMENTS_FILE)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _per_problem(rows: list[tuple[str, float]]) -> list[float]:
    """Each problem's mean over its seeds, in first-seen order."""
    by_problem: dict[str, list[float]] = {}
    for problem, value in rows:
        by_problem.setdefault(problem, []).append(value)
    return [sum(v) / len(v) for v in by_problem.values()]


def _rate(rows: list[tuple[str, float]]) -> dict[str, Any]:
    values = _per_problem(rows)
    return {"rate": _mean(values), "ci95": bootstrap(values)}


# Easiest first: the datasets' own labels, then the empirical buckets.
DIFFICULTY_ORDER = ("easy", "medium", "hard", "every sample solves", "some samples solve", "no sample solves",
                    "unknown")


def _ordered(buckets: dict[str, Any]) -> list[str]:
    return sorted(buckets, key=lambda b: (DIFFICULTY_ORDER.index(b) if b in DIFFICULTY_ORDER else 99, b))


def _bucket(record: dict[str, Any], widest: str | None) -> str:
    """The dataset's own difficulty when it has one; otherwise an empirical one: how many of the widest
    ablation's samples solve the problem (none / some / all)."""
    if record.get("difficulty"):
        return str(record["difficulty"])
    samples = (record["ablations"].get(widest) or {}).get("samples_passed") if widest else None
    if not samples:
        return "unknown"
    solved = sum(samples)
    return "no sample solves" if solved == 0 else ("every sample solves" if solved == len(samples)
                                                  else "some samples solve")


def summarise(records: list[dict[str, Any]], config: dict[str, Any], segments: list[dict[str, Any]],
              environment: dict[str, Any] | None = None) -> dict[str, Any]:
    ablations: dict[str, Any] = {}
    names = [a for a in config["ablations"] if any(a in r["ablations"] for r in records)]
    # The empirical difficulty comes from independent samples where a run has them: plan-written ones are not.
    widest = next((a for a in reversed(names) if a not in ("baseline", "plans")), None) or next(
        (a for a in reversed(names) if a != "baseline"), names[0] if names else None)
    for name in names:
        rows = [(r["id"], r["seed"], r["ablations"][name]) for r in records if name in r["ablations"]]
        selected = _rate([(p, 1.0 if x["passed"] else 0.0) for p, _, x in rows])
        entry: dict[str, Any] = {
            "tasks": len(rows), "problems": len({p for p, _, _ in rows}),
            "selected@1": selected["rate"], "ci95": selected["ci95"],
            "public_verified": sum(1 for _, _, x in rows if x["public_verified"]),
            "tokens_per_task": _mean([x["tokens"] for _, _, x in rows]),
            "wall_s_per_task": _mean([x["wall_s"] for _, _, x in rows]),
            "sandbox_calls_per_task": _mean([x["sandbox_calls"] for _, _, x in rows
                                             if x.get("sandbox_calls") is not None]),
            # None where the platform did not report it (before it did)
            "sandbox_runs_per_task": _mean([x["sandbox_runs"] for _, _, x in rows
                                            if x.get("sandbox_runs") is not None]),
            "llm_calls_per_task": _mean([x["llm_calls"] for _, _, x in rows if x.get("llm_calls") is not None]),
            "per_seed": {str(s): _mean([1.0 if x["passed"] else 0.0 for _, seed, x in rows if seed == s])
                         for s in sorted({seed for _, seed, _ in rows})},
        }
        # The samples of each problem's seeds, pooled. A record without the field predates sample scoring and is
        # left out (the count says how many are in); an empty list is a solve that produced no sample: 0 of 0.
        pooled: dict[str, list[int]] = {}
        for p, _, x in rows:
            if "samples_passed" in x:
                n_c = pooled.setdefault(p, [0, 0])
                n_c[0] += len(x["samples_passed"])
                n_c[1] += sum(bool(v) for v in x["samples_passed"])
        if pooled:
            k = 1 if name == "baseline" else int(config["k"])
            values = list(pooled.values())
            random_pick = [c / n if n else 0.0 for n, c in values]
            coverage = [pass_at_k(n, c, min(k, n)) if n else 0.0 for n, c in values]
            entry |= {"k": k, "sampled_problems": len(values), "short_of_k": sum(1 for n, _ in values if n < k),
                      "random_pick": _mean(random_pick), "random_pick_ci95": bootstrap(random_pick),
                      "pass@k": _mean(coverage), "pass@k_ci95": bootstrap(coverage)}
        ablations[name] = entry
    difficulty: dict[str, dict[str, Any]] = {}
    for r in records:
        bucket = difficulty.setdefault(_bucket(r, widest), {"tasks": {a: 0 for a in names},
                                                             "passed": {a: 0 for a in names}})
        for a in names:
            if a in r["ablations"]:
                bucket["tasks"][a] += 1
                bucket["passed"][a] += bool(r["ablations"][a]["passed"])
    wall = sum(max(0.0, s["ended"] - s["started"]) for s in segments)
    ran = sum(s["tasks"] for s in segments)
    return {
        "config": config, "environment": environment or {}, "tasks": len(records),
        "problems": len({r["id"] for r in records}),
        "ablations": ablations, "difficulty": difficulty,
        "run": {"segments": len(segments), "wall_clock_s": round(wall, 1), "tasks_run": ran,
                # by wall clock over every segment, so time between tasks counts
                "tasks_per_hour": round(ran * 3600 / wall, 1) if ran and wall else None,
                "wall_s_per_task": round(wall / ran, 2) if ran and wall else None},
    }


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _num(value: float | None, places: int) -> str:
    return "" if value is None else f"{value:,.{places}f}"


def _ci(ci: list[float] | None) -> str:
    return "" if not ci else f"{ci[0]:.1%} to {ci[1]:.1%}"


def _setup(config: dict[str, Any]) -> str:
    """The run's options in a sentence: what the platform was sent, and which problems."""
    extra = config.get("extra") or {}
    text = (f"k = {config['k']}, repair rounds {config['repair_rounds']}, {config['max_tokens']} tokens per "
            "candidate")
    if "plans" in config["ablations"]:
        text += f", {config.get('plans')} of the k candidates written from distinct plans (plans ablation)"
    if extra.get("testtype"):
        text += f"; only the problems with {extra['testtype']} tests"
    if config.get("send_tests", "public") == "none":
        return text + ". The platform saw the prompt only (no tests sent); each answer was scored once on the " \
            "hidden tests."
    if config.get("send_tests", "public") == "stripped":
        return text + ". The platform saw the prompt without its worked samples and no tests; each answer was " \
            "scored once on the hidden tests."
    return text + ". The platform saw the prompt and the public tests only; each answer was scored once on the " \
        "hidden tests."


def _public_only(config: dict[str, Any]) -> list[str]:
    if not (config.get("extra") or {}).get("public_only"):
        return []
    if config.get("send_tests", "public") == "stripped":
        return ["**These hidden tests are the public ones** (LiveCodeBench's offline public-only copy): the samples "
                "the statement shows, removed from the prompt, so the platform never saw them.", ""]
    if config.get("send_tests", "public") == "none":
        return ["**These hidden tests are the public ones** (LiveCodeBench's offline public-only copy). None was "
                "sent as a test, but they are the samples the statement shows, so the model read them. Use the full "
                "release files for the private tests.", ""]
    return ["**These hidden tests are the public ones** (LiveCodeBench's offline public-only copy): the platform "
            "saw every test that scored it. Use the full release files for real numbers.", ""]


def report(summary: dict[str, Any]) -> str:
    config, run = summary["config"], summary["run"]
    runs = any(a.get("sandbox_runs_per_task") is not None for a in summary["ablations"].values())
    lines = [f"# atlas-bench: {config['dataset']}", "",
             f"{summary['problems']} problem(s), {summary['tasks']} task(s) (seeds {list(config['seeds'])}); "
             + _setup(config), "", *_public_only(config),
             "| ablation | tasks | selected@1 | 95% CI | random pick | pass@k | passed public tests | tokens / task "
             "| wall s / task | sandbox calls / task |" + (" sandbox runs / task |" if runs else ""),
             "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if runs else "")]
    for name, a in summary["ablations"].items():
        coverage = f"{_pct(a['pass@k'])} (k={a['k']})" if "pass@k" in a else ""
        lines.append(f"| {name} | {a['tasks']} | {_pct(a['selected@1'])} | {_ci(a['ci95'])} | "
                     f"{_pct(a.get('random_pick'))} | {coverage} | {a['public_verified']} | "
                     f"{_num(a['tokens_per_task'], 0)} | {_num(a['wall_s_per_task'], 1)} | "
                     f"{_num(a['sandbox_calls_per_task'], 1)} |"
                     + (f" {_num(a.get('sandbox_runs_per_task'), 1)} |" if runs else ""))
    lines += ["", "random pick: the chance that a uniformly random one of the request's sampled candidates passes "
              "(c/n); pass@k: at least one of k samples passes (unbiased estimator), the ceiling of selecting among "
              "the samples (repairs are not samples, so the repair ablation can exceed it). Both per problem, the "
              "seeds' samples pooled." + (" In the plans ablation the samples include the plan-written candidates, "
                                          "which are not independent draws." if "plans" in summary["ablations"]
                                          else "")]
    short = {n: a for n, a in summary["ablations"].items() if a.get("short_of_k") or
             ("sampled_problems" in a and a["sampled_problems"] < a["problems"])}
    for name, a in short.items():
        lines.append(f"- {name}: {a['sampled_problems']} of {a['problems']} problem(s) have scored samples; "
                     f"{a['short_of_k']} have fewer than k (a solve cut short), estimated at their own count.")
    seeds = [str(s) for s in config["seeds"]]
    if len(seeds) > 1:
        lines += ["", "## Per seed", "", "| ablation | " + " | ".join(f"seed {s}" for s in seeds) + " |",
                  "|---|" + "---|" * len(seeds)]
        for name, a in summary["ablations"].items():
            lines.append(f"| {name} | " + " | ".join(_pct(a["per_seed"].get(s)) for s in seeds) + " |")
    if summary["difficulty"]:
        names = list(summary["ablations"])
        lines += ["", "## By difficulty", "",
                  "The dataset's own difficulty where it has one; otherwise how many of the widest ablation's "
                  "samples solve the problem. selected@1 (tasks).", "",
                  "| difficulty | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for bucket in _ordered(summary["difficulty"]):
            d = summary["difficulty"][bucket]
            lines.append(f"| {bucket} | " + " | ".join(
                f"{_pct(d['passed'][a] / d['tasks'][a])} ({d['tasks'][a]})" if d["tasks"][a] else "" for a in names)
                + " |")
    lines += ["", "## Run", ""]
    if run["tasks_per_hour"]:
        lines.append(f"- Wall clock {run['wall_clock_s']:,.0f} s over {run['segments']} segment(s), "
                     f"{run['tasks_run']} task(s) run: {run['tasks_per_hour']:,.1f} tasks/hour, "
                     f"{run['wall_s_per_task']} s per task (every ablation of a task, time between tasks included).")
    else:
        lines.append("- No finished run segment is recorded (the run was killed, or nothing was left to run).")
    env = summary["environment"]
    if env.get("model"):
        lines.append(f"- Model: {env['model'].get('file')} (sha256 {env['model'].get('sha256')}).")
    if env.get("versions"):
        lines.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".")
    for path, digest in (config.get("extra") or {}).get("files", {}).items():
        lines.append(f"- Dataset file {path}: sha256 {digest}.")
    if summary.get("unfinished"):
        lines += ["", "Not counted (the platform failed, or the sandbox could not score); a re-run retries them:", "",
                  *(f"- {line}" for line in summary["unfinished"])]
    return "\n".join(lines) + "\n"


def _save(fig: Any, ax: Any, path: Path, ylabel: str, title: str) -> Path:
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot(summary: dict[str, Any], out: Path) -> list[Path]:
    """pass_rates.png (selected@1, random pick and pass@k per ablation with 95% CIs), tokens_vs_pass.png and
    difficulty.png. Agg: no display needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ablations = summary["ablations"]
    names = list(ablations)
    written: list[Path] = []
    if not names:
        return written

    fig, ax = plt.subplots(figsize=(7, 4))
    series = [("selected@1", "ci95"), ("random_pick", "random_pick_ci95"), ("pass@k", "pass@k_ci95")]
    width = 0.8 / len(series)
    for i, (metric, ci_key) in enumerate(series):
        xs: list[float] = []
        ys: list[float] = []
        errs: list[list[float]] = [[], []]
        for j, name in enumerate(names):
            value = ablations[name].get(metric)
            if value is None:
                continue
            low, high = ablations[name].get(ci_key) or [value, value]
            xs.append(j + (i - 1) * width)
            ys.append(value * 100)
            errs[0].append(max(0.0, value - low) * 100)
            errs[1].append(max(0.0, high - value) * 100)
        if xs:
            ax.bar(xs, ys, width, yerr=errs, capsize=3, label=metric.replace("_", " "))
    ax.set_xticks(range(len(names)), names)
    written.append(_save(fig, ax, out / "pass_rates.png", "pass rate on hidden tests (%)",
                         f"{summary['config']['dataset']}: {summary['problems']} problems, 95% CI"))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in names:
        a = ablations[name]
        ax.errorbar([a["tokens_per_task"]], [a["selected@1"] * 100],
                    yerr=[[(a["selected@1"] - a["ci95"][0]) * 100], [(a["ci95"][1] - a["selected@1"]) * 100]],
                    fmt="o", capsize=3, label=name)
    ax.set_xlabel("tokens per task")
    written.append(_save(fig, ax, out / "tokens_vs_pass.png", "selected@1 (%)", "cost against pass rate"))
    plt.close(fig)

    buckets = _ordered(summary["difficulty"])
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        ys = [d["passed"][name] / d["tasks"][name] * 100 if d["tasks"][name] else 0.0
              for d in (summary["difficulty"][b] for b in buckets)]
        ax.bar([j + (i - (len(names) - 1) / 2) * width for j in range(len(buckets))], ys, width, label=name)
    ax.set_xticks(range(len(buckets)),
                  [f"{b}\n({max(summary['difficulty'][b]['tasks'].values())})" for b in buckets], fontsize=8)
    written.append(_save(fig, ax, out / "difficulty.png", "selected@1 (%)", "by difficulty (tasks in brackets)"))
    plt.close(fig)
    return written


def write(out: Path, summary: dict[str, Any]) -> None:
    """results.json, report.md and the plots, each replaced whole (written aside, then renamed)."""
    for name, text in (("results.json", json.dumps(summary, indent=2) + "\n"), ("report.md", report(summary))):
        aside = out / f".{name}.tmp"
        aside.write_text(text, encoding="utf-8")
        aside.replace(out / name)
    plot(summary, out)
