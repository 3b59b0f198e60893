"""What a soak reports (fuzzer/modes/nightly/soak.py): its rounds, the vitals at setup, start and
end with the memory's trend, the campaign's coverage, and its summary for the manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fuzzer.modes.logsummary import AppLogSummary
from fuzzer.modes.nightly.vitals import Trend, Vitals
from fuzzer.report.writer import Written
from fuzzer.search.plan.pairs import Coverage

__all__ = ["Round", "SoakReport", "interrupted_summary"]


@dataclass(frozen=True)
class Round:
    seed: int | None  # None: the replay of known failures
    examples: int
    seconds: float
    stop_reason: str
    findings: int  # new distinct findings it reported
    after: Vitals  # memory and connections when it ended

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "examples": self.examples,
            "seconds": round(self.seconds, 2),
            "stop_reason": self.stop_reason,
            "findings": self.findings,
            "after": self.after.to_json(),
        }


@dataclass
class SoakReport:
    target: str
    database: dict[str, Any]
    duration: float
    seconds: float
    rounds: list[Round]
    start: Vitals  # after the warm-up
    end: Vitals
    setup: Vitals  # before the first example
    warmup: int  # examples run before "start" was measured
    written: list[Written] = field(default_factory=list)
    memory: Trend = field(default_factory=Trend)  # sampled through the soak
    directory: str = ""
    stop_reason: str = ""
    references: int = 0
    campaign: str = ""  # where the campaign's state lives
    workers: list[dict[str, Any]] = field(default_factory=list)  # what each contributed
    coverage: tuple[int, int] = (0, 0)  # opening units done, of all
    complete_after: float | None = None  # seconds until the opening and the plan were done
    pairs: Coverage | None = None  # the pairs' plan, as far as a round took it
    app_log: AppLogSummary | None = None  # what the app logged meanwhile (app.log)

    @property
    def examples(self) -> int:
        return sum(r.examples for r in self.rounds)

    @property
    def replayed(self) -> int:
        """Known failures found again by replaying them first."""
        return sum(r.findings for r in self.rounds if r.seed is None)

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.rounds if r.seed is not None]

    @property
    def exit_code(self) -> int:
        return 1 if self.written else 0

    def summary(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "seconds": round(self.seconds, 2),
            "stop_reason": self.stop_reason,
            "seed": self.seeds[0] if self.seeds else None,
            "duration": self.duration,
            "replayed": self.replayed,
            "rounds": [r.to_json() for r in self.rounds],
            "references": self.references,
            "campaign": self.campaign,
            "workers": self.workers,
            "coverage": {"done": self.coverage[0], "units": self.coverage[1]},
            "complete_after": self.complete_after,
            "pairs": self.pairs.to_json() if self.pairs is not None else None,
            "vitals": {
                "setup": self.setup.to_json(),
                "start": {**self.start.to_json(), "after_examples": self.warmup},
                "end": self.end.to_json(),
                "memory": self.memory.to_json(),
            },
            "state": "finished",
        }


def interrupted_summary(examples: int, seconds: float) -> dict[str, Any]:
    """The summary of a soak stopped from outside, for its JUnit XML and HTML report."""
    return {
        "state": "interrupted",
        "examples": examples,
        "seconds": round(seconds, 2),
        "seed": None,
        "stop_reason": "interrupted (Ctrl-C or SIGTERM)",
    }
