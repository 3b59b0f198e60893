"""What the command line and a user's test suite call: run a search, replay a report.

``fuzz(target)`` is the one-liner for a test suite: it raises ``AssertionError`` with
the text report of every finding. ``run(...)`` does the same work and returns a
``RunReport`` (the CLI uses it); ``replay(path)`` re-runs a recorded scenario and
schedule without Hypothesis.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .db import parse as parse_db
from .engine import Search, SearchResult, SearchSettings, evaluate
from .findings import Finding
from .model import Execution, Scenario
from .report import json as report_json
from .report.text import curl_chain, finding_text
from .runner import Controlled, Costs, Serial
from .scheduler import Limits
from .schedules import Mode
from .session import Session
from .survey import check_reachable, openings, survey
from .survey import describe as describe_survey
from .target import Target, load_target

DEFAULT_REPORT_DIR = "reports"


@dataclass
class RunReport:
    """Everything one run found, and where it wrote it."""

    target: str
    database: dict[str, Any]
    settings: dict[str, Any]
    result: SearchResult
    costs: Costs
    directory: str | None = None
    files: list[tuple[Finding, str]] = field(default_factory=list)
    references: int = 0

    @property
    def findings(self) -> list[Finding]:
        return self.result.findings

    @property
    def exit_code(self) -> int:
        return 1 if self.findings else 0

    def reproduce(self, finding: Finding) -> list[str]:
        path = dict((id(f), p) for f, p in self.files).get(id(finding))
        lines = []
        if path:
            lines.append(f"fuzzer replay {path}")
        lines.append("# the requests in order, against your own server (no interleaving control):")
        lines.append(curl_chain(finding.scenario.init + finding.scenario.requests))
        return lines

    def text(self) -> str:
        return "\n".join(finding_text(f, reproduce=self.reproduce(f)) for f in self.findings)


def resolve(target: Target | str) -> Target:
    return load_target(target) if isinstance(target, str) else target


def run(
    target: Target | str,
    *,
    db: str = "sqlite",
    max_examples: int = 200,
    seed: int | None = None,
    time_budget: float | None = None,
    shrink_budget: float = 60.0,
    isolation: str | None = None,
    report_dir: str | None = DEFAULT_REPORT_DIR,
    keep_db: bool = False,
    allow_wipe: bool = False,
    port: int = 0,
    hang_timeout: float = 3.0,
    stuck_grace: float = 6.0,
    example_db: str | None = os.path.join(".fuzzer", "examples"),
    strict: bool = False,
    schedule: Mode = "conflict",
    on_event: Callable[..., None] = lambda *a, **k: None,
    free_running: bool = False,
) -> RunReport:
    """Search a target for races and write a report per finding. With ``free_running``
    (the stress mode) requests run with real timing and no gates."""
    target = resolve(target)
    reference = target.reference or target.name
    parse_db(db)  # a bad --db fails before anything is created
    limits = Limits(hang_timeout=hang_timeout, stuck_grace=stuck_grace)
    session = Session(
        target,
        db=db,
        isolation=isolation,
        keep_db=keep_db,
        allow_wipe=allow_wipe,
        port=port,
        limits=limits,
        strict=strict,
    )
    settings = SearchSettings(
        max_examples=max_examples,
        seed=seed,
        time_budget=time_budget,
        shrink_budget=shrink_budget,
        example_db=example_db,
        database_key=f"{reference}|{session.databases.dialect}|{schedule}",
        limits=limits,
        schedule=schedule,
        free_running=free_running,
        shrink=not free_running,
    )

    def work(s: Session) -> RunReport:
        from strategies import scenarios

        assert s.oracle is not None and s.harness is not None
        harness = s.harness

        def alone(scenario: Scenario) -> Execution:
            return s.execute(scenario, Serial(tuple(range(len(scenario.requests)))))

        surveyed = survey(target, alone)
        check_reachable(target, surveyed, alone, s.app)
        on_event(
            "start",
            target=reference,
            database=s.database_info,
            max_examples=max_examples,
            time_budget=time_budget,
            survey=describe_survey(surveyed),
        )
        search = Search(
            scenarios(target, schedule=schedule, prefer=surveyed.writers()),
            s.execute,
            s.oracle,
            settings,
            http_requests=lambda: harness.costs.http_requests,
            on_event=on_event,
            traces={e.endpoint: e.trace for e in surveyed.endpoints},
            seeds=openings(surveyed, target) if schedule == "conflict" and not free_running else (),
        )
        result = search.run()
        return RunReport(
            target=reference,
            database=s.database_info,
            settings={
                "max_examples": max_examples,
                "seed": seed,
                "time_budget": time_budget,
                "isolation": isolation,
                "db": db,
            },
            result=result,
            costs=harness.costs,
            references=s.oracle.stats.references,
        )

    report = session.run(work)
    if report_dir is not None and report.findings:
        write_reports(report, report_dir, target)
    return report


def stress(
    target: Target | str,
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
    object.__setattr__(load, "reference", target.reference)
    options.setdefault("example_db", None)  # free-running examples do not replay
    return run(
        load,
        max_examples=max_batches,
        time_budget=duration,
        free_running=True,
        schedule="random",
        **options,
    )


def write_reports(report: RunReport, root: str, target: Target) -> None:
    directory = report_json.run_directory(root, target.name)
    files: list[tuple[Finding, str]] = []
    for index, finding in enumerate(report.findings, 1):
        path = os.path.join(directory, report_json.finding_filename(index, finding))
        document = report_json.finding_document(
            finding,
            target=report.target,
            database=report.database,
            seed=report.settings.get("seed"),
            replay=f"fuzzer replay {path}",
        )
        report_json.write_atomic(path, document)
        files.append((finding, path))
    report_json.write_atomic(
        os.path.join(directory, "manifest.json"),
        report_json.manifest_document(
            target=report.target,
            database=report.database,
            settings=report.settings,
            summary={
                "examples": report.result.examples,
                "seconds": round(report.result.seconds, 2),
                "stop_reason": report.result.stop_reason,
            },
            files=files,
        ),
    )
    report.directory = directory
    report.files = files


def fuzz(target: Target | str, *, max_examples: int = 200, **options: Any) -> RunReport:
    """Fuzz ``target`` and fail with the text report if it finds anything.

    For a user's test suite::

        def test_no_races():
            fuzz(my_target, max_examples=200)
    """
    options.setdefault("report_dir", None)
    report = run(target, max_examples=max_examples, **options)
    if report.findings:
        raise AssertionError(
            f"{len(report.findings)} finding(s) in {report.target}:\n\n" + report.text()
        )
    return report


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
    """Re-run a recorded scenario and schedule, ``times`` times, without Hypothesis."""
    document = report_json.load(path)
    target = load_target(document["target"])
    scenario = Scenario.from_json(document["scenario"])
    fingerprint = document["fingerprint"]
    database = db or _recorded_db(document)
    limits = Limits(hang_timeout=hang_timeout)
    session = Session(target, db=database, isolation=isolation, limits=limits)

    def work(s: Session) -> ReplayResult:
        assert s.oracle is not None
        hits, traces, last = 0, set(), None
        for _ in range(times):
            execution, _, findings = evaluate(scenario, s.execute, s.oracle, Controlled(limits))
            traces.add(tuple(execution.trace))
            match = next((f for f in findings if f.fingerprint == fingerprint), None)
            if match is not None:
                hits += 1
                last = match
        return ReplayResult(
            path,
            fingerprint,
            document["kind"],
            times,
            hits,
            len(traces) == 1,
            s.database_info,
            last,
        )

    return session.run(work)


def _recorded_db(document: dict[str, Any]) -> str:
    database = document.get("database") or {}
    dialect = database.get("dialect", "sqlite")
    if dialect == "sqlite":
        return "sqlite"
    url = database.get("url")
    return str(url) if url else dialect
