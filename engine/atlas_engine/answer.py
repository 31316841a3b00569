"""A solve's answer: the selected candidate, every candidate's verdicts, what was verified and how, in words."""

from __future__ import annotations

from atlas_engine.contracts import (
    CandidateOut,
    FailureOut,
    RouteOut,
    RouteStepOut,
    SolveResult,
    TestsUsed,
    Timings,
    Tokens,
)
from atlas_engine.routes import RouteDecision
from atlas_engine.select import Candidate, choose
from atlas_engine.solve import Solve


def result(solve: Solve) -> SolveResult:
    problem = solve.problem
    winner = choose(solve.candidates)
    scored = any(c.score is not None for c in solve.candidates)
    if winner is None:
        status = "no_code"
    elif not problem.tests:
        status = "unverified"
    else:
        status = "passed" if winner.public_ok else "failed"
    if status == "failed" and solve.stopped == "done":
        solve.stopped = "budget"  # nothing passed and the repair rounds are spent
    times = solve.timeline.totals()
    inputs = sum(1 for t in solve.self_tests if t.input is not None)
    return SolveResult(
        id=solve.id, code=winner.code if winner else None, language=problem.language,
        entry_point=problem.entry_point, verified=status == "passed", status=status, stopped=solve.stopped,
        summary=summary(solve, winner, status), winner=winner.index if winner else None,
        candidates=[_out(c) for c in solve.candidates],
        tests=TestsUsed(user=problem.count("user"), examples=problem.count("example"),
                        self_written=len(solve.self_tests) - inputs, generated_inputs=inputs),
        repair_rounds=solve.repair_rounds, plans=solve.plans,
        tokens=Tokens(prompt=solve.prompt_tokens, completion=solve.completion_tokens),
        usage={"prompt_tokens": solve.prompt_tokens, "completion_tokens": solve.completion_tokens,
               "total_tokens": solve.prompt_tokens + solve.completion_tokens},
        timings=Timings(**{k: round(v, 4) for k, v in times.items()}, llm_calls=solve.timeline.calls["llm"],
                        sandbox_calls=solve.timeline.calls["sandbox"], sandbox_runs=solve.timeline.runs),
        difficulty=solve.difficulty,
        # whether the scorer's order decided the pick (None: it scored nothing)
        lens_changed_pick=(choose(solve.candidates, scores=False) is not winner) if scored else None,
        route=_route(solve.decision, winner) if solve.decision is not None else None,
        citations=solve.retrieved.citations if solve.retrieved is not None else [],
    )


def _route(d: RouteDecision, winner: Candidate | None) -> RouteOut:
    return RouteOut(route=d.route, steps=[RouteStepOut(route=r.route, verified=r.verified, tokens=r.tokens,
                                                       sandbox_s=r.sandbox_s, complete=r.complete) for r in d.runs],
                    bin=d.bin, difficulty=d.difficulty, signals=d.signals, sampled=d.sampled,
                    posteriors={k: list(v) for k, v in d.posteriors.items()}, costs=d.costs, explored=d.explored,
                    patterns=d.patterns, cache_hit=winner is not None and winner.origin == "pattern")


def summary(solve: Solve, winner: Candidate | None, status: str) -> str:
    problem = solve.problem
    samples = [c for c in solve.candidates if c.origin == "sample"]
    distinct = len(solve.unique())
    passing = sum(1 for c in solve.unique() if c.public_ok)
    sources = [f"{n} {what}" for n, what in ((problem.count("user"), "given"),
                                            (problem.count("example"), "from the problem's examples")) if n]
    if winner is None:
        head = "no candidate contained code"
    elif status == "passed":
        head = f"passed all {winner.public_total} public test(s) ({', '.join(sources)})"
    elif status == "failed":
        head = f"NOT verified: passed {winner.public_passed}/{len(problem.tests)} public test(s) ({', '.join(sources)})"
        if winner.failure:
            head += f"; first failure: {winner.failure.get('test')}"
        elif winner.verdict == "untested":
            head += "; not run before the deadline"
    else:
        head = "NOT verified: the request had no tests and the problem no examples the engine could read"
    parts = [head, f"chosen from {len(samples)} candidate(s), {distinct} distinct, {passing} passing"]
    if solve.decision is not None and solve.decision.runs:
        ran = " -> ".join(r.route for r in solve.decision.runs)
        parts.append(f"route {ran}" + (" (a verified pattern answered)" if winner is not None
                                        and winner.origin == "pattern" else ""))
    if solve.self_tests and winner is not None and winner.agreement is not None:
        what = "test input(s)" if problem.reads_stdin else "self-written test(s)"
        cluster = f"{len(solve.self_tests)} {what}, agreement score {winner.agreement}"
        parts.append(cluster + (f", {winner.faults} crash(es) or time-out(s)" if winner.faults else ""))
    if solve.plans:
        parts.append(f"{len(solve.plans)} candidate(s) from distinct plans")
    if solve.repair_rounds:
        parts.append(f"{solve.repair_rounds} repair round(s)")
    if solve.stopped != "done":
        parts.append(f"stopped early ({solve.stopped})")
    return "; ".join(parts)


def _out(c: Candidate) -> CandidateOut:
    failure = FailureOut(**c.failure) if c.failure else None
    verdict = "no_code" if c.code is None else c.verdict
    plan = c.extra.get("plan")
    return CandidateOut(index=c.index, origin=c.origin, temperature=c.temperature, seed=c.seed, tokens=c.tokens,
                        duplicate_of=c.duplicate_of, verdict=verdict, public_passed=c.public_passed,
                        public_total=c.public_total, self_agreement=c.agreement, self_passed=c.self_passed,
                        faults=c.faults if c.outputs is not None else None,
                        plan=plan if isinstance(plan, int) else None, score=c.score, failure=failure, code=c.code)
