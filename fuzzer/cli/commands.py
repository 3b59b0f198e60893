"""The command line: ``fuzzer run``, ``fuzzer replay``, ``fuzzer matrix``, ``fuzzer stress``,
``fuzzer soak``, ``fuzzer init``, ``fuzzer clean``.

Exit codes: 0 no finding (or, for replay, fixed); 1 findings (reproduced); 2 a usage,
target or environment error, as one line that says how to fix it; 3 a bug in the
fuzzer itself; 4 a replay that reproduced only sometimes (flaky); 130 interrupted
(Ctrl-C or SIGTERM). A reader that closes stdout early (``fuzzer run … | head -1``)
changes none of these: the run goes on, writes its reports, and exits with its code.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from typing import Any, NoReturn, TextIO, cast

import click

from fuzzer.cli.output import Output
from fuzzer.cli.output import options as output_options
from fuzzer.errors import FuzzerError, InternalError, InvalidOption
from fuzzer.report import reporting
from fuzzer.settings import DB_ENVIRONMENT, ISOLATION_LEVELS, Settings
from fuzzer.settings import split as split_settings


class _Group(click.Group):
    """Usage errors exit with 2 and one line, like every other error."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("standalone_mode", True)
        return super().main(*args, **kwargs)


class _Stdout:
    """``sys.stdout`` that outlives its reader: when the pipe closes (``| head -1``), the
    rest of the output goes to /dev/null and the run goes on to its own exit code. (Rich
    would otherwise exit with 1, the findings code, at the first write that fails.)"""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self.reader_gone = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())  # what is still buffered goes there too
        finally:
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _guard(action: Callable[[], int]) -> NoReturn:
    """Run a command's action: its exit code, one line for an error, 130 when stopped.

    SIGINT and SIGTERM (a CI job's timeout) set a flag the search checks before each
    execution (fuzzer/search/interrupt.py), so a stop is never lost, wherever it lands;
    a stop that came after the last check is still answered with 130."""
    from fuzzer.search import interrupt

    if not isinstance(sys.stdout, _Stdout):
        sys.stdout = cast(TextIO, _Stdout(sys.stdout))
    try:
        with interrupt.installed():
            code = action()
            interrupt.check()
    except FuzzerError as exc:
        reporting.error(str(exc))
        sys.exit(exc.exit_code)
    except BaseException as exc:
        if interrupt.is_stop(exc):
            reporting.error("interrupted; findings written so far are kept in their reports")
            sys.exit(130)
        if not isinstance(exc, Exception):
            raise
        import traceback  # a bug in the fuzzer, never the user's fault

        traceback.print_exc()
        reporting.error(f"{InternalError.__doc__} ({type(exc).__name__}: {exc})")
        sys.exit(InternalError.exit_code)
    sys.exit(code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="flask-race-fuzzer", prog_name="fuzzer")
def main() -> None:
    """A concurrency fuzzer for Flask + SQLAlchemy apps: controlled interleavings over real
    HTTP and a real database, judged against serial runs, shrunk by Hypothesis."""


def _db_option(default: str | None = "sqlite") -> Callable[..., Any]:
    return click.option(
        "--db",
        default=default,
        show_default=default is not None,
        envvar=DB_ENVIRONMENT,
        show_envvar=True,
        metavar="URL",
        help="sqlite (a temporary file), mysql, mariadb, postgres, or a SQLAlchemy URL "
        f"on 127.0.0.1 (or in ${DB_ENVIRONMENT}, so a password stays out of the command line).",
    )


def _check_report_dir(path: str) -> None:
    """Create the report directory now, or refuse it (exit 2): a directory that cannot be
    written fails before the search, not after it with the finding lost."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    where = f"--report-dir {path}"
    if not os.path.isdir(existing):
        inside = "" if existing == os.path.abspath(path) else f" ({existing} is)"
        raise InvalidOption(
            f"Cannot write reports to {where}: it is a file, not a directory{inside}; "
            f"give a directory (it is created if missing)"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidOption(
            f"Cannot write reports to {where}: {existing} is not writable; give a directory "
            f"you may write to"
        )
    try:
        os.makedirs(path, exist_ok=True)
        # a real write: root passes every access() check, and /proc refuses anyway
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InvalidOption(
            f"Cannot write reports to {where}: {reason.lower()}; give a directory you may "
            f"write to (it is created if missing)"
        ) from None


def _isolation_option() -> Callable[..., Any]:
    return click.option(
        "--isolation",
        type=click.Choice(ISOLATION_LEVELS),
        default=None,
        help="Isolation level for the target's engines (default: the database's own).",
    )


def _faults_option() -> Callable[..., Any]:
    return click.option(
        "--faults",
        is_flag=False,
        flag_value="default",
        default=None,
        metavar="KINDS",
        help="Inject retryable database errors into the schedule: --faults alone injects "
        "deadlock, serialization and timeout (what the database can raise of them); or "
        "name kinds: deadlock,serialization,timeout,disconnect, or all.",
    )


def _fault_kinds(text: str | None) -> tuple[str, ...]:
    from fuzzer.execute.faults import parse

    if text is None:
        return ()
    try:
        return parse(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None


@main.command("run")
@click.argument("target")
@_db_option()
@click.option(
    "--max-examples",
    "-n",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Examples to try (each: one controlled run of a few concurrent requests).",
)
@click.option("--seed", type=int, default=None, help="Make the search repeatable.")
@click.option(
    "--time-budget",
    type=click.FloatRange(min=0.1),
    default=None,
    metavar="SECONDS",
    help="Stop searching after this long (shrinking has its own budget).",
)
@click.option(
    "--shrink-budget",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="At most this long shrinking and confirming the findings (after the search).",
)
@_isolation_option()
@click.option(
    "--report-dir",
    default="reports",
    show_default=True,
    metavar="DIR",
    help="Where to write the JSON of each finding.",
)
@click.option("--keep-db", is_flag=True, help="Keep the scratch database(s) afterwards.")
@click.option(
    "--allow-wipe",
    is_flag=True,
    help="Allow an existing database whose name does not start with fuzz/test.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    help="Serve the app on this loopback port (default: a free one).",
)
@click.option(
    "--hang-timeout",
    type=click.FloatRange(min=0.1),
    default=3.0,
    show_default=True,
    metavar="SECONDS",
    help="No progress for this long (no step, no thread's CPU clock or stack moving; "
    "grown by twice the slowest serial duration of the requests): a hang.",
)
@click.option(
    "--strict", is_flag=True, help="A request that finished before another started must precede it."
)
@click.option(
    "--strict-isolation",
    is_flag=True,
    help="Refuse an app that opens a Redis database other than the fuzzer's scratch one.",
)
@click.option(
    "--allow-unexercised",
    is_flag=True,
    help="Fuzz even when the survey exercised nothing (every request turned away, or most "
    "endpoints ran no SQL).",
)
@click.option(
    "--fail-on",
    default="all",
    show_default=True,
    metavar="WHAT",
    help="What makes the run exit 1: all (every confirmed finding), rows (all but findings "
    "where only responses differ), or a comma-separated list of kinds.",
)
@_faults_option()
@click.option(
    "--require-coverage",
    is_flag=True,
    help="Exit 2 (when nothing else failed it) if the run judged less than half of its "
    "examples or did not run the pairs' plan to the end: for CI.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="Show the app's logging and stderr live (always kept in app.log in the run directory).",
)
@output_options
def run_command(
    target: str,
    fail_on: str,
    faults: str | None,
    require_coverage: bool,
    no_progress: bool,
    verbose: bool,
    output: str,
    summary_file: str | None,
    **options: Any,
) -> None:
    """Fuzz TARGET (package.module:attribute). Exit 1 if it finds anything."""
    from fuzzer import api
    from fuzzer.findings import parse_fail_on
    from fuzzer.report.text import finding_text

    try:
        failing = parse_fail_on(fail_on)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fail-on") from None
    kinds = _fault_kinds(faults)

    out = Output("run", target, output, summary_file)

    def action() -> int:
        settings = _settings(options, fail_on=failing, faults=kinds)
        if settings.report_dir is not None:
            _check_report_dir(settings.report_dir)
        progress = out.progress(no_progress)
        try:
            report = api.run(target, settings, on_event=progress, verbose=verbose)
        finally:
            progress.stop()
        if out.text:
            for finding in report.findings:
                reporting.text("\n" + finding_text(finding, reproduce=report.reproduce(finding)))
            _summary(report)
            reporting.time_line(report.result, out.seconds)
            if report.app_log is not None:
                reporting.note(report.app_log.line())
            for line in report.redis_after:
                reporting.note(line)
            if settings.keep_db:
                for where in _kept(report.database):
                    reporting.note(f"Kept the scratch database {where}")
        code = report.exit_code
        if require_coverage and code == 0 and report.result.uncovered:
            code = 2
            if out.text:
                reporting.note("--require-coverage: the run did not cover enough (above); exit 2")
        out.run(report, code)
        return code

    _guard(out.guarded(action))


def _settings(options: dict[str, Any], **more: Any) -> Settings:
    """The command's options as one ``Settings`` (the command line's defaults: reports in
    ``reports/``, the example database in ``.fuzzer/examples``)."""
    given, rest = split_settings({**options, **more})
    if rest:
        raise InternalError(f"options of no Settings field: {', '.join(sorted(rest))}")
    return Settings.for_cli(**given)


def _summary(report: Any) -> None:
    result = report.result
    reporting.summary(
        report.findings,
        examples=result.examples,
        seconds=result.seconds,
        stop_reason=result.stop_reason,
        directory=report.directory,
        unknown=dict(result.unknown),
        references=report.references,
        coverage=result.coverage,
        unconfirmed=result.unconfirmed,
        treated=dict(result.treated),
        judged=dict(result.judged),
        masked=dict(result.masked),
        uncovered=result.uncovered,
    )


def _kept(database: dict[str, Any]) -> list[str]:
    """Where each kept database is: a file, or a database on a server."""
    from sqlalchemy.engine import make_url

    places = []
    for url in (database.get("databases") or {}).values():
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            places.append(f"{parsed.database} (remove it by hand, or: fuzzer clean --include-kept)")
        else:
            server = f"{parsed.host or 'localhost'}:{parsed.port or ''}".rstrip(":")
            places.append(
                f"{parsed.database} on {server} (--db {url.split('?')[0]}; "
                f"remove it with: fuzzer clean --db {database.get('url', '')} --include-kept)"
            )
    return places


@main.command("replay")
@click.argument("report", type=click.Path(dir_okay=False))
@click.option(
    "--times",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Replay this many times.",
)
@_db_option(default=None)
@_isolation_option()
@click.option(
    "--hang-timeout",
    type=click.FloatRange(min=0.1),
    default=3.0,
    show_default=True,
    metavar="SECONDS",
)
@output_options
def replay_command(
    report: str,
    times: int,
    db: str | None,
    isolation: str | None,
    hang_timeout: float,
    output: str,
    summary_file: str | None,
) -> None:
    """Re-run the scenario and schedule recorded in REPORT (a finding's JSON).

    Exit 1: reproduced every time; 0: fixed (never reproduced); 4: flaky."""
    from fuzzer import api
    from fuzzer.report.text import finding_text

    out = Output("replay", "", output, summary_file)

    def action() -> int:
        result = api.replay(
            report, times=times, db=db, isolation=isolation, hang_timeout=hang_timeout
        )
        out.replay(result)
        if out.json:
            return result.exit_code
        if result.last is not None:
            reporting.text(finding_text(result.last))
        where = result.database.get("server_version", "")
        if result.status == "reproduced":
            reporting.note(
                f"reproduced {result.reproduced}/{result.times}: {result.kind} on {where}"
            )
        elif result.status == "fixed":
            reporting.note(
                f"fixed: {result.kind} did not reproduce in {result.times} replay(s) on {where}"
            )
        else:
            reporting.note(f"flaky {result.reproduced}/{result.times}: {result.kind} on {where}")
        if not result.traces_identical:
            reporting.note(
                "the replays did not all give the same trace: the target or the "
                f"fuzzer is nondeterministic here; first at {result.first_difference}"
            )
        return result.exit_code

    _guard(out.guarded(action))


@main.command("matrix")
@click.argument("target", required=False)
@click.option(
    "--db",
    "databases",
    multiple=True,
    metavar="DB",
    help="A database to include (repeatable, or comma-separated); "
    "default: sqlite, mariadb, postgres.",
)
@click.option(
    "--isolation",
    "levels",
    multiple=True,
    type=click.Choice(ISOLATION_LEVELS),
    help="An isolation level to include on server databases (repeatable); default: all four.",
)
@click.option(
    "--max-examples",
    "-n",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Examples per cell.",
)
@click.option("--seed", type=int, default=None, help="Make every cell's search repeatable.")
@click.option(
    "--replay",
    "report",
    type=click.Path(dir_okay=False),
    default=None,
    help="Instead of searching, replay this finding's scenario and schedule in every cell.",
)
@click.option(
    "--times",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="With --replay: replays per cell.",
)
@click.option(
    "--hang-timeout",
    type=click.FloatRange(min=0.1),
    default=3.0,
    show_default=True,
    metavar="SECONDS",
    help="No progress for this long: a hang.",
)
@_faults_option()
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def matrix_command(
    target: str | None,
    databases: tuple[str, ...],
    levels: tuple[str, ...],
    max_examples: int,
    seed: int | None,
    report: str | None,
    times: int,
    hang_timeout: float,
    faults: str | None,
    no_progress: bool,
) -> None:
    """Run TARGET on every database and isolation level: a table of verdicts.

    Exit 0 when every cell shows what the target declares (no finding, unless it
    declares one), 1 when a cell differs, 2 when no database could be reached."""
    from fuzzer.modes import matrix

    if (target is None) == (report is None):
        raise click.UsageError("give either TARGET or --replay REPORT.json")
    kinds = _fault_kinds(faults)
    names = [d.strip() for given in databases for d in given.split(",") if d.strip()]
    grid = matrix.cells(names or matrix.DATABASES, levels or matrix.LEVELS)
    bars: list[reporting.SearchProgress] = []

    def progress(cell: matrix.Cell) -> Callable[..., None]:
        bars.append(reporting.SearchProgress(enabled=not no_progress))
        return bars[-1]

    def on_cell(result: matrix.CellResult) -> None:
        while bars:
            bars.pop().stop()
        verdict = ", ".join(result.kinds) or result.status
        where = f"{result.server or result.cell.database} {result.level or result.cell.level}"
        reporting.note(f"{where}: {verdict}")

    def action() -> int:
        try:
            if report is not None:
                results = matrix.replay_matrix(
                    report, grid, times=times, hang_timeout=hang_timeout, on_cell=on_cell
                )
                title = f"Replay of {report} in {len(grid)} cells"
            else:
                from fuzzer import api

                loaded = api.resolve(target or "")
                results = matrix.run_matrix(
                    loaded,
                    grid,
                    max_examples=max_examples,
                    seed=seed,
                    hang_timeout=hang_timeout,
                    on_cell=on_cell,
                    on_event=progress,
                    faults=kinds,
                )
                title = f"{loaded.reference or loaded.name}: {max_examples} examples per cell"
        finally:
            while bars:
                bars.pop().stop()
        reporting.text("\n" + matrix.render(results, title=title))
        if all(r.status == "unavailable" for r in results):
            return 2
        return 1 if any(r.as_expected is False for r in results) else 0

    _guard(action)


@main.command("stress")
@click.argument("target")
@click.option(
    "--duration",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Stop after this long.",
)
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Requests fired at once in each batch.",
)
@click.option(
    "--max-batches",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Stop after this many batches.",
)
@_db_option()
@click.option("--seed", type=int, default=None, help="Make the drawn requests repeatable.")
@click.option(
    "--hang-timeout",
    type=click.FloatRange(min=0.1),
    default=3.0,
    show_default=True,
    metavar="SECONDS",
    help="No progress for this long (no answer, no thread's CPU clock or stack moving, "
    "no sleep running): a hang.",
)
@click.option("--report-dir", default="reports", show_default=True, metavar="DIR")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="Show the app's logging and stderr live (always kept in app.log in the run directory).",
)
def stress_command(
    target: str,
    duration: float,
    concurrency: int,
    max_batches: int,
    no_progress: bool,
    verbose: bool,
    **options: Any,
) -> None:
    """Free-running load on TARGET: batches of concurrent requests with real timing (no
    gates), each judged against serial runs. Bounded in time and batches; exit 1 on
    findings, 2 when it judged nothing. Their schedule is unknown, so their replay is
    best effort."""
    from fuzzer import api
    from fuzzer.report.text import finding_text

    def action() -> int:
        settings = _settings(options)
        if settings.report_dir is not None:
            _check_report_dir(settings.report_dir)
        progress = reporting.SearchProgress(enabled=not no_progress)
        try:
            report = api.stress(
                target,
                settings,
                duration=duration,
                concurrency=concurrency,
                max_batches=max_batches,
                on_event=progress,
                verbose=verbose,
            )
        finally:
            progress.stop()
        for finding in report.findings:
            reporting.text("\n" + finding_text(finding, reproduce=report.reproduce(finding)))
            reporting.note(f"Replay: {finding.extra.get('replay', '')}")
        _summary(report)
        if report.app_log is not None:
            reporting.note(report.app_log.line())
        why = judged_nothing(report.result)
        if why and not report.findings:
            reporting.error(why)
            return 2
        return report.exit_code

    _guard(action)


def judged_nothing(result: Any) -> str:
    """Why a stress run judged no batch at all (a green run that checked nothing must not
    pass CI), or "" if it judged some."""
    judged = result.judged
    if judged.get("fully", 0) + judged.get("partly", 0):
        return ""
    causes = ", ".join(f"{reason} ({n})" for reason, n in result.unknown.most_common(2))
    return (
        f"stress judged nothing in {result.examples} batch(es)"
        + (f": {causes}" if causes else "")
        + "; give it a longer --duration"
    )


@main.command("soak")
@click.argument("target")
@click.option(
    "--duration",
    type=click.FloatRange(min=1.0),
    required=True,
    metavar="SECONDS",
    help="How long to fuzz (shrinking a finding found late may add up to a minute).",
)
@_db_option()
@_isolation_option()
@click.option(
    "--seed", type=int, default=None, help="First seed of the rotation (default: resume it)."
)
@click.option(
    "--round-examples",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Examples per seed before the next seed.",
)
@click.option(
    "--report-dir",
    default="reports",
    show_default=True,
    metavar="DIR",
    help="Where to write the run's directory: JSON per finding, junit.xml, report.html.",
)
@click.option(
    "--allow-wipe",
    is_flag=True,
    help="Allow an existing database whose name does not start with fuzz/test.",
)
@click.option(
    "--hang-timeout",
    type=click.FloatRange(min=0.1),
    default=3.0,
    show_default=True,
    metavar="SECONDS",
    help="No progress for this long: a hang.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=64),
    default=1,
    show_default=True,
    help="Worker processes on this machine, each with its own server and scratch databases, "
    "splitting the campaign's seeds and opening.",
)
@click.option(
    "--shared",
    default=None,
    metavar="REDIS_URL",
    help="Keep the campaign in Redis (redis://HOST:PORT/DB) so soaks on several machines "
    "join it: examples, findings (each reported once), seeds and coverage.",
)
@click.option("--lease", type=click.FloatRange(min=0.5), default=None, hidden=True)
@click.option(
    "--known-only",
    is_flag=True,
    help="Only replay the campaign's known findings and write the reports (the merged "
    "report of a campaign that ran on several machines).",
)
@_faults_option()
@click.option("--no-progress", is_flag=True, help="No progress bar or progress lines.")
@output_options
def soak_command(
    target: str,
    duration: float,
    round_examples: int,
    workers: int,
    shared: str | None,
    known_only: bool,
    lease: float | None,
    faults: str | None,
    no_progress: bool,
    output: str,
    summary_file: str | None,
    **options: Any,
) -> None:
    """Fuzz TARGET unattended for --duration seconds (a nightly CI job). Exit 1 on findings.

    Replays the known failures of the example database first, then searches with
    rotating seeds. Each finding is written as soon as it is final; a killed soak
    loses nothing it had finished, and the next one resumes."""
    from fuzzer.modes.soak import soak

    kinds = _fault_kinds(faults)
    out = Output("soak", target, output, summary_file)

    def action() -> int:
        settings = _settings(options, faults=kinds)
        assert settings.report_dir is not None
        _check_report_dir(settings.report_dir)
        from fuzzer.modes.sharedstore import check_shared
        from fuzzer.modes.workers import crowding, soak_workers

        if shared:
            check_shared(shared)
        crowded = crowding(workers)
        if crowded:
            reporting.warning(crowded)

        progress = out.progress(no_progress)
        more: dict[str, Any] = {
            "duration": duration,
            "round_examples": round_examples,
            "shared": shared,
            "on_event": progress,
        }
        if known_only:
            more["known_only"] = True
        if lease is not None:  # tests: how soon a dead worker's chunk is taken up
            more["lease"] = lease
        try:
            if workers > 1:
                report = soak_workers(target, settings, workers=workers, **more)
            else:
                report = soak(target, settings, **more)
        finally:
            progress.stop()
        if out.text:
            for entry in report.written:
                reporting.text("\n" + entry.text())
            reporting.soak_summary(report)
        out.soak(report)
        return report.exit_code

    _guard(out.guarded(action))


def _setup_label(kind: str, name: str) -> str:
    if kind == "command":
        return f"flask {name}"
    if kind == "request":
        return f"POST {json.loads(name)['path']}"
    if kind == "fill" and name:
        return f"fill_tables(tables=[{name!r}])"
    return f"{name.partition(':')[2] or ('fill_tables' if kind == 'fill' else kind)}()"


@main.command("init")
@click.argument("factory")
@click.option(
    "--output",
    "-o",
    metavar="FILE",
    default=None,
    help="Where to write the spec (default: fuzz_<app>.py in this directory).",
)
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.option("--no-check", is_flag=True, help="Write the spec without trying it.")
@click.option(
    "--all-endpoints",
    is_flag=True,
    help="Keep the GET pages that only read (by default they are listed in a comment).",
)
def init_command(
    factory: str, output: str | None, force: bool, no_check: bool, all_endpoints: bool
) -> None:
    """Write a starting target spec for an existing Flask app.

    FACTORY is the app factory, package.module:create_app, or a call with config
    arguments: 'package.module:create_app("testing")'. The spec lists every URL rule
    with small domains for its variables, form and OpenAPI bodies, the users to act as,
    and a setup that runs the app's own init-db/seed commands; it runs as written, and
    its comments say what to check. Exit 0 when the spec is written, also when its check
    failed (then a warning says what failed, and so does the spec's first comment)."""
    from fuzzer.init import spec

    def action() -> int:
        written = spec.write_spec(
            factory, output, force=force, check=not no_check, all_endpoints=all_endpoints
        )
        plan = written.plan
        kept = [r for r in plan.routes if plan.kept(r)]
        left = len(plan.routes) - len(kept)
        reporting.note(
            f"Wrote {written.path}: {_count(len(kept), 'endpoint')}"
            + (f" ({left} more listed in a comment)" if left else "")
            + f", {_count(len(plan.identities), 'identity', 'identities')}, setup: "
            + (", ".join(_setup_label(k, n) for k, n in plan.setup) or "none (edit it)")
        )
        if written.failed:
            reporting.warning(
                f"fuzzer init's check of the spec failed: {written.failed}. The spec is "
                "written unchecked (every endpoint kept, a CHECK FIRST comment at its top) "
                "as a starting point; `fuzzer run` stops the same way until that is fixed."
            )
        elif not no_check:
            reporting.note("Each endpoint's requests, sent alone after setup:")
            sent = {f"{r.method} {r.rule}" for r in kept}
            for endpoint, line in written.survey.items():
                if endpoint in sent or endpoint not in plan.left_out:
                    reporting.note(f"  kept      {endpoint}: {line}")
                else:
                    reporting.note(f"  left out  {endpoint}: {plan.left_out[endpoint]}")
            for line in plan.proofs:
                reporting.note(f"Identity {line}")
            if plan.identity_notes and not plan.users:
                reporting.note(plan.identity_notes[0])
        where = os.path.dirname(os.path.abspath(written.path))
        elsewhere = f"  (from {where})" if where != os.getcwd() else ""
        reporting.note(f"Next: fuzzer run {written.module}:target{elsewhere}")
        return 0

    _guard(action)


@main.command("clean")
@click.option(
    "--db",
    "databases",
    multiple=True,
    metavar="URL",
    help="A server to clean (repeatable): mariadb, postgres or a URL on 127.0.0.1; "
    "default: the temporary SQLite files, MariaDB and PostgreSQL on their usual ports.",
)
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option("--include-kept", is_flag=True, help="Also remove databases kept with --keep-db.")
def clean_command(databases: tuple[str, ...], dry_run: bool, include_kept: bool) -> None:
    """Remove the scratch databases of fuzzer runs that died without cleaning up.

    A run killed with SIGKILL, or ended by a target calling os._exit(), leaves its
    scratch databases (and SQLite temporary directories) behind. Each is marked with
    its owner (host, pid, start time) and locked while its run lives: this lists every
    marked one and removes those whose run is gone and whose name is a scratch name the
    fuzzer gives (fuzz_<run>); another host's are listed and left. Runs also do this when
    they start."""
    from fuzzer.db import clean

    def action() -> int:
        given = list(databases) or list(clean.DEFAULTS)
        for line in clean.clean(
            given, dry_run=dry_run, include_kept=include_kept, explicit=bool(databases)
        ):
            reporting.note(line)
        return 0

    _guard(action)


def _count(n: int, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"
