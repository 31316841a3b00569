"""``atlas-bench compare A B``: two runs side by side, on the tasks both finished, from their ``tasks.jsonl``
(and the options each ``results.json`` recorded): the selected@1 of every ablation both hold, the tasks that
flipped, the sandbox work per task, and every option the two runs differ in, so a change of model or code is not
mistaken for a change of settings (or the other way round)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from atlas_bench.report import read_tasks


def options(run: Path) -> dict[str, Any] | None:
    """What a run was asked to do, as ``compare`` shows it; None without a readable results.json. An option a run
    predates had its default then."""
    try:
        config = json.loads((run / "results.json").read_text(encoding="utf-8"))["config"]
        extra = config.get("extra") or {}
        return {
            "dataset": config.get("dataset"), "k": config.get("k"), "repair rounds": config.get("repair_rounds"),
            "max tokens": config.get("max_tokens"), "tests sent": config.get("send_tests", "public"),
            # only meaningful where the plans ablation ran
            "plans": config.get("plans", 2) if "plans" in (config.get("ablations") or []) else None,
            "test type": extra.get("testtype") or "all", "release": extra.get("release"),
            "split": extra.get("split"), "since": extra.get("since"), "until": extra.get("until"),
            "hidden tests are the public ones": bool(extra.get("public_only")),
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _sandbox(records: list[dict[str, Any]], name: str) -> str:
    """Sandbox calls per task (and runs, programs x tests, where the platform reported them)."""
    rows = [r["ablations"][name] for r in records]
    calls = [x["sandbox_calls"] for x in rows if x.get("sandbox_calls") is not None]
    runs = [x["sandbox_runs"] for x in rows if x.get("sandbox_runs") is not None]
    text = f"{sum(calls) / len(calls):.1f}" if calls else ""
    return text + (f" ({sum(runs) / len(runs):.1f} runs)" if runs else "")


def compare(a: Path, b: Path) -> str:
    """Markdown: each ablation both runs hold, on the tasks both finished, with the per-task flips. A directory
    without finished tasks is a FileNotFoundError."""
    ta, tb = read_tasks(a), read_tasks(b)
    for path, tasks in ((a, ta), (b, tb)):
        if not tasks:
            raise FileNotFoundError(f"{path} holds no finished tasks (tasks.jsonl): is it a run's --out directory?")
    common = [k for k in ta if k in tb]
    lines = [f"# {a} → {b}", "", f"{len(common)} task(s) in both runs ({len(ta)} in A, {len(tb)} in B).", ""]
    oa, ob = options(a), options(b)
    if oa is not None and ob is not None:
        differ = [key for key in oa if oa[key] != ob.get(key)]
        if differ:
            lines += ["The runs differ in these options:", "", "| option | A | B |", "|---|---|---|",
                      *(f"| {key} | {_shown(oa[key])} | {_shown(ob.get(key))} |" for key in differ), ""]
        else:
            lines += ["Both runs were asked the same (dataset, k, repair rounds, tokens, tests sent, plans, test "
                      "type, release).", ""]
    lines += ["| ablation | A selected@1 | B selected@1 | change | fail → pass | pass → fail | A sandbox calls / task "
              "| B sandbox calls / task |", "|---|---|---|---|---|---|---|---|"]
    flips: list[str] = []
    names = list(dict.fromkeys(n for k in common for n in ta[k]["ablations"] if n in tb[k]["ablations"]))
    for name in names:
        both = [k for k in common if name in ta[k]["ablations"] and name in tb[k]["ablations"]]
        pa = [bool(ta[k]["ablations"][name]["passed"]) for k in both]
        pb = [bool(tb[k]["ablations"][name]["passed"]) for k in both]
        gained = [k for k, x, y in zip(both, pa, pb, strict=True) if y and not x]
        lost = [k for k, x, y in zip(both, pa, pb, strict=True) if x and not y]
        ra, rb = sum(pa) / len(both), sum(pb) / len(both)
        lines.append(f"| {name} | {ra:.1%} | {rb:.1%} | {(rb - ra) * 100:+.1f} pts | {len(gained)} | {len(lost)} | "
                     f"{_sandbox([ta[k] for k in both], name)} | {_sandbox([tb[k] for k in both], name)} |")
        if gained or lost:
            flips.append(f"- **{name}**: fail → pass {', '.join(gained) or 'none'}; pass → fail "
                         f"{', '.join(lost) or 'none'}")
    if flips:
        lines += ["", "## Flips", "", *flips]
    return "\n".join(lines) + "\n"


def _shown(value: Any) -> str:
    return "—" if value is None else str(value)
