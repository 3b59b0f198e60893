"""Measurements for one target on one database: detection by controlled search and by
free-running stress (same run, same seeds), throughput and where the time goes, the
floor (the same requests ungated), the minimized scenario, and false positives on the
fixed twin. Every number here is measured in this run; nothing is a constant."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fuzzer.execute.runner import Controlled, Serial
from fuzzer.execute.scheduler import Limits
from fuzzer.findings import RACES, Finding
from fuzzer.model import Execution, Gene, Scenario
from fuzzer.modes.session import Session
from fuzzer.report.text import context_switches
from fuzzer.search.engine import Search, Tuning, evaluate
from fuzzer.search.plan.openings import openings
from fuzzer.search.survey import Survey, survey
from fuzzer.settings import Settings
from fuzzer.strategies import scenarios
from fuzzer.target.contract import Target


@dataclass
class Budget:
    seeds: int = 10
    controlled_examples: int = 300
    controlled_seconds: float = 20.0
    stress_batches: int = 250
    stress_seconds: float = 3.0
    fixed_examples: int = 200
    floor_requests: int = 100
    shrink_seconds: float = 20.0

    @classmethod
    def quick(cls) -> Budget:
        return cls(
            seeds=3,
            controlled_examples=100,
            controlled_seconds=5.0,
            stress_batches=60,
            stress_seconds=1.0,
            fixed_examples=40,
            floor_requests=30,
            shrink_seconds=5.0,
        )


@dataclass
class Attempt:
    """One seed's search for the first detection of an expected finding."""

    found: bool
    examples: int
    requests: int
    seconds: float
    replayed: str = ""  # stress: whether the derived schedule reproduced it under control

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class TargetResult:
    target: str
    database: str
    expected: list[str]
    controlled: list[Attempt] = field(default_factory=list)
    stress: list[Attempt] = field(default_factory=list)
    stress_concurrency: int = 2
    minimized: dict[str, Any] = field(default_factory=dict)
    throughput: dict[str, Any] = field(default_factory=dict)
    floor: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "database": self.database,
            "expected": self.expected,
            "controlled": summary(self.controlled),
            "stress": {**summary(self.stress), "concurrency": self.stress_concurrency},
            "request_ratio": ratio(self.stress, self.controlled),
            "minimized": self.minimized,
            "throughput": self.throughput,
            "floor": self.floor,
            "notes": self.notes,
            "per_seed": {
                "controlled": [a.to_json() for a in self.controlled],
                "stress": [a.to_json() for a in self.stress],
            },
        }


def summary(attempts: Sequence[Attempt]) -> dict[str, Any]:
    """Median and max over seeds; a seed that did not find it counts as infinitely late."""
    found = [a for a in attempts if a.found]
    data: dict[str, Any] = {"seeds": len(attempts), "found": len(found)}
    for name in ("examples", "requests", "seconds"):
        values = [getattr(a, name) if a.found else float("inf") for a in attempts]
        median = statistics.median(values) if values else float("inf")
        data[name] = {
            "median": None if median == float("inf") else round(median, 3),
            "max": None
            if not found or len(found) < len(attempts)
            else round(max(getattr(a, name) for a in found), 3),
            "spent_when_not_found": round(
                max((getattr(a, name) for a in attempts if not a.found), default=0), 3
            ),
        }
    replays = [a.replayed for a in attempts if a.found and a.replayed]
    if replays:
        data["replayed"] = f"{sum(r.startswith('reproduced') for r in replays)}/{len(replays)}"
    return data


def ratio(stress: Sequence[Attempt], controlled: Sequence[Attempt]) -> dict[str, Any]:
    """Median HTTP requests to the first detection, stress over controlled. When stress
    did not find it in most seeds, the ratio is a lower bound (what it spent)."""
    c = summary(controlled)["requests"]["median"]
    s = summary(stress)
    if not c:
        return {"value": None, "bound": None}
    if s["requests"]["median"] is not None:
        return {"value": round(s["requests"]["median"] / c, 1), "bound": None}
    spent = s["requests"]["spent_when_not_found"]
    return {"value": None, "bound": round(spent / c, 1) if spent else None}


def detect(
    session: Session,
    target: Target,
    prefer: Sequence[str],
    traces: dict[str, Any],
    seed: int,
    *,
    free: bool,
    examples: int,
    seconds: float,
    opening: Sequence[Scenario] = (),
) -> Attempt:
    """Search until a finding of an expected kind (or the budget) and say what it cost."""
    assert session.oracle is not None and session.harness is not None
    harness = session.harness
    session.oracle.forget()  # each seed pays for its own serial references
    settings = Settings(
        max_examples=examples,
        time_budget=seconds,
        seed=seed,
        example_db=None,
        schedule="random" if free else "conflict",
    )
    tuning = Tuning(
        shrink=False,
        stop_at_first=True,
        stop_kinds=frozenset(target.expected_findings),
        confirm=1 if free else 0,
        free_running=free,
        limits=session.limits,
    )
    before = harness.costs.http_requests
    search = Search(
        scenarios(target, schedule=settings.schedule, prefer=prefer),
        session.execute,
        session.oracle,
        settings,
        tuning,
        http_requests=lambda: harness.costs.http_requests - before,
        traces=traces,
        seeds=() if free else opening,
    )
    started = time.monotonic()
    result = search.run()
    wanted = {
        fp: d
        for fp, d in result.detections.items()
        if fp.split(":", 1)[0] in target.expected_findings
    }
    if not wanted:
        return Attempt(
            False, result.examples, harness.costs.http_requests - before, time.monotonic() - started
        )
    first = min(wanted.values(), key=lambda d: d.examples)
    replayed = ""
    if free:
        expected = [f for f in result.findings if f.kind in target.expected_findings]
        replayed = str(expected[0].extra.get("replay", "")) if expected else ""
    return Attempt(True, first.examples, first.http_requests, first.seconds, replayed)


def stress_target(target: Target, concurrency: int) -> Target:
    load = replace(
        target,
        min_requests=concurrency,
        max_requests=concurrency,
        threads=max(target.threads, concurrency + 2),
    )
    object.__setattr__(load, "reference", target.reference)
    return load


def measure_buggy(
    target: Target, db: str, budget: Budget, progress: Callable[[str], None]
) -> TargetResult:
    result = TargetResult(target.reference, db, sorted(target.expected_findings))

    def work(s: Session) -> None:
        surveyed = _survey(s, target)
        prefer, traces = surveyed.writers(), {e.endpoint: e.trace for e in surveyed.endpoints}
        opening = openings(surveyed, target)
        minimal = _minimize(s, target, prefer, traces, budget, opening)
        if minimal is not None:
            result.minimized = {
                "requests": len(minimal.scenario.requests),
                "switches": context_switches(minimal.execution.trace),
                "kind": minimal.kind,
                "replayed": _replay(s, minimal, 5),
            }
            result.stress_concurrency = max(2, len(minimal.scenario.requests))
        for seed in range(budget.seeds):
            progress(f"{target.reference} on {db}: controlled seed {seed}")
            result.controlled.append(
                detect(
                    s,
                    target,
                    prefer,
                    traces,
                    seed,
                    free=False,
                    examples=budget.controlled_examples,
                    seconds=budget.controlled_seconds,
                    opening=opening,
                )
            )

    Session(target, db=db, limits=Limits()).run(work)
    if not RACES & target.expected_findings:
        result.notes.append("not a race: no stress comparison")
        return result
    load = stress_target(target, result.stress_concurrency)

    def stress_work(s: Session) -> None:
        surveyed = _survey(s, load)
        prefer = surveyed.writers()
        for seed in range(budget.seeds):
            progress(f"{target.reference} on {db}: stress seed {seed}")
            result.stress.append(
                detect(
                    s,
                    load,
                    prefer,
                    {},
                    seed,
                    free=True,
                    examples=budget.stress_batches,
                    seconds=budget.stress_seconds,
                )
            )

    Session(load, db=db, limits=Limits()).run(stress_work)
    return result


def measure_fixed(
    fixed: Target, db: str, budget: Budget, result: TargetResult, progress: Callable[[str], None]
) -> None:
    """Throughput and where the time goes on the fixed twin (no findings to stop for),
    its false positives, and the floor: the same requests ungated."""

    def work(s: Session) -> None:
        assert s.oracle is not None and s.harness is not None
        surveyed = _survey(s, fixed)
        progress(f"{fixed.reference} on {db}: floor")
        result.floor = _floor(s, surveyed, budget.floor_requests)
        progress(f"{fixed.reference} on {db}: {budget.fixed_examples} examples")
        harness = s.harness
        costs_before = _costs(harness.costs)
        references_before = s.oracle.stats.references
        settings = Settings(max_examples=budget.fixed_examples, seed=0, example_db=None)
        search = Search(
            scenarios(fixed, prefer=surveyed.writers()),
            s.execute,
            s.oracle,
            settings,
            Tuning(shrink=False, confirm=0, limits=s.limits),
            traces={e.endpoint: e.trace for e in surveyed.endpoints},
        )
        started = time.perf_counter()
        outcome = search.run()
        elapsed = time.perf_counter() - started
        costs = {k: v - costs_before[k] for k, v in _costs(harness.costs).items()}
        accounted = sum(
            search.seconds[k] for k in ("executions", "references", "oracle", "classify")
        )
        per_example = elapsed / max(outcome.examples, 1)
        result.throughput = {
            "target": fixed.reference,
            "examples": outcome.examples,
            "examples_per_second": round(outcome.examples / elapsed, 1),
            "ms_per_example": round(per_example * 1000, 2),
            "false_positives": len(outcome.findings),
            "false_positive_kinds": sorted({f.kind for f in outcome.findings}),
            "unknown_verdicts": sum(outcome.unknown.values()),
            "executions_per_example": round(costs["executions"] / max(outcome.examples, 1), 2),
            "reference_runs": s.oracle.stats.references - references_before,
            "ms_per_example_by_part": {
                "reset": _ms(costs["reset"], outcome.examples),
                "http requests (gated and serial)": _ms(costs["requests"], outcome.examples),
                "read final rows": _ms(costs["read"], outcome.examples),
                "controlled executions": _ms(search.seconds["executions"], outcome.examples),
                "serial references": _ms(search.seconds["references"], outcome.examples),
                "oracle (compare)": _ms(search.seconds["oracle"], outcome.examples),
                "classify": _ms(search.seconds["classify"], outcome.examples),
                "Hypothesis and the rest": _ms(elapsed - accounted, outcome.examples),
            },
            "grants_per_example": round(costs["grants"] / max(outcome.examples, 1), 1),
            "blocked": {
                "db": costs["db_blocks"],
                "python": costs["python_blocks"],
                "sqlite model": costs["model_blocks"],
                "timeouts": costs["timeouts"],
            },
        }
        floor_ms = result.floor.get("two_requests_and_reset_ms")
        if floor_ms:
            result.throughput["times_the_floor"] = round(per_example * 1000 / floor_ms, 2)

    Session(fixed, db=db, limits=Limits()).run(work)


def _survey(s: Session, target: Target) -> Survey:
    return survey(target, lambda sc: s.execute(sc, Serial(tuple(range(len(sc.requests))))))


def _minimize(
    s: Session,
    target: Target,
    prefer: Sequence[str],
    traces: dict[str, Any],
    budget: Budget,
    opening: Sequence[Scenario],
) -> Finding | None:
    """A normal search (with shrinking) for the minimized scenario's size."""
    assert s.oracle is not None
    settings = Settings(
        max_examples=budget.controlled_examples,
        time_budget=budget.controlled_seconds,
        seed=0,
        shrink_budget=budget.shrink_seconds,
        example_db=None,
    )
    tuning = Tuning(
        stop_at_first=True,
        stop_kinds=frozenset(target.expected_findings),
        confirm=0,
        limits=s.limits,
    )
    outcome = Search(
        scenarios(target, prefer=prefer),
        s.execute,
        s.oracle,
        settings,
        tuning,
        traces=traces,
        seeds=opening,
    ).run()
    expected = [f for f in outcome.findings if f.kind in target.expected_findings]
    return expected[0] if expected else None


def _replay(s: Session, finding: Finding, times: int) -> str:
    assert s.oracle is not None
    hits = sum(
        any(
            f.fingerprint == finding.fingerprint
            for f in evaluate(finding.scenario, s.execute, s.oracle, Controlled(s.limits))[2]
        )
        for _ in range(times)
    )
    return f"{hits}/{times}"


def _floor(s: Session, surveyed: Survey, n: int) -> dict[str, Any]:
    """The same requests over the same server with no gates and no oracle: serial
    requests per second, and the cost of two of them plus the reset their writes need
    (of the tables they wrote, as the search restores; reading the final rows left out).
    Each endpoint sends the request the survey saw write, if any, like the search's."""
    assert s.harness is not None
    harness = s.harness
    requests = [e.writer or e.request for e in surveyed.endpoints]
    one = [Scenario((r,), (Gene(),)) for r in requests]
    started = time.perf_counter()
    for k in range(n):
        _run(s, one[k % len(one)], (0,))
    single = (time.perf_counter() - started) / n
    pairs = [Scenario((a, b), (Gene(), Gene())) for a in requests for b in requests]
    m = max(n // 2, len(pairs))
    read_before = harness.costs.read
    started = time.perf_counter()
    for k in range(m):
        _run(s, pairs[k % len(pairs)], (0, 1))
    pair = (time.perf_counter() - started - (harness.costs.read - read_before)) / m
    return {
        "serial_requests_per_second": round(1 / single, 1),
        "two_requests_and_reset_ms": round(pair * 1000, 2),
    }


def _run(s: Session, scenario: Scenario, order: tuple[int, ...]) -> Execution:
    return s.execute(scenario, Serial(order))


def _costs(costs: Any) -> dict[str, float]:
    data = {
        "executions": costs.executions,
        "reset": costs.reset,
        "requests": costs.requests,
        "read": costs.read,
        "http": costs.http_requests,
    }
    data.update(vars(costs.scheduler))
    return data


def _ms(seconds: float, examples: int) -> float:
    return round(seconds * 1000 / max(examples, 1), 2)
