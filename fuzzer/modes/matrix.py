"""One target across databases and isolation levels: a table of verdicts.

``run_matrix`` searches the target once per cell (database × isolation level);
``replay_matrix`` runs one recorded scenario and schedule in every cell instead, so
the same interleaving can be compared across engines and levels (DESIGN.md §9). A
cell whose database cannot be reached is reported as unavailable, not as an error.
Each result says what the cell showed, and whether that is what the target
declares for it (``Target.expected``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fuzzer.db import parse as parse_db
from fuzzer.errors import DatabaseError
from fuzzer.execute.faults import available
from fuzzer.findings import Finding, Reproduced, label
from fuzzer.modes import applog
from fuzzer.modes.logsummary import AppLogSummary
from fuzzer.report import json as report_json
from fuzzer.search.events import Listener, ignore
from fuzzer.settings import Settings
from fuzzer.target.contract import Target

T = TypeVar("T")
DATABASES = ("sqlite", "mariadb", "postgres")
#: a cell's settings unless told otherwise: a smaller budget than a run's, nothing written
CELL = Settings(max_examples=100, shrink_budget=30.0)
LEVELS = ("read-uncommitted", "read-committed", "repeatable-read", "serializable")


@dataclass(frozen=True)
class Cell:
    """Where one run of the matrix happens."""

    database: str  # sqlite, mariadb, mysql, postgres, or a URL
    isolation: str | None = None  # None: the database's default

    @property
    def level(self) -> str:
        return self.isolation or "default"


@dataclass
class CellResult:
    cell: Cell
    status: str  # "clean" | "found" | "unavailable"
    server: str = ""  # "MariaDB 10.11.19"
    level: str = ""  # as the server reports it: "REPEATABLE READ"
    kinds: tuple[str, ...] = ()
    shown: tuple[str, ...] = ()  # one line per finding: what it showed
    expected: frozenset[str] | None = None
    examples: int = 0
    seconds: float = 0.0
    timeouts: int = 0
    db_blocks: int = 0
    python_blocks: int = 0
    reproduced: Reproduced | None = None  # replays: how often the recorded finding showed
    reason: str = ""  # why a cell is unavailable
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def as_expected(self) -> bool | None:
        if self.status == "unavailable" or self.expected is None:
            return None
        return frozenset(self.kinds) == self.expected

    @property
    def rate(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else 0.0


def cells(
    databases: Sequence[str] = DATABASES, levels: Sequence[str] | None = LEVELS
) -> list[Cell]:
    """Every database × level; SQLite (which has one level) only at its own."""
    result = []
    for database in databases:
        if database == "sqlite" or database.startswith("sqlite:"):
            result.append(Cell(database))
        else:
            result += [Cell(database, level) for level in (levels or (None,))]
    return result


def expectation_key(database: dict[str, Any]) -> tuple[str, str]:
    """("mariadb", "repeatable-read") for a database description (Databases.describe)."""
    dialect = database.get("dialect", "sqlite")
    if dialect == "sqlite":
        return "sqlite", ""
    if dialect == "postgresql":
        name = "postgres"
    else:
        server = str(database.get("server_version", "")).lower()
        name = "mariadb" if "mariadb" in server else "mysql"
    level = str(database.get("isolation_level", "")).lower().replace(" ", "-")
    return name, level


def run_matrix(
    target: Target,
    grid: Sequence[Cell],
    settings: Settings | None = None,
    *,
    on_cell: Callable[[CellResult], None] = lambda result: None,
    on_event: Callable[[Cell], Listener] | None = None,
    quiet_app: bool = True,
    **options: Any,
) -> list[CellResult]:
    """Search ``target`` in every cell with ``settings`` (default: ``CELL``; ``options``
    are its fields as keywords, applied over it), each cell on its own database and
    level, writing nothing; with ``settings.faults`` (``--faults``), injecting those errors
    where each cell's database can raise them. ``quiet_app``: each cell keeps the app's
    logging and stderr from the terminal (False: the caller does, ``logged``)."""
    from fuzzer.modes.run import run

    settings = Settings.of(settings or CELL, **options)
    faults = settings.faults

    results = []
    unavailable: dict[str, str] = {}
    for cell in grid:
        if cell.database in unavailable:
            result = CellResult(cell, "unavailable", reason=unavailable[cell.database])
        else:
            try:
                report = run(
                    target,
                    settings.replace(
                        db=cell.database,
                        isolation=cell.isolation,
                        report_dir=None,
                        example_db=None,
                        faults=available(parse_db(cell.database).dialect, faults),
                    ),
                    on_event=on_event(cell) if on_event else ignore,
                    quiet_app=quiet_app,
                )
            except DatabaseError as exc:
                if not _unreachable(exc):
                    raise
                unavailable[cell.database] = str(exc)
                result = CellResult(cell, "unavailable", reason=str(exc))
            else:
                stats = report.costs.scheduler
                name, level = expectation_key(report.database)
                result = CellResult(
                    cell,
                    "found" if report.findings else "clean",
                    server=str(report.database.get("server_version", "")),
                    level=str(report.database.get("isolation_level", "")),
                    kinds=tuple(sorted({f.kind for f in report.findings})),
                    shown=tuple(shown(f) for f in report.findings),
                    expected=target.expected(name, level, faults=bool(faults)),
                    examples=report.result.examples,
                    seconds=report.result.seconds - report.result.shrink_seconds,
                    timeouts=stats.timeouts,
                    db_blocks=stats.db_blocks,
                    python_blocks=stats.python_blocks,
                )
        results.append(result)
        on_cell(result)
    return results


def replay_matrix(
    path: str,
    grid: Sequence[Cell],
    settings: Settings | None = None,
    *,
    times: int = 1,
    on_cell: Callable[[CellResult], None] = lambda result: None,
    **options: Any,
) -> list[CellResult]:
    """Run the scenario and schedule recorded in ``path`` in every cell, ``times`` times,
    with the limits of ``settings`` (``options``: its fields as keywords)."""
    from fuzzer.execute.instrument import load_target
    from fuzzer.execute.runner import Controlled
    from fuzzer.model import Scenario
    from fuzzer.modes.session import Session, limits_of
    from fuzzer.search.engine import evaluate

    document = report_json.load(path)
    target = load_target(document["target"])
    scenario = Scenario.from_json(document["scenario"])
    fingerprint = document["fingerprint"]
    settings = Settings.of(settings, **options)
    limits = limits_of(settings)
    results = []
    unavailable: dict[str, str] = {}
    for cell in grid:
        if cell.database in unavailable:
            result = CellResult(cell, "unavailable", reason=unavailable[cell.database])
            results.append(result)
            on_cell(result)
            continue

        def work(s: Session, cell: Cell = cell) -> CellResult:
            assert s.oracle is not None
            kinds: set[str] = set()
            seen: dict[str, str] = {}
            hits = 0
            started = time.monotonic()
            for _ in range(times):
                _, _, findings = evaluate(scenario, s.execute, s.oracle, Controlled(limits))
                hits += any(f.fingerprint == fingerprint for f in findings)
                for f in findings:
                    kinds.add(f.kind)
                    seen.setdefault(f.fingerprint, shown(f))
            stats = s.harness.costs.scheduler if s.harness else None
            name, level = expectation_key(s.database_info)
            return CellResult(
                cell,
                "found" if kinds else "clean",
                server=str(s.database_info.get("server_version", "")),
                level=str(s.database_info.get("isolation_level", "")),
                kinds=tuple(sorted(kinds)),
                shown=tuple(seen.values()),
                expected=target.expected(name, level),
                examples=times,
                seconds=time.monotonic() - started,
                timeouts=stats.timeouts if stats else 0,
                db_blocks=stats.db_blocks if stats else 0,
                python_blocks=stats.python_blocks if stats else 0,
                reproduced=Reproduced(hits, times),
            )

        try:
            session = Session(target, settings.replace(db=cell.database, isolation=cell.isolation))
            result = session.run(work)
        except DatabaseError as exc:
            if not _unreachable(exc):
                raise
            unavailable[cell.database] = str(exc)
            result = CellResult(cell, "unavailable", reason=str(exc))
        results.append(result)
        on_cell(result)
    return results


def _unreachable(exc: DatabaseError) -> bool:
    return str(exc).startswith("Cannot connect to")


def shown(finding: Finding) -> str:
    """What a finding showed, in one line."""
    if finding.kind == "hang" and finding.execution.hang is not None:
        blocked = finding.execution.hang.blocked
        return "hang: " + "; ".join(f"{label(i)} {why}" for i, why in sorted(blocked.items()))
    if finding.kind == "concurrency-error":
        errors = [r.error for r in finding.execution.responses if r is not None and r.error]
        return f"concurrency-error: {_error_text(errors[0]) if errors else finding.exception}"
    difference = finding.explanation.difference
    what = difference.describe() if difference is not None else finding.explanation.however
    return f"{finding.kind}: {what}"


def _error_text(error: str) -> str:
    """The driver's exception in a recorded error: "SerializationFailure: could not …"."""
    text = error.split(" [SQL:", 1)[0]
    start = text.find("(")
    if start >= 0:
        end = text.find(")", start)
        inner = text[start + 1 : end]
        rest = text[end + 1 :].strip()
        if inner and not inner[0].isdigit():  # (psycopg.errors.SerializationFailure) message
            return f"{inner.rsplit('.', 1)[-1]}: {rest}"[:120]
        if inner[:4].isdigit():  # (pymysql.err.OperationalError) (1213, 'Deadlock …')
            return f"error {inner}"[:120]
    return text[:120]


def render(results: Sequence[CellResult], *, title: str) -> str:
    """The matrix as a plain-text table, then what each cell showed."""
    header = ("database", "level", "verdict", "expected", "examples", "ex/s", "timeouts")
    rows = []
    for r in results:
        verdict = (
            "unavailable"
            if r.status == "unavailable"
            else (", ".join(r.kinds) or "clean") + (f" ({r.reproduced})" if r.reproduced else "")
        )
        expected = {True: "yes", False: "NO", None: ""}[r.as_expected]
        if r.as_expected is False and r.expected is not None:
            expected += f" (expected {', '.join(sorted(r.expected)) or 'clean'})"
        rows.append(
            (
                r.server or r.cell.database,
                r.level or r.cell.level,
                verdict,
                expected,
                str(r.examples) if r.status != "unavailable" else "",
                f"{r.rate:.1f}" if r.status != "unavailable" else "",
                str(r.timeouts) if r.status != "unavailable" else "",
            )
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [title, ""]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    lines.append("  ".join("─" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    details = [r for r in results if r.shown or r.status == "unavailable"]
    if details:
        lines.append("")
        lines.append("What each cell showed:")
        for r in details:
            where = f"{r.server or r.cell.database} {(r.level or r.cell.level).lower()}"
            if r.status == "unavailable":
                lines.append(f"  {where}: unavailable: {r.reason}")
            for line in r.shown:
                lines.append(f"  {where}: {line}")
    return "\n".join(lines)


def logged(
    call: Callable[[], T], *, name: str, report_dir: str, live: bool
) -> tuple[T, AppLogSummary]:
    """A matrix (``run_matrix(..., quiet_app=False)`` or ``replay_matrix``) with the app's
    logging and stderr of every cell in one log, kept as ``app.log`` in a run directory
    of its own under ``report_dir`` when the app logged anything."""

    def directory(result: T) -> str:
        path = report_json.run_directory(report_dir, f"{name}-matrix")
        os.makedirs(path, exist_ok=True)
        return path

    return applog.logged(call, live=live, keep_in=directory)
