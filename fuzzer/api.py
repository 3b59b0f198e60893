"""What the command line and a user's test suite call: run a search, replay a report.

``fuzz(target)`` is the one-liner for a test suite: it raises ``AssertionError`` with
the text report of every finding. ``run(...)`` does the same work and returns a
``RunReport`` (the CLI uses it); ``replay(path)`` re-runs a recorded scenario and
schedule without Hypothesis.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis.strategies import SearchStrategy

from fuzzer.db import parse as parse_db
from fuzzer.errors import InvalidReport, InvalidTarget, TargetSetupError
from fuzzer.execute.faults import chosen as fault_kinds
from fuzzer.execute.instrument import load_target
from fuzzer.execute.runner import Controlled, Costs, Serial
from fuzzer.execute.scheduler import Limits
from fuzzer.findings import Finding, fails_run
from fuzzer.model import Execution, Scenario, Step
from fuzzer.modes.applog import AppLog, AppLogSummary
from fuzzer.modes.session import Session
from fuzzer.report import json as report_json
from fuzzer.report.text import finding_text
from fuzzer.report.writer import ReportWriter, Written, reproduce_lines
from fuzzer.search.engine import Search, SearchResult, SearchSettings, evaluate
from fuzzer.search.exercised import unexercised
from fuzzer.search.faults import openings as fault_openings
from fuzzer.search.openings import openings
from fuzzer.search.pairs import Plan, plan
from fuzzer.search.schedules import Mode
from fuzzer.search.survey import check_reachable, survey
from fuzzer.search.survey import describe as describe_survey
from fuzzer.settings import REPORTS, Settings
from fuzzer.settings import split as split_settings
from fuzzer.target.contract import Target, validate

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


def resolve(target: Target | str) -> Target:
    """A Target from a reference or an object, checked. (The Session that runs it
    instruments the process for its own length: fuzzer/execute/gates.py.)"""
    if isinstance(target, str):
        return load_target(target)
    if not isinstance(target, Target):
        raise InvalidTarget(
            f"Expected a fuzzer.Target or a reference like 'package.module:attribute' but got "
            f"{type(target).__name__} {target!r}"[:300]
        )
    validate(target)
    return target


def run(
    target: Target | str,
    settings: Settings | None = None,
    *,
    on_event: Callable[..., None] = lambda *a, **k: None,
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
    search_settings = SearchSettings.of(
        settings,
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

    app_log = AppLog(live=verbose) if quiet_app else None
    writers: list[ReportWriter] = []

    def work(s: Session) -> RunReport:
        assert s.oracle is not None and s.harness is not None
        if app_log is not None:
            app_log.capture_handlers()  # those the app's factory and setup added
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

        def events(event: str, **data: Any) -> None:
            if event in ("unshrunk", "final") and writer is not None:
                writer.add(data["finding"])  # written when seen, rewritten when final
            elif event == "unconfirmed" and writer is not None:
                writer.withdraw(data["finding"].fingerprint)
            on_event(event, **data)

        on_event(  # before the survey: a target of a hundred endpoints takes a while
            "start",
            target=reference,
            database=s.database_info,
            max_examples=settings.max_examples,
            time_budget=settings.time_budget,
            notices=[*s.databases.notices, *(s.foreign.notices() if s.foreign else [])],
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
            search_settings,
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

    if app_log is None:
        return session.run(work)
    with app_log:
        report = session.run(work)

    def run_directory() -> str | None:
        # made for the log alone when nothing was found: not the report's directory,
        # which the summary lists with report.html and junit.xml
        if report.directory is None and writers:
            return writers[0].ensure_directory()
        return report.directory

    report.app_log = app_log.summary(run_directory)
    return report


@dataclass(frozen=True)
class Searchable:
    """What a search of one target starts from, after its endpoints were surveyed."""

    strategy: SearchStrategy[Scenario]
    traces: dict[str, tuple[Step, ...]]  # each endpoint's steps alone: conflict points
    openings: tuple[Scenario, ...]  # the systematic opening before Hypothesis
    survey: Mapping[str, str]
    plan: Plan | None = None  # the bounded exhaustive search of endpoint pairs after it


def searchable(
    target: Target,
    s: Session,
    schedule: Mode,
    *,
    allow_unexercised: bool = False,
    on_event: Callable[..., None] = lambda *a, **k: None,
    faults: Sequence[str] = (),
) -> Searchable:
    """Survey each endpoint alone (and check that each can be reached and that something
    was exercised), then the scenario strategy, each endpoint's steps for conflict-guided
    schedules, the opening and the pairs' plan; "surveying" and "planned" events say how
    far it got. With ``faults`` (kinds of error to inject), the opening starts with the
    fault opening (fuzzer/search/faults.py)."""
    from fuzzer.strategies import scenarios

    def alone(scenario: Scenario) -> Execution:
        return s.execute(scenario, Serial(tuple(range(len(scenario.requests)))))

    started = time.monotonic()
    on_event("surveying", endpoints=len(target.endpoints))
    surveyed = survey(target, alone)
    check_reachable(target, surveyed, alone, s.app)
    if not allow_unexercised:
        why = unexercised(surveyed, target, s.databases.initial)
        if why is not None:
            raise TargetSetupError(why)
    surveyed_after = time.monotonic() - started
    conflict = schedule == "conflict"
    opening = openings(surveyed, target) if conflict else []
    if faults and conflict:
        opening = fault_openings(surveyed, faults, opening) + opening
    prepared = Searchable(
        strategy=scenarios(
            target, schedule=schedule, prefer=surveyed.writers(), fault_kinds=faults
        ),
        traces={e.endpoint: e.trace for e in surveyed.endpoints},
        openings=tuple(opening),
        survey=describe_survey(surveyed),
        plan=plan(surveyed, target) if conflict else None,
    )
    on_event(
        "planned",
        endpoints=len(surveyed.endpoints),
        writers=sum(1 for e in surveyed.endpoints if e.writes),
        surveyed=surveyed_after,
        seconds=time.monotonic() - started - surveyed_after,
        openings=len(prepared.openings),
        plan=prepared.plan,
    )
    return prepared


def check(target: Target | str, *, db: str = "sqlite") -> dict[str, str]:
    """Set the target up (databases, setup, logins) and send each endpoint's requests
    alone: one line per endpoint saying what it answered and touched. Raises the error
    that stops a run, if any (``fuzzer init`` tries the spec it wrote this way)."""
    target = resolve(target)
    with Session(target, db=db) as s:

        def alone(scenario: Scenario) -> Execution:
            return s.execute(scenario, Serial(tuple(range(len(scenario.requests)))))

        surveyed = survey(target, alone)
        check_reachable(target, surveyed, alone, s.app)
        return dict(describe_survey(surveyed))


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


@dataclass
class ReplayResult:
    path: str
    fingerprint: str
    kind: str
    times: int
    reproduced: int
    traces_identical: bool
    database: dict[str, Any]
    last: Finding | None
    target: str = ""  # the recorded target's reference
    # when the traces differ: the first step where a replay's differs from the first's
    first_difference: str = ""

    @property
    def status(self) -> str:
        if self.reproduced == self.times:
            return "reproduced"
        if self.reproduced == 0:
            return "fixed"
        return "flaky"

    @property
    def exit_code(self) -> int:
        return {"reproduced": 1, "fixed": 0, "flaky": 4}[self.status]


def replay(
    path: str,
    *,
    times: int = 1,
    db: str | None = None,
    isolation: str | None = None,
    hang_timeout: float = 3.0,
) -> ReplayResult:
    """Re-run a recorded scenario and schedule, ``times`` times, without Hypothesis.

    By default on the kind of database the report was written on; ``db`` and
    ``isolation`` replay it elsewhere.
    """
    document = report_json.load(path)
    target = load_target(document["target"])
    scenario = Scenario.from_json(document["scenario"])
    fingerprint = document["fingerprint"]
    database = db or report_json.recorded_db(document.get("database") or {})
    if isolation is None and db is None:
        isolation = _recorded_isolation(document)
    runs, info = _replays(target, scenario, database, isolation, times, hang_timeout)
    hits = [next((f for f in found if f.fingerprint == fingerprint), None) for _, found in runs]
    matched = [f for f in hits if f is not None]
    return ReplayResult(
        path,
        fingerprint,
        document["kind"],
        times,
        len(matched),
        len({_interleaving(trace) for trace, _ in runs}) == 1,
        info,
        matched[-1] if matched else None,
        target=document["target"],
        first_difference=_first_difference([trace for trace, _ in runs]),
    )


def _first_difference(traces: list[tuple[Step, ...]]) -> str:
    """Where the first replay whose trace differs from the first replay's departs from
    it: "step 4: replay 1 had R2 COMMIT, replay 3 R1 UPDATE … (1 row)"; "" if none do."""
    if not traces:
        return ""
    first = _interleaving(traces[0])
    for number, trace in enumerate(traces[1:], 2):
        other = _interleaving(trace)
        if other == first:
            continue
        at = next(
            (k for k, (a, b) in enumerate(zip(first, other, strict=False)) if a != b),
            min(len(first), len(other)),
        )
        mine, theirs = _step_text(traces[0], at), _step_text(trace, at)
        if mine == theirs:  # the same statement: its parameters differ
            mine, theirs = _step_text(traces[0], at, True), _step_text(trace, at, True)
        return f"step {at + 1}: replay 1 had {mine}, replay {number} {theirs}"
    return ""


def _step_text(trace: tuple[Step, ...], at: int, params: bool = False) -> str:
    if at >= len(trace):
        return "no step (its trace ended)"
    step = trace[at]
    what = " ".join(step.text.split())[:60] if step.text else step.kind.upper()
    if params and step.params:
        what += f" {step.params[:80]}"
    done = (
        f" ({step.rowcount} row{'s' if step.rowcount != 1 else ''})"
        if step.rowcount is not None
        else ""
    )
    error = f" ({step.error.split(':')[0]})" if step.error else ""
    return f"R{step.request + 1} {what}{done}{error}"


def assert_serializable(
    target: Target | str,
    scenario: Scenario | dict[str, Any],
    *,
    db: str = "sqlite",
    isolation: str | None = None,
    times: int = 1,
    hang_timeout: float = 3.0,
) -> None:
    """Run ``scenario`` under its own schedule and fail with the report if it shows any finding.

    What a generated regression test calls: ``scenario`` is a ``Scenario`` or its JSON
    form (a finding report's ``"scenario"``).
    """
    __tracebackhide__ = True
    resolved = resolve(target)
    if not isinstance(scenario, Scenario):
        try:
            scenario = Scenario.from_json(scenario)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidReport(
                f"Not a scenario (init, requests, schedule, observers): {exc}"
            ) from None
    runs, info = _replays(resolved, scenario, db, isolation, times, hang_timeout)
    failing = [found for _, found in runs if found]
    if failing:
        where = info.get("server_version", info.get("dialect", ""))
        raise AssertionError(
            f"the pinned schedule still fails in {len(failing)} of {times} run(s) on {where}:\n\n"
            + "\n".join(finding_text(f) for f in failing[-1])
        )


def _replays(
    target: Target,
    scenario: Scenario,
    db: str,
    isolation: str | None,
    times: int,
    hang_timeout: float,
) -> tuple[list[tuple[tuple[Step, ...], list[Finding]]], dict[str, Any]]:
    """Run one scenario ``times`` times under control: each run's trace and findings."""
    limits = Limits(hang_timeout=hang_timeout)
    session = Session(target, db=db, isolation=isolation, limits=limits)

    def work(s: Session) -> tuple[list[tuple[tuple[Step, ...], list[Finding]]], dict[str, Any]]:
        assert s.oracle is not None
        runs = []
        for _ in range(times):
            execution, _, findings = evaluate(scenario, s.execute, s.oracle, Controlled(limits))
            runs.append((tuple(execution.trace), findings))
        return runs, s.database_info

    return session.run(work)


def _recorded_isolation(document: dict[str, Any]) -> str | None:
    """The ``--isolation`` the finding was recorded at (None: the database's default)."""
    level = (document.get("database") or {}).get("isolation")
    return str(level) if level and level != "default" else None


def _interleaving(trace: tuple[Step, ...]) -> tuple[tuple[Any, ...], ...]:
    """What a replay must repeat: who ran which statement in which order, and what it did.
    (Which pooled connection a request was handed, and the text of a lock wait, may vary;
    so may a parameter that is random by nature, such as a token from ``secrets`` or a
    ``time()`` stamp: masks.meaningful tells them, and they are compared as placeholders.
    Flask-Caching's memoize steps are compared by their operation alone: their keys end
    with a version drawn at random after every reset.)"""
    return tuple(
        (s.request, s.number, s.kind, *_what(s), s.database, s.rowcount, s.error) for s in trace
    )


def _what(step: Step) -> tuple[Any, Any]:
    """A step's text and parameters as a replay must repeat them."""
    if step.text.startswith("memo "):
        return " ".join(step.text.split()[:2]), None
    return step.text, _params(step.params)


def _params(params: Any) -> Any:
    """Parameters with their random-by-nature values as placeholders."""
    import ast

    if isinstance(params, str) and params[:1] in "([{":  # the trace keeps their repr
        try:
            params = ast.literal_eval(params)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return params
    return _placeholders(params)


def _placeholders(value: Any) -> Any:
    from fuzzer.judge.masks import meaningful

    if isinstance(value, dict):
        return tuple(sorted((k, _placeholders(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_placeholders(v) for v in value)
    if isinstance(value, str) and _STAMP.fullmatch(value):
        return "<time>"  # the clock read while the request ran (a last_seen stamp)
    return "<random>" if meaningful(value) else value


#: A date and time to the fraction of a second, as drivers are given one.
_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}\.\d+([+-]\d{2}:?\d{2}|Z)?")


def reference_of(target: Target) -> str:
    """``package.module:attribute`` of a Target object, so its reports can be replayed.

    Looked up where its app factory is defined first, then in every loaded module; a
    target that no module holds keeps its name (its reports then name no loadable target).
    """
    if target.reference:
        return target.reference
    import sys

    first = [
        sys.modules.get(getattr(f, "__module__", "") or "") for f in (target.app, target.setup)
    ]
    for module in [*first, *list(sys.modules.values())]:
        for name, value in list(vars(module).items()) if module is not None else ():
            if value is target:
                return f"{module.__name__}:{name}"  # type: ignore[union-attr]
    return target.name
