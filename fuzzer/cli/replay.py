"""``fuzzer replay`` and ``fuzzer matrix``: a recorded finding again, and one target (or
one recorded finding) across databases and isolation levels."""

from __future__ import annotations

from typing import Any

import click

from fuzzer.cli.guard import guard
from fuzzer.cli.options import settings_options
from fuzzer.cli.output import Output
from fuzzer.cli.output import options as output_options
from fuzzer.cli.run import VERBOSE
from fuzzer.report import reporting
from fuzzer.settings import ISOLATION_LEVELS, REPORTS


@click.command("replay")
@click.argument("report", type=click.Path(dir_okay=False))
@click.option(
    "--times",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Replay this many times.",
)
@settings_options("replay")
@output_options
def replay_command(
    report: str, times: int, output: str, summary_file: str | None, **options: Any
) -> None:
    """Re-run the scenario and schedule recorded in REPORT (a finding's JSON).

    Exit 1: reproduced every time; 0: fixed (never reproduced); 4: flaky."""
    from fuzzer import api
    from fuzzer.report.text import finding_text

    out = Output("replay", "", output, summary_file)

    def action() -> int:
        # --db and --isolation not given (None): those of the recording
        result = api.replay(report, times=times, **options)
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

    guard(out.guarded(action))


@click.command("matrix")
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
@settings_options("matrix")
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
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@VERBOSE
def matrix_command(
    target: str | None,
    databases: tuple[str, ...],
    levels: tuple[str, ...],
    report: str | None,
    times: int,
    no_progress: bool,
    verbose: bool,
    **options: Any,
) -> None:
    """Run TARGET on every database and isolation level: a table of verdicts.

    Exit 0 when every cell shows what the target declares (no finding, unless it
    declares one), 1 when a cell differs, 2 when no database could be reached."""
    from fuzzer.modes import matrix

    if (target is None) == (report is None):
        raise click.UsageError("give either TARGET or --replay REPORT.json")
    names = [d.strip() for given in databases for d in given.split(",") if d.strip()]
    grid = matrix.cells(names or matrix.DATABASES, levels or matrix.LEVELS)
    bars: list[reporting.SearchProgress] = []

    def progress(cell: matrix.Cell) -> reporting.SearchProgress:
        bars.append(reporting.SearchProgress(enabled=not no_progress))
        return bars[-1]

    def on_cell(result: matrix.CellResult) -> None:
        while bars:
            bars.pop().stop()
        verdict = ", ".join(result.kinds) or result.status
        where = f"{result.server or result.cell.database} {result.level or result.cell.level}"
        reporting.note(f"{where}: {verdict}")

    settings = matrix.CELL.replace(**options)
    log_dir = settings.report_dir or REPORTS  # each cell writes nothing else

    def cells_run() -> tuple[list[matrix.CellResult], str]:
        if report is not None:
            results = matrix.replay_matrix(report, grid, settings, times=times, on_cell=on_cell)
            return results, f"Replay of {report} in {len(grid)} cells"
        from fuzzer import api

        loaded = api.resolve(target or "")
        results = matrix.run_matrix(
            loaded, grid, settings, on_cell=on_cell, on_event=progress, quiet_app=False
        )
        name = loaded.reference or loaded.name
        return results, f"{name}: {settings.max_examples} examples per cell"

    def action() -> int:
        try:
            (results, title), log = matrix.logged(
                cells_run, name=target or "replay", report_dir=log_dir, live=verbose
            )
        finally:
            while bars:
                bars.pop().stop()
        reporting.text("\n" + matrix.render(results, title=title))
        reporting.note(log.line())
        if all(r.status == "unavailable" for r in results):
            return 2
        return 1 if any(r.as_expected is False for r in results) else 0

    guard(action)
