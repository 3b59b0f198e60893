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
database connections at start and end, which must stay flat, with the memory's trend
over the second half of the soak (``vitals.Trend``: a warm-up levels off, a leak does
not).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import Phase

from fuzzer.api import reference_of, resolve, searchable
from fuzzer.db import parse as parse_db
from fuzzer.execute.faults import chosen as fault_kinds
from fuzzer.execute.runner import Controlled
from fuzzer.execute.scheduler import Limits
from fuzzer.findings import Finding
from fuzzer.model import Scenario
from fuzzer.modes.campaign import LEASE, Campaign, open_campaign, worker_name
from fuzzer.modes.session import Session
from fuzzer.modes.vitals import Trend, Vitals, measure
from fuzzer.report.writer import ReportWriter, Written
from fuzzer.search.engine import Search, SearchSettings, evaluate
from fuzzer.search.pairs import Coverage, Plan
from fuzzer.search.schedules import Mode
from fuzzer.target.contract import Target

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
    memory: Trend = field(default_factory=Trend)  # sampled through the soak
    directory: str = ""
    stop_reason: str = ""
    references: int = 0
    campaign: str = ""  # where the campaign's state lives
    workers: list[dict[str, Any]] = field(default_factory=list)  # what each contributed
    coverage: tuple[int, int] = (0, 0)  # opening units done, of all
    complete_after: float | None = None  # seconds until the opening and the plan were done
    pairs: Coverage | None = None  # the pairs' plan, as far as a round took it

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
    shared: str | None = None,
    worker: int = 0,
    workers: int = 1,
    known_only: bool = False,
    lease: float = LEASE,
    on_event: Callable[..., None] = lambda *a, **k: None,
    sink: Callable[[Finding], Written | None] | None = None,
    faults: Sequence[str] = (),
) -> SoakReport:
    """Fuzz ``target`` for ``duration`` seconds; write every finding as soon as it is final.

    ``known_only`` replays the campaign's known findings and writes the reports, without
    searching (the merged report of a campaign run on several machines).
    ``worker`` of ``workers`` (fuzzer/modes/workers.py) is one of several processes of one
    campaign: they share the campaign's store (``shared``: a Redis URL; else the local
    file), and ``sink`` takes each finding this worker claimed first instead of the
    writer (the parent writes it)."""
    started = time.monotonic()
    target = resolve(target)
    reference = reference_of(target)
    spec = parse_db(db)
    kinds = fault_kinds(spec.dialect, faults)  # --faults: the errors to inject
    limits = Limits(hang_timeout=hang_timeout)
    session = Session(target, db=db, isolation=isolation, allow_wipe=allow_wipe, limits=limits)
    schedule: Mode = "conflict"
    key = campaign_key(reference, session.databases.dialect, schedule)
    if kinds:  # a campaign with injected errors is a campaign of its own
        key += f"|faults={','.join(kinds)}"
    campaign = open_campaign(shared, state_dir, key)
    me = worker_name(worker)
    settings_json = {
        "duration": duration,
        "db": spec.safe_url,
        "isolation": isolation,
        "round_examples": round_examples,
        "example_db": example_db if not shared else "shared",
        "workers": workers,
    }
    if kinds:
        settings_json["faults"] = ",".join(kinds)

    def work(s: Session) -> SoakReport:
        assert s.oracle is not None and s.harness is not None
        oracle, harness = s.oracle, s.harness
        prepared = searchable(target, s, schedule, faults=kinds)
        nonlocal started  # the duration is fuzzing time: a slow start-up does not eat it
        started = time.monotonic()
        setup = measure(s.databases)
        # "start" is taken after a short warm-up: the first examples fill the target's
        # connection pool and the caches, which is not a leak
        samples: dict[str, Vitals] = {"setup": setup}
        trend = Trend(interval=max(1.0, duration / 120))
        trend.sample(0.0, setup.memory_mib)
        writer = ReportWriter(
            report_dir,
            reference,
            f"{target.name}-soak",
            s.database_info,
            settings_json,
            columns={name: info.columns for name, info in s.databases.tables.items()},
            identities={
                n: tuple(h) for n, h in (s.harness.identity_headers if s.harness else {}).items()
            },
        )
        if sink is None:  # a worker's parent writes its findings
            writer.ensure_directory()
            writer.write_manifest({"state": "running"})
        rounds: list[Round] = []
        random = 0  # examples of the rounds' random phases
        through = True  # the last round ran all of its share of the pairs' plan
        opened = True  # the last round ran all of its share of the opening (it runs first)
        complete_after: float | None = None  # when the campaign's opening and plan were done
        done = 0  # examples in finished rounds
        on_event(
            "start",
            target=reference,
            database=s.database_info,
            max_examples=None,
            time_budget=duration,
            directory=writer.directory,
            notices=list(s.databases.notices),
            columns={name: list(info.columns) for name, info in s.databases.tables.items()},
            identities={n: list(h) for n, h in (writer.identities or {}).items()},
        )

        def left() -> float:
            return duration - (time.monotonic() - started)

        reported: list[Finding] = []  # what this worker claimed first
        units = _Units(campaign, me, _openings(prepared.openings), workers, lease)
        plan_units = _Units(campaign, me, _pairs(prepared.plan), workers, lease)

        def claim(finding: Finding) -> None:
            meta = {
                "kind": finding.kind,
                "endpoints": list(finding.endpoints),
                "by": me,
                "at": time.time(),
            }
            if not campaign.report(finding.fingerprint, finding.scenario.to_json(), meta):
                return  # another worker of the campaign reported it first
            reported.append(finding)
            campaign.contribute(me, findings=1)
            entry = sink(finding) if sink is not None else writer.add(finding)
            if entry is not None:
                on_event("written", entry=entry)

        def search(
            round_seed: int | None,
            opening: Sequence[Scenario] = (),
            share: Sequence[tuple[str, str]] = (),
        ) -> Round:
            nonlocal random, through, opened
            known = frozenset(w.finding.fingerprint for w in writer.written)
            known |= frozenset(campaign.reported())
            before = len(reported)

            def events(event: str, **data: Any) -> None:
                if event == "unshrunk":  # written when seen, rewritten when final
                    if sink is None and not shared:  # workers: only what a worker claims
                        writer.add(data["finding"])
                    return
                if event == "unconfirmed" and sink is None and not shared:
                    writer.withdraw(data["finding"].fingerprint)  # and passed on below
                if event == "final":
                    claim(data["finding"])
                    return
                if "examples" in data:
                    data = {**data, "examples": done + data["examples"]}
                if event == "example":
                    units.renew()  # still alive: keep the chunks this round holds
                    plan_units.renew()
                    data["findings"] = len(reported) + data.get("findings", 0)
                    trend.sample(time.monotonic() - started)
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
                example_database=campaign.example_database(example_db),
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
                # the replay round was announced before the reported findings
                on_event("round", seed=round_seed, left=left())
            result = Search(
                prepared.strategy,
                s.execute,
                oracle,
                settings,
                http_requests=lambda: harness.costs.http_requests,
                on_event=events,
                traces=prepared.traces,
                seeds=tuple(opening),
                # this round's share of the pairs' plan, until the campaign has done it
                plan=prepared.plan.only(share) if share and prepared.plan is not None else None,
            ).run()
            campaign.contribute(me, examples=result.examples, rounds=1)
            through = result.coverage is None or result.coverage.complete
            opened = result.examples >= len(opening)
            if result.coverage is not None:
                random += result.coverage.random
            return Round(
                round_seed,
                result.examples,
                result.seconds,
                result.stop_reason,
                len(reported) - before,
                measure(s.databases),
            )

        def replay_reported() -> int:
            """The findings earlier soaks reported, each under its recorded schedule."""
            runs = 0
            if worker != 0:
                return runs  # the first worker replays them for the campaign
            for fingerprint, scenario in campaign.known():
                hits: list[Finding] = []
                for _ in range(CONFIRM):
                    _, _, findings = evaluate(scenario, s.execute, oracle, Controlled(limits))
                    runs += 1
                    hits += [f for f in findings if f.fingerprint == fingerprint]
                    if not hits:
                        break  # fixed (or flaky, and the search will meet it again)
                if hits:
                    flaky = f"{len(hits)}/{CONFIRM}" if len(hits) < CONFIRM else ""
                    found = hits[0].with_(flaky=flaky)
                    reported.append(found)
                    entry = sink(found) if sink is not None else writer.add(found)
                    if entry is not None:
                        on_event("written", entry=entry)
                else:
                    campaign.forget(fingerprint)  # fixed: the search may report it anew
            return runs

        stop_reason = f"duration of {duration:g} s"
        try:
            on_event("round", seed=None, left=left())
            replayed = replay_reported()
            rounds.append(search(None))
            rounds[-1] = replace(
                rounds[-1],
                examples=rounds[-1].examples + replayed,
                findings=len(reported),
            )
            done = rounds[-1].examples
            if seed is not None and worker == 0:
                campaign.start_rotation(seed)
            idle = 0
            stop_reason = f"duration of {duration:g} s"
            if known_only:
                stop_reason = "the campaign's known findings replayed (--known-only)"
            while left() > 0 and not known_only:
                # the seed is claimed before the round: a killed round is not searched again
                round_seed = campaign.claim_seed()
                rounds.append(search(round_seed, units.take(), plan_units.take()))
                done += rounds[-1].examples
                units.settle(through=opened)
                plan_units.settle(through=through)
                if complete_after is None and units.complete() and plan_units.complete():
                    complete_after = round(time.monotonic() - started, 1)
                idle = idle + 1 if rounds[-1].examples == 0 else 0
                if rounds[-1].stop_reason.startswith("the target's threads are stuck"):
                    stop_reason = rounds[-1].stop_reason  # nothing more can run against it
                    break
                if idle >= 3:
                    stop_reason = "the search space is exhausted"
                    break
        except KeyboardInterrupt:
            # interrupted (Ctrl-C, SIGTERM: a CI job's timeout): the JUnit XML and the HTML
            # report of what was written so far, so the job still has them
            if sink is None:
                writer.finish(interrupted_summary(done, time.monotonic() - started))
            units.settle(through=False)
            plan_units.settle(through=False)
            raise
        end = rounds[-1].after
        trend.sample(time.monotonic() - started, end.memory_mib, force=True)
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
            memory=trend,
            stop_reason=stop_reason,
            references=oracle.stats.references,
            campaign=campaign.where,
            coverage=units.coverage(),
            complete_after=complete_after,
            pairs=_campaign_pairs(prepared.plan, plan_units, random),
        )
        if sink is None:
            report.directory = writer.finish(report.summary())
        return report

    return session.run(work)


def interrupted_summary(examples: int, seconds: float) -> dict[str, Any]:
    """The summary of a soak stopped from outside, for its JUnit XML and HTML report."""
    return {
        "state": "interrupted",
        "examples": examples,
        "seconds": round(seconds, 2),
        "seed": None,
        "stop_reason": "interrupted (Ctrl-C or SIGTERM)",
    }


def campaign_key(reference: str, dialect: str, schedule: Mode = "conflict") -> str:
    """One campaign per target, kind of database and schedule mode; as `fuzzer run`'s
    example database key, so a run and a soak share one corpus."""
    return f"{reference}|{dialect}|{schedule}"


class _Units:
    """Work a campaign's workers share: the systematic opening's scenarios, and the
    pairs of the bounded exhaustive plan.

    A unit is named by its content (an opening scenario's JSON, a pair's endpoints), so
    every worker names it alike. A round takes a chunk of units not done and not leased
    by a live worker; when the round gets through them they are done for the whole
    campaign, else they are given back (the round ended at a new finding, or the time
    ran out) and the next round (of any worker) takes them again."""

    def __init__(
        self,
        campaign: Campaign,
        worker: str,
        units: dict[str, Any],
        workers: int,
        lease: float,
    ) -> None:
        self.campaign = campaign
        self.worker = worker
        self.lease = lease
        self.renewed = time.monotonic()
        self.units = units
        # a chunk small enough that every worker gets a share
        self.size = max(1, -(-len(self.units) // max(1, workers * 2)))
        self.held: list[str] = []

    def take(self) -> list[Any]:
        done = self.campaign.done()
        for name in self.units:
            if len(self.held) >= self.size:
                break
            if name not in done and self.campaign.claim(name, self.worker, self.lease):
                self.held.append(name)
        self.renewed = time.monotonic()
        return [self.units[name] for name in self.held]

    def renew(self) -> None:
        """Hold the chunk a while longer (a worker that dies stops renewing it)."""
        if self.held and time.monotonic() - self.renewed > self.lease / 3:
            for name in self.held:
                self.campaign.claim(name, self.worker, self.lease)
            self.renewed = time.monotonic()

    def settle(self, *, through: bool) -> None:
        for name in self.held:
            (self.campaign.finish if through else self.campaign.release)(name)
        self.held = []

    def done(self) -> list[Any]:
        finished = self.campaign.done()
        return [payload for name, payload in self.units.items() if name in finished]

    def coverage(self) -> tuple[int, int]:
        return len(self.done()), len(self.units)

    def complete(self) -> bool:
        done, units = self.coverage()
        return done == units


def _openings(openings: tuple[Scenario, ...]) -> dict[str, Scenario]:
    named = {}
    for scenario in openings:
        text = json.dumps(scenario.to_json(), sort_keys=True, default=str)
        named["opening:" + hashlib.sha256(text.encode()).hexdigest()[:16]] = scenario
    return named


def _pairs(plan: Plan | None) -> dict[str, tuple[str, str]]:
    return {f"pair:{a} | {b}": (a, b) for a, b in (plan.pairs if plan is not None else ())}


def _campaign_pairs(plan: Plan | None, units: _Units, random: int) -> Coverage | None:
    """How much of the pairs' plan the whole campaign explored."""
    if plan is None:
        return None
    done = plan.only(set(units.done()))
    return replace(
        plan.coverage(0, random=random),
        explored=len(done.pairs),
        ran=len(done.scenarios),
    )
