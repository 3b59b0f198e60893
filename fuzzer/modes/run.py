"""Run a search of one target and write what it finds: ``run`` (the command line's
``fuzzer run``), ``stress`` (free-running load, judged by the same oracle) and ``fuzz``
(the one-liner for a test suite: it raises ``AssertionError`` with the text report of
every finding).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

from fuzzer.db import parse as parse_db
from fuzzer.execute.faults import chosen as fault_kinds
from fuzzer.execute.runner import Costs
from fuzzer.findings import Finding, fails_run
from fuzzer.modes.applog import logged
from fuzzer.modes.logsummary import AppLogSummary
from fuzzer.modes.prepare import reference_of, resolve, searchable
from fuzzer.modes.session import Session
from fuzzer.report.text import finding_text
from fuzzer.report.writer import ReportWriter, Written, reproduce_lines
from fuzzer.search.engine import Search, SearchResult, Tuning
from fuzzer.search.events import Event, Final, Listener, Start, Unconfirmed, Unshrunk, ignore
from fuzzer.settings import REPORTS, Settings
from fuzzer.settings import split as split_settings
from fuzzer.target.contract import Target

DEFAULT_REPORT_DIR = REPORTS  # the command line's; the library writes nothing unless asked


@dataclass
class RunReport:
    """Everything one run found, and where it wrote it."""

    target: str
    database: dict[str, Any]
    settings: dict[str, Any]
    result: SearchResult
    costs: Costs
    directory: str | None = None
    written: list[Written] = field(default_factory=list)
    references: int = 0
    fail_on: frozenset[str] = frozenset({"all"})  # what makes the run exit 1 (--fail-on)
    app_log: AppLogSummary | None = None  # what the app logged meanwhile (app.log)
    redis_after: list[str] = field(default_factory=list)  # keys left in the app's own Redis

    @property
    def findings(self) -> list[Finding]:
        return self.result.findings

    @property
    def files(self) -> list[tuple[Finding, str]]:
        """Each finding with the path of its JSON report."""
        return [(w.finding, w.json) for w in self.written]

    @property
    def exit_code(self) -> int:
        """1 when a confirmed finding is of what ``fail_on`` names (unconfirmed ones are
        not findings at all)."""
        return 1 if any(fails_run(f, self.fail_on) for f in self.findings) else 0

    def reproduce(self, finding: Finding) -> list[str]:
        # the finding as written, or the same one with every route that reached it
        entry = next((w for w in self.written if w.finding is finding), None) or next(
            (w for w in self.written if w.finding.fingerprint == finding.fingerprint), None
        )
        if entry is not None:
            return entry.reproduce
        return reproduce_lines(finding, None, None)

    def text(self) -> str:
        return "\n".join(finding_text(f, reproduce=self.reproduce(f)) for f in self.findings)

    def summary(self) -> dict[str, Any]:
        return {
            "examples": self.result.examples,
            "seconds": round(self.result.seconds, 2),
            "stop_reason": self.result.stop_reason,
            "seed": self.result.seed,
        }


def run(
    target: Target | str,
    settings: Settings | None = None,
    *,
    on_event: Listener = ignore,
    free_running: bool = False,
    stop_at_first: bool = False,
    stop_kinds: Collection[str] = (),
    example_key: str | None = None,
    quiet_app: bool = True,
    verbose: bool = False,
    **options: Any,
) -> RunReport:
    """Search a target for races and write a report per finding, each the moment it is
    final (when ``settings.report_dir`` names a directory; by default nothing is written).
    With ``quiet_app`` the app's logging and stderr go to ``app.log`` in the run
    directory (``verbose``: to the terminal as well).

    ``settings`` is a ``Settings``; ``options`` are its fields as keywords, applied over it
    (``run(target, max_examples=50, seed=1)``). With ``free_running`` (the stress mode)
    requests run with real timing and no gates. ``stop_at_first`` stops generating at the
    first finding (of ``stop_kinds``, if given), then shrinks and reports it.
    ``example_key`` keys its failures in the example database (default: the target's
    reference; the pytest plugin gives the test's node id). ``settings.faults`` (kinds of
    error, ``--faults``) injects those errors as part of the schedule
    (fuzzer/execute/faults.py)."""
    settings = Settings.of(settings, **options)
    target = resolve(target)
    reference = reference_of(target)
    spec = parse_db(settings.db)  # a bad --db fails before anything is created
    safe_url = spec.safe_url
    kinds = fault_kinds(spec.dialect, settings.faults)  # --faults the database can raise
    session = Session(target, settings)
    tuning = Tuning(
        database_key=f"{example_key or reference}|{session.databases.dialect}|{settings.schedule}"
        + (f"|faults={','.join(kinds)}" if kinds else ""),
        limits=session.limits,
        free_running=free_running,
        shrink=not free_running,
        stop_at_first=stop_at_first,
        stop_kinds=frozenset(stop_kinds),
    )
    schedule = settings.schedule
    report_dir = settings.report_dir
    run_settings = {
        "max_examples": settings.max_examples,
        "seed": settings.seed,
        "time_budget": settings.time_budget,
        "isolation": settings.isolation,
        "db": safe_url,
        "example_db": settings.example_db,
    }
    run_settings.update({"faults": ",".join(kinds)} if kinds else {})

    writers: list[ReportWriter] = []

    def work(s: Session) -> RunReport:
        assert s.oracle is not None and s.harness is not None
        harness = s.harness
        writer = None
        if report_dir is not None:
            writer = ReportWriter(
                report_dir,
                reference,
                target.name,
                s.database_info,
                run_settings,
                columns={name: info.columns for name, info in s.databases.tables.items()},
                identities={n: tuple(h) for n, h in harness.identity_headers.items()},
            )
            writers.append(writer)

        def events(event: Event) -> None:
            if isinstance(event, (Unshrunk, Final)) and writer is not None:
                writer.add(event.finding)  # written when seen, rewritten when final
            elif isinstance(event, Unconfirmed) and writer is not None:
                writer.withdraw(event.finding.fingerprint)
            on_event(event)

        on_event(  # before the survey: a target of a hundred endpoints takes a while
            Start(
                target=reference,
                database=s.database_info,
                max_examples=settings.max_examples,
                time_budget=settings.time_budget,
                notices=[*s.databases.notices, *(s.foreign.notices() if s.foreign else [])],
            )
        )
        prepared = searchable(
            target,
            s,
            schedule,
            allow_unexercised=settings.allow_unexercised,
            on_event=on_event,
            faults=kinds,
        )
        search = Search(
            prepared.strategy,
            s.execute,
            s.oracle,
            settings,
            tuning,
            http_requests=lambda: harness.costs.http_requests,
            on_event=events,
            traces=prepared.traces,
            seeds=prepared.openings if not free_running else (),
            plan=prepared.plan if not free_running else None,
        )
        if writer is not None:
            writer.seed = search.seed
        if free_running and settings.time_budget is not None:
            # free-running requests still running when the time is up are cut, unjudged
            harness.deadline = time.monotonic() + settings.time_budget
        result = search.run()
        report = RunReport(
            target=reference,
            database=s.database_info,
            settings=run_settings,
            result=result,
            costs=harness.costs,
            references=s.oracle.stats.references,
            fail_on=settings.fail_on,
        )
        if s.foreign is not None:
            report.redis_after = s.foreign.after()
        if writer is not None:
            if writer.written:
                report.directory = writer.finish(report.summary())
            report.written = list(writer.written)
        return report

    if not quiet_app:
        return session.run(work)

    def run_directory(report: RunReport) -> str | None:
        # made for the log alone when nothing was found: not the report's directory,
        # which the summary lists with report.html and junit.xml
        if report.directory is None and writers:
            return writers[0].ensure_directory()
        return report.directory

    report, summary = logged(lambda: session.run(work), live=verbose, keep_in=run_directory)
    report.app_log = summary
    return report


def stress(
    target: Target | str,
    settings: Settings | None = None,
    *,
    duration: float,
    concurrency: int = 4,
    max_batches: int = 100_000,
    **options: Any,
) -> RunReport:
    """Free-running load, judged by the same oracle: batches of ``concurrency`` requests
    fired at once with real timing, for at most ``duration`` seconds and ``max_batches``
    batches. Findings have no known schedule; each says whether the schedule derived from
    its trace reproduces it under control."""
    target = resolve(target)
    load = replace(
        target,
        min_requests=concurrency,
        max_requests=concurrency,
        threads=max(target.threads, concurrency + 2),
    )
    object.__setattr__(load, "reference", reference_of(target))
    given, rest = split_settings(options)
    settings = Settings.of(settings, **given).replace(
        max_examples=max_batches,
        time_budget=duration,
        schedule="random",
        example_db=None,  # free-running examples do not replay
    )
    return run(load, settings, free_running=True, **rest)


def fuzz(
    target: Target | str,
    settings: Settings | None = None,
    **options: Any,
) -> RunReport:
    """Fuzz ``target``; raise ``AssertionError`` with the text report if it finds anything.

    For a user's test suite::

        from fuzzer import fuzz
        from myapp.fuzzspec import target

        def test_no_races():
            fuzz(target, max_examples=200)

    ``target`` is a ``Target`` or a reference (``"myapp.fuzzspec:target"``);
    ``settings`` a ``Settings``, and ``options`` its fields as keywords (and those of
    ``run``). The database is ``$FUZZER_DB`` when set, else SQLite (``db=`` says
    otherwise). Nothing is written unless asked: ``report_dir=`` writes a report per
    finding (JSON, a pytest regression test, the HTML report) so the failure message can
    say how to replay them, and ``example_db=`` keeps Hypothesis's example database there
    (failures found before are replayed first). The pytest plugin (``fuzzer_run``) passes
    both, under the test's temporary directory.
    """
    __tracebackhide__ = True
    given, rest = split_settings(options)
    settings = Settings.of(Settings.from_environment(settings), **given)
    report = run(target, settings, **rest)
    if report.findings:
        raise AssertionError(failure_message(report))
    return report


def failure_message(report: RunReport) -> str:
    """What a test that found races fails with: the count, where the reports are, and
    the text report of every finding."""
    where = f"; reports in {report.directory}/" if report.directory else ""
    return (
        f"{len(report.findings)} finding(s) in {report.target} after "
        f"{report.result.examples} examples{where}\n\n" + report.text()
    )
