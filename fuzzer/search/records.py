"""What a search is given and what it gives back: a mode's tuning of it, what it cost to see a
finding for the first time, and its result (data only; the loop is engine.py)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hypothesis import Phase

from fuzzer.execute.scheduler import Limits
from fuzzer.findings import Finding
from fuzzer.search.conjecture import ExampleDatabase
from fuzzer.search.plan.pairs import Coverage

__all__ = ["Detection", "SearchResult", "Tuning"]


@dataclass(frozen=True)
class Tuning:
    """What a mode sets for one search beyond the run's ``Settings``, which give the
    search its budgets, seed, example database, schedule and limits (declared there once)."""

    shrink: bool = True
    stop_at_first: bool = False  # stop generating at the first finding (benchmarks)
    stop_kinds: frozenset[str] = frozenset()  # with stop_at_first: only findings of these kinds
    example_database: ExampleDatabase | None = None  # instead of example_db (a shared store)
    database_key: str = ""
    # a seed normally means a repeatable run, without the example database; the soak's
    # rotating seeds still replay and save through it
    example_db_with_seed: bool = False
    phases: tuple[Phase, ...] | None = None  # default: reuse, generate, shrink
    known: frozenset[str] = frozenset()  # fingerprints already reported: neither kept nor shrunk
    confirm: int = 3  # replays of each minimal example, to tell flaky ones
    free_running: bool = False  # stress mode: no gates, real timing (no shrinking)
    limits: Limits | None = None  # default: the settings' (Limits.of)


@dataclass(frozen=True)
class Detection:
    """What it cost to see a finding for the first time."""

    examples: int
    http_requests: int
    seconds: float


@dataclass
class SearchResult:
    findings: list[Finding]
    examples: int  # examples run while searching (before shrinking)
    calls: int  # all executions of the test function, shrinking included
    seconds: float
    stop_reason: str
    detections: dict[str, Detection]  # fingerprint -> first time seen
    unknown: Counter[str]
    shrink_seconds: float = 0.0
    seed: int | None = None  # the seed of the search's random generator
    search_seconds: float = 0.0  # the search alone (opening, reuse, generation)
    time_budget: float | None = None
    shrink_budget: float = 0.0
    max_examples: int = 0
    # how much of the pairs' plan ran (fuzzer/search/plan/pairs.py)
    coverage: Coverage | None = None
    # minimal examples that never reproduced in their confirmations: not findings
    unconfirmed: list[Finding] = field(default_factory=list)
    treated: Counter[str] = field(default_factory=Counter)  # e.g. rejections under contention
    # examples judged "fully", "partly" (modulo masks: values that vary between serial
    # runs) and "not"; and each mask with the number of examples that needed it
    judged: Counter[str] = field(default_factory=Counter)
    masked: Counter[str] = field(default_factory=Counter)

    @property
    def uncovered(self) -> list[str]:
        """What the run did not cover, one line each, for the summary to say first (and
        ``--require-coverage`` to fail on): less than half of its examples judged, or
        the pairs' plan not run to the end. "no race" means little after either."""
        lines = []
        judged = self.judged.get("fully", 0) + self.judged.get("partly", 0)
        if self.judged and self.examples and judged * 2 < self.examples:
            lines.append(
                f"only {judged} of {self.examples} examples judged "
                f"({round(100 * judged / self.examples)} %): see why below"
            )
        c = self.coverage
        if c is not None and not c.complete:
            shallow = (
                ""
                if c.decided is None or c.tried is None
                else f" ({c.tried} tried, {c.decided} at their moments of decision)"
            )
            lines.append(
                f"the pairs' plan did not run to the end: {c.explored} of {c.pairs} endpoint "
                f"pairs explored{shallow}, {c.ran} of {c.schedules} schedules, before the search "
                f"stopped ({self.stop_reason}); raise -n or --time-budget"
            )
        return lines

    @property
    def first(self) -> Detection | None:
        if not self.detections:
            return None
        return min(self.detections.values(), key=lambda d: d.examples)
