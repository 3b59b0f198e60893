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

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import Phase

from fuzzer.db import parse as parse_db
from fuzzer.errors import FuzzerError, InvalidOption
from fuzzer.execute.faults import chosen as fault_kinds
from fuzzer.execute.runner import Controlled
from fuzzer.findings import Finding
from fuzzer.model import Scenario
from fuzzer.modes.applog import logged
from fuzzer.modes.nightly.campaign import LEASE, Campaign, campaign_key, worker_name
from fuzzer.modes.nightly.sharedstore import open_campaign, store_failure
from fuzzer.modes.nightly.soakreport import Round, SoakReport, interrupted_summary
from fuzzer.modes.nightly.units import Units, campaign_pairs, openings, pairs, replay_known
from fuzzer.modes.nightly.vitals import Trend, Vitals, measure
from fuzzer.modes.prepare import reference_of, resolve, searchable
from fuzzer.modes.session import Session
from fuzzer.report.writer import ReportWriter, Written
from fuzzer.search import interrupt
from fuzzer.search.engine import Search, Tuning, evaluate
from fuzzer.search.events import (
    Event,
    Example,
    Final,
    Found,
    Listener,
    RoundStarted,
    Start,
    Unconfirmed,
    Unshrunk,
    Wrote,
    ignore,
)
from fuzzer.search.plan.schedules import Mode
from fuzzer.settings import Settings
from fuzzer.target.contract import Target

STATE_DIR = os.path.join(".fuzzer", "soak")


def _written(settings: Settings) -> tuple[str, str]:
    """Where a soak writes its reports and keeps its example database: both needed."""
    if settings.report_dir is None or settings.example_db is None:
        missing = "report_dir" if settings.report_dir is None else "example_db"
        raise InvalidOption(
            f"a soak writes its reports and resumes its example database: give {missing} "
            f"a directory (the command line's: reports, .fuzzer/examples)"
        )
    return settings.report_dir, settings.example_db


def soak(
    target: Target | str,
    settings: Settings | None = None,
    *,
    duration: float,
    round_examples: int = 1000,
    warmup: int = 50,
    state_dir: str = STATE_DIR,
    shared: str | None = None,
    worker: int = 0,
    workers: int = 1,
    known_only: bool = False,
    lease: float = LEASE,
    on_event: Listener = ignore,
    sink: Callable[[Finding], Written | None] | None = None,
    quiet_app: bool = True,
    verbose: bool = False,
    **options: Any,
) -> SoakReport:
    """Fuzz ``target`` for ``duration`` seconds; write every finding as soon as it is final.

    ``settings`` (and ``options``, its fields as keywords) say the database, isolation,
    first seed, limits and where to write; a soak writes its reports, so its defaults
    are the command line's (``reports/``, ``.fuzzer/examples``).
    ``known_only`` replays the campaign's known findings and writes the reports, without
    searching (the merged report of a campaign run on several machines).
    ``worker`` of ``workers`` (fuzzer/modes/nightly/workers.py) is one of several processes of one
    campaign: they share the campaign's store (``shared``: a Redis URL; else the local
    file), and ``sink`` takes each finding this worker claimed first instead of the
    writer (the parent writes it). With ``quiet_app`` the app's logging and stderr go
    to ``app.log`` in the run directory (a worker's: its own file, which the parent moves
    there); ``verbose``: to the terminal as well."""
    started = time.monotonic()
    settings = Settings.of(settings or Settings.for_cli(), **options)
    report_dir, example_db = _written(settings)
    target = resolve(target)
    reference = reference_of(target)
    spec = parse_db(settings.db)
    kinds = fault_kinds(spec.dialect, settings.faults)  # --faults: the errors to inject
    session = Session(target, settings)
    schedule: Mode = "conflict"
    key = campaign_key(reference, session.databases.dialect, schedule)
    if kinds:  # a campaign with injected errors is a campaign of its own
        key += f"|faults={','.join(kinds)}"
    campaign = open_campaign(shared, state_dir, key)
    settings_json = {
        "duration": duration,
        "db": spec.safe_url,
        "isolation": settings.isolation,
        "round_examples": round_examples,
        "example_db": example_db if not shared else "shared",
        "workers": workers,
    }
    if kinds:
        settings_json["faults"] = ",".join(kinds)

    soaking = _Soak(
        target=target,
        reference=reference,
        session=session,
        campaign=campaign,
        key=key,
        me=worker_name(worker),
        schedule=schedule,
        faults=kinds,
        settings_json=settings_json,
        started=started,
        duration=duration,
        round_examples=round_examples,
        warmup=warmup,
        report_dir=report_dir,
        example_db=example_db,
        shared=shared,
        worker=worker,
        workers=workers,
        known_only=known_only,
        lease=lease,
        on_event=on_event,
        sink=sink,
    )
    if not quiet_app:
        return soaking.run()
    report, summary = logged(soaking.run, live=verbose, keep_in=soaking.log_directory)
    report.app_log = summary
    return report


@dataclass(kw_only=True)
class _Soak:
    """One soak, phase by phase: ``prepare`` (the writer, vitals, the shared units),
    ``replay`` (the known failures, then the example database), ``rounds`` (one seed
    each until the duration is spent), ``report``; ``interrupted`` when stopped from
    outside. Its fields are what ``soak`` was given and what the phases share."""

    target: Target
    reference: str
    session: Session
    campaign: Campaign
    key: str
    me: str
    schedule: Mode
    faults: tuple[str, ...]  # --faults: the errors to inject
    settings_json: dict[str, Any]
    started: float
    duration: float
    round_examples: int
    warmup: int
    report_dir: str
    example_db: str
    shared: str | None
    worker: int
    workers: int
    known_only: bool
    lease: float
    on_event: Listener
    sink: Callable[[Finding], Written | None] | None
    # -- shared by the phases --------------------------------------------------------------
    writer: ReportWriter | None = None
    rounds: list[Round] = field(default_factory=list)
    reported: list[Finding] = field(default_factory=list)  # what this worker claimed first
    samples: dict[str, Vitals] = field(default_factory=dict)  # "setup", "start"
    trend: Trend = field(default_factory=Trend)
    random: int = 0  # examples of the rounds' random phases
    through: bool = True  # the last round ran all of its share of the pairs' plan
    opened: bool = True  # the last round ran all of its share of the opening (it runs first)
    complete_after: float | None = None  # when the campaign's opening and plan were done
    done: int = 0  # examples in finished rounds
    finished: bool = False  # the run directory's junit.xml and report.html are written

    def run(self) -> SoakReport:
        try:
            return self.session.run(self.work)
        except Exception as exc:
            # the shared store stopped inside Hypothesis's example database: an
            # environment error, as when the campaign's own calls see it
            failure = store_failure(exc, self.shared)
            if failure is not None and failure is not exc:
                raise failure from exc
            raise
        except BaseException as exc:
            # the search's thread writes the reports when it sees the stop; a stop that
            # came before it or after it (setting up, tearing down) is written here
            if interrupt.is_stop(exc):
                self.interrupted()
            raise

    def log_directory(self, report: SoakReport) -> str | None:
        """Where the app's log goes: the run directory; a worker's, a directory of its own
        whose ``app.log`` the parent moves into the run directory."""
        if self.sink is not None:
            return tempfile.mkdtemp(prefix="fuzzer-worker-log-")
        return report.directory or (self.writer.directory if self.writer else None)

    def work(self, s: Session) -> SoakReport:
        self.prepare(s)
        try:
            self.replay()
            stop_reason = self.search_rounds()
        except KeyboardInterrupt:
            # interrupted (Ctrl-C, SIGTERM: a CI job's timeout): the JUnit XML and the HTML
            # report of what was written so far, so the job still has them
            self.interrupted()
            raise
        return self.report(stop_reason)

    # -- phases ----------------------------------------------------------------------------

    def prepare(self, s: Session) -> None:
        self.prepared = searchable(self.target, s, self.schedule, faults=self.faults)
        self.units = Units(
            self.campaign, self.me, openings(self.prepared.openings), self.workers, self.lease
        )
        self.plan_units = Units(
            self.campaign, self.me, pairs(self.prepared.plan), self.workers, self.lease
        )
        # the duration is fuzzing time: a slow start-up does not eat it
        self.started = time.monotonic()
        setup = measure(s.databases)
        # "start" is taken after a short warm-up: the first examples fill the target's
        # connection pool and the caches, which is not a leak
        self.samples["setup"] = setup
        self.trend = Trend(interval=max(1.0, self.duration / 120))
        self.trend.sample(0.0, setup.memory_mib)
        writer = ReportWriter(
            self.report_dir,
            self.reference,
            f"{self.target.name}-soak",
            s.database_info,
            self.settings_json,
            columns={name: info.columns for name, info in s.databases.tables.items()},
            identities={
                n: tuple(h) for n, h in (s.harness.identity_headers if s.harness else {}).items()
            },
        )
        self.writer = writer
        if self.sink is None:  # a worker's parent writes its findings
            writer.ensure_directory()
            writer.write_manifest({"state": "running"})
        self.on_event(
            Start(
                target=self.reference,
                database=s.database_info,
                max_examples=None,
                time_budget=self.duration,
                directory=writer.directory,
                notices=list(s.databases.notices),
                columns={name: list(info.columns) for name, info in s.databases.tables.items()},
                identities={n: list(h) for n, h in (writer.identities or {}).items()},
            )
        )

    def replay(self) -> None:
        """The known failures of the campaign, then Hypothesis's reuse phase."""
        self.on_event(RoundStarted(None, self.left()))
        replayed = self.replay_reported()
        found = self.search(None)
        self.rounds.append(
            replace(found, examples=found.examples + replayed, findings=len(self.reported))
        )
        self.done = self.rounds[-1].examples
        seed = self.session.settings.seed
        if seed is not None and self.worker == 0:
            self.campaign.start_rotation(seed)

    def search_rounds(self) -> str:
        """One round per seed of the rotation until the duration is spent; why it stopped."""
        if self.known_only:
            return "the campaign's known findings replayed (--known-only)"
        idle = 0
        while self.left() > 0:
            # the seed is claimed before the round: a killed round is not searched again
            round_seed = self.campaign.claim_seed()
            last = self.search(round_seed, self.units.take(), self.plan_units.take())
            self.rounds.append(last)
            self.done += last.examples
            self.units.settle(through=self.opened)
            self.plan_units.settle(through=self.through)
            if self.complete_after is None and self.units.complete() and self.plan_units.complete():
                self.complete_after = round(time.monotonic() - self.started, 1)
            idle = idle + 1 if last.examples == 0 else 0
            if last.stop_reason.startswith("the target's threads are stuck"):
                return last.stop_reason  # nothing more can run against it
            if idle >= 3:
                return "the search space is exhausted"
        return f"duration of {self.duration:g} s"

    def report(self, stop_reason: str) -> SoakReport:
        s, writer = self.session, self.writer
        assert s.oracle is not None and writer is not None
        end = self.rounds[-1].after
        self.trend.sample(time.monotonic() - self.started, end.memory_mib, force=True)
        setup = self.samples["setup"]
        report = SoakReport(
            target=self.reference,
            database=s.database_info,
            duration=self.duration,
            seconds=time.monotonic() - self.started,
            rounds=self.rounds,
            start=self.samples.get("start", setup),
            end=end,
            setup=setup,
            warmup=self.warmup if "start" in self.samples else 0,
            written=list(writer.written),
            memory=self.trend,
            stop_reason=stop_reason,
            references=s.oracle.stats.references,
            campaign=self.campaign.where,
            coverage=self.units.coverage(),
            complete_after=self.complete_after,
            pairs=campaign_pairs(self.prepared.plan, self.plan_units, self.random),
        )
        if self.sink is None:
            report.directory = writer.finish(report.summary())
            self.finished = True
        return report

    def interrupted(self) -> None:
        """Stopped from outside: the reports of what was written so far, and the units
        held given back (once, whichever thread saw the stop first)."""
        if self.finished or self.writer is None:
            return
        self.finished = True
        if self.sink is None:
            summary = interrupted_summary(self.done, time.monotonic() - self.started)
            self.writer.finish(summary)
        # a store that went away must not turn the stop into its own error: the leases
        # run out by themselves
        for units in (self.units, self.plan_units):  # each gives its leases back alone
            with contextlib.suppress(FuzzerError):
                units.settle(through=False)

    # -- one round -------------------------------------------------------------------------

    def left(self) -> float:
        return self.duration - (time.monotonic() - self.started)

    def search(
        self,
        round_seed: int | None,
        opening: Sequence[Scenario] = (),
        share: Sequence[tuple[str, str]] = (),
    ) -> Round:
        s, writer, prepared = self.session, self.writer, self.prepared
        assert s.oracle is not None and s.harness is not None and writer is not None
        harness = s.harness
        known = frozenset(w.finding.fingerprint for w in writer.written)
        known |= frozenset(self.campaign.reported())
        before = len(self.reported)
        if round_seed is not None:
            writer.seed = round_seed
            # the replay round was announced before the reported findings
            self.on_event(RoundStarted(round_seed, self.left()))
        result = Search(
            prepared.strategy,
            s.execute,
            s.oracle,
            *self.search_settings(round_seed, known),
            http_requests=lambda: harness.costs.http_requests,
            on_event=self.search_event,
            traces=prepared.traces,
            seeds=tuple(opening),
            # this round's share of the pairs' plan, until the campaign has done it
            plan=prepared.plan.only(share) if share and prepared.plan is not None else None,
        ).run()
        self.campaign.contribute(self.me, examples=result.examples, rounds=1)
        self.through = result.coverage is None or result.coverage.complete
        self.opened = result.examples >= len(opening)
        if result.coverage is not None:
            self.random += result.coverage.random
        return Round(
            round_seed,
            result.examples,
            result.seconds,
            result.stop_reason,
            len(self.reported) - before,
            measure(s.databases),
        )

    def search_settings(
        self, round_seed: int | None, known: frozenset[str]
    ) -> tuple[Settings, Tuning]:
        """A round's settings (its budgets and seed over the soak's), and its tuning."""
        replay = round_seed is None
        settings = self.session.settings.replace(
            max_examples=self.round_examples,
            seed=round_seed,
            time_budget=max(self.left(), 0.1),
            shrink_budget=max(1.0, min(self.session.settings.shrink_budget, self.left())),
            example_db=self.example_db,
            schedule=self.schedule,
        )
        tuning = Tuning(
            example_database=self.campaign.example_database(self.example_db),
            database_key=self.key,
            example_db_with_seed=True,
            phases=(Phase.reuse, Phase.shrink) if replay else (Phase.generate, Phase.shrink),
            known=known,
            limits=self.session.limits,
            # a round ends at its first new finding, so the finding is shrunk and
            # written at once; the next round goes on with the next seed
            stop_at_first=not replay,
        )
        return settings, tuning

    def search_event(self, event: Event) -> None:
        """The search's events, passed on with the soak's counts."""
        writer = self.writer
        assert writer is not None
        alone = self.sink is None and not self.shared  # workers: only what a worker claims
        if isinstance(event, Unshrunk):  # written when seen, rewritten when final
            if alone:
                writer.add(event.finding)
            return
        if isinstance(event, Final):
            self.claim(event.finding)
            return
        if isinstance(event, Unconfirmed) and alone:
            writer.withdraw(event.finding.fingerprint)  # and passed on below
        if isinstance(event, Found):
            event = replace(event, examples=self.done + event.examples)
        elif isinstance(event, Example):
            event = self.example(replace(event, examples=self.done + event.examples))
        self.on_event(event)

    def example(self, event: Example) -> Example:
        self.units.renew()  # still alive: keep the chunks this round holds
        self.plan_units.renew()
        self.trend.sample(time.monotonic() - self.started)
        if "start" not in self.samples and event.examples >= self.warmup:
            self.samples["start"] = measure(self.session.databases)
        return replace(event, findings=len(self.reported) + event.findings)

    def claim(self, finding: Finding) -> None:
        meta = {
            "kind": finding.kind,
            "endpoints": list(finding.endpoints),
            "by": self.me,
            "at": time.time(),
        }
        if not self.campaign.report(finding.fingerprint, finding.scenario.to_json(), meta):
            return  # another worker of the campaign reported it first
        self.reported.append(finding)
        self.campaign.contribute(self.me, findings=1)
        self.write(finding)

    def write(self, finding: Finding) -> None:
        """A finding this worker reports: to the parent (a worker), else to the writer."""
        assert self.writer is not None
        entry = self.sink(finding) if self.sink is not None else self.writer.add(finding)
        if entry is not None:
            self.on_event(Wrote(entry.json))

    def replay_reported(self) -> int:
        """The findings earlier soaks reported, each under its recorded schedule (the
        first worker replays them for the campaign)."""
        oracle, limits = self.session.oracle, self.session.limits
        assert oracle is not None
        if self.worker != 0:
            return 0

        def findings(scenario: Scenario) -> list[Finding]:
            return evaluate(scenario, self.session.execute, oracle, Controlled(limits))[2]

        runs, found = replay_known(self.campaign, findings)
        for finding in found:
            self.reported.append(finding)
            self.write(finding)
        return runs
