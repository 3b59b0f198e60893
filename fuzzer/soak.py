"""The soak: fuzz one target unattended for a fixed time, as a nightly CI job does.

One session (one scratch database, one app, one server) for the whole duration:

1. replay the known failures of the example database first (Hypothesis's reuse
   phase: what earlier runs found, including one killed before it could shrink);
2. then search in rounds, each with the next seed of a rotation kept in
   ``.fuzzer/soak/`` (so the next soak explores new seeds), each round ignoring the
   findings already reported so the time goes to finding new ones, and ending at its
   first new finding so that it is shrunk and written at once.

Each finding is written (JSON, regression test, manifest) the moment it is final:
killing the soak loses nothing already found, and the next soak resumes from the
example database. At the end: JUnit XML and the HTML report, and the memory and
database connections at start and end, which must stay flat.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import Phase

from .api import reference_of, resolve, searchable
from .db import parse as parse_db
from .engine import Search, SearchSettings, evaluate
from .findings import Finding
from .model import Scenario
from .pairs import Coverage
from .report import json as report_json
from .report.writer import ReportWriter, Written
from .runner import Controlled
from .scheduler import Limits
from .schedules import Mode
from .session import Session
from .target import Target
from .vitals import Vitals, measure

STATE_DIR = os.path.join(".fuzzer", "soak")
CONFIRM = 3  # replays of a reported finding, as the engine confirms its own


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
    directory: str = ""
    stop_reason: str = ""
    references: int = 0
    coverage: Coverage | None = None  # the pairs' plan, as far as the last round took it

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
            "vitals": {
                "setup": self.setup.to_json(),
                "start": {**self.start.to_json(), "after_examples": self.warmup},
                "end": self.end.to_json(),
            },
            "state": "finished",
        }


def soak(
    target: Target | str,
    *,
    duration: float,
    db: str = "sqlite",
    isolation: str | None = None,
    seed: int | None = None,
    round_examples: int = 1000,
    warmup: int = 50,
    shrink_budget: float = 60.0,
    hang_timeout: float = 3.0,
    report_dir: str = "reports",
    example_db: str = os.path.join(".fuzzer", "examples"),
    state_dir: str = STATE_DIR,
    allow_wipe: bool = False,
    on_event: Callable[..., None] = lambda *a, **k: None,
) -> SoakReport:
    """Fuzz ``target`` for ``duration`` seconds; write every finding as soon as it is final."""
    started = time.monotonic()
    target = resolve(target)
    reference = reference_of(target)
    spec = parse_db(db)
    limits = Limits(hang_timeout=hang_timeout)
    session = Session(target, db=db, isolation=isolation, allow_wipe=allow_wipe, limits=limits)
    schedule: Mode = "conflict"
    key = f"{reference}|{session.databases.dialect}|{schedule}"  # as `fuzzer run`: one corpus
    state = _State(state_dir, key)
    settings_json = {
        "duration": duration,
        "db": spec.safe_url,
        "isolation": isolation,
        "round_examples": round_examples,
        "example_db": example_db,
    }

    def work(s: Session) -> SoakReport:
        assert s.oracle is not None and s.harness is not None
        oracle, harness = s.oracle, s.harness
        prepared = searchable(target, s, schedule)
        setup = measure(s.databases)
        # "start" is taken after a short warm-up: the first examples fill the target's
        # connection pool and the caches, which is not a leak
        samples: dict[str, Vitals] = {"setup": setup}
        writer = ReportWriter(
            report_dir,
            reference,
            f"{target.name}-soak",
            s.database_info,
            settings_json,
            columns={name: info.columns for name, info in s.databases.tables.items()},
        )
        writer.ensure_directory()
        writer.write_manifest({"state": "running"})
        rounds: list[Round] = []
        coverage: list[Coverage] = []  # the pairs' plan, per round that ran it
        done = 0  # examples in finished rounds
        on_event(
            "start",
            target=reference,
            database=s.database_info,
            max_examples=None,
            time_budget=duration,
            directory=writer.directory,
        )

        def left() -> float:
            return duration - (time.monotonic() - started)

        def search(round_seed: int | None, opening: bool = False) -> Round:
            known = frozenset(w.finding.fingerprint for w in writer.written)
            before = len(writer.written)

            def events(event: str, **data: Any) -> None:
                if event == "final":
                    entry = writer.add(data["finding"])
                    state.remember(data["finding"])
                    on_event("written", entry=entry)
                    return
                if "examples" in data:
                    data = {**data, "examples": done + data["examples"]}
                if event == "example":
                    data["findings"] = len(writer.written) + data.get("findings", 0)
                    if "start" not in samples and data["examples"] >= warmup:
                        samples["start"] = measure(s.databases)
                on_event(event, **data)

            replay = round_seed is None
            settings = SearchSettings(
                max_examples=round_examples,
                seed=round_seed,
                time_budget=max(left(), 0.1),
                shrink_budget=max(1.0, min(shrink_budget, left())),
                example_db=example_db,
                database_key=key,
                example_db_with_seed=True,
                phases=(Phase.reuse, Phase.shrink) if replay else (Phase.generate, Phase.shrink),
                known=known,
                limits=limits,
                schedule=schedule,
                # a round ends at its first new finding, so the finding is shrunk and
                # written at once; the next round goes on with the next seed
                stop_at_first=not replay,
            )
            if not replay:
                writer.seed = round_seed
            if not replay:  # the replay round was announced before the reported findings
                on_event("round", seed=round_seed, left=left())
            result = Search(
                prepared.strategy,
                s.execute,
                oracle,
                settings,
                http_requests=lambda: harness.costs.http_requests,
                on_event=events,
                traces=prepared.traces,
                seeds=prepared.openings if opening else (),
                plan=prepared.plan if opening else None,
            ).run()
            if result.coverage is not None:
                coverage.append(result.coverage)
            return Round(
                round_seed,
                result.examples,
                result.seconds,
                result.stop_reason,
                len(writer.written) - before,
                measure(s.databases),
            )

        def replay_reported() -> int:
            """The findings earlier soaks reported, each under its recorded schedule."""
            runs = 0
            for fingerprint, scenario in state.known():
                hits: list[Finding] = []
                for _ in range(CONFIRM):
                    _, _, findings = evaluate(scenario, s.execute, oracle, Controlled(limits))
                    runs += 1
                    hits += [f for f in findings if f.fingerprint == fingerprint]
                    if not hits:
                        break  # fixed (or flaky, and the search will meet it again)
                if hits:
                    flaky = f"{len(hits)}/{CONFIRM}" if len(hits) < CONFIRM else ""
                    entry = writer.add(hits[0].with_(flaky=flaky))
                    on_event("written", entry=entry)
            return runs

        on_event("round", seed=None, left=left())
        replayed = replay_reported()
        rounds.append(search(None))
        rounds[-1] = replace(
            rounds[-1],
            examples=rounds[-1].examples + replayed,
            findings=len(writer.written),
        )
        done = rounds[-1].examples
        next_seed = seed if seed is not None else state.next_seed()
        idle = 0
        opening = True  # the systematic opening, until a round gets through it
        stop_reason = f"duration of {duration:g} s"
        while left() > 0:
            state.save(next_seed + 1)  # a killed round is not searched again
            rounds.append(search(next_seed, opening))
            done += rounds[-1].examples
            next_seed += 1
            opening = opening and rounds[-1].findings > 0
            idle = idle + 1 if rounds[-1].examples == 0 else 0
            if rounds[-1].stop_reason.startswith("the target's threads are stuck"):
                stop_reason = rounds[-1].stop_reason  # nothing more can run against it
                break
            if idle >= 3:
                stop_reason = "the search space is exhausted"
                break
        end = rounds[-1].after
        report = SoakReport(
            target=reference,
            database=s.database_info,
            duration=duration,
            seconds=time.monotonic() - started,
            rounds=rounds,
            start=samples.get("start", setup),
            end=end,
            setup=setup,
            warmup=warmup if "start" in samples else 0,
            written=list(writer.written),
            stop_reason=stop_reason,
            references=oracle.stats.references,
            coverage=max(coverage, key=lambda c: c.ran)
            if coverage
            else (prepared.plan.coverage(0) if prepared.plan is not None else None),
        )
        report.directory = writer.finish(report.summary())
        return report

    return session.run(work)


class _State:
    """What one target's soaks on one kind of database keep between them: the seed
    rotation, and every finding reported (its scenario and schedule, to replay first:
    a finding of the systematic opening has no Hypothesis choices to keep)."""

    def __init__(self, directory: str, key: str) -> None:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.path = os.path.join(directory, f"{digest}.json")
        self.key = key
        self.data: dict[str, Any] = {"key": key, "next_seed": None, "findings": {}}
        try:
            with open(self.path, encoding="utf-8") as handle:
                loaded = json.load(handle)
            if isinstance(loaded, dict) and isinstance(loaded.get("findings", {}), dict):
                self.data.update(loaded)
        except (OSError, ValueError):
            pass  # none yet, or unreadable: start afresh

    def next_seed(self) -> int:
        seed = self.data.get("next_seed")
        return int(seed) if isinstance(seed, int) else random.getrandbits(31)

    def save(self, next_seed: int) -> None:
        self.data["next_seed"] = next_seed
        report_json.write_atomic(self.path, self.data)

    def remember(self, finding: Finding) -> None:
        self.data["findings"][finding.fingerprint] = finding.scenario.to_json()
        report_json.write_atomic(self.path, self.data)

    def known(self) -> list[tuple[str, Scenario]]:
        known = []
        for fingerprint, scenario in self.data["findings"].items():
            try:
                known.append((fingerprint, Scenario.from_json(scenario)))
            except (KeyError, TypeError, ValueError):
                continue  # written by another version: the example database still has it
        return known
