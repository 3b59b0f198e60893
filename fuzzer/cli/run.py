"""``fuzzer run`` and ``fuzzer stress``: a search of one target, controlled or
free-running, its findings printed and written."""

from __future__ import annotations

from typing import Any

import click

from fuzzer.cli.guard import guard
from fuzzer.cli.options import check_report_dir, settings_of, settings_options
from fuzzer.cli.output import Output
from fuzzer.cli.output import options as output_options
from fuzzer.report import reporting

VERBOSE = click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="Show the app's logging and stderr live (always kept in app.log in the run directory).",
)


@click.command("run")
@click.argument("target")
@settings_options("run")
@click.option(
    "--require-coverage",
    is_flag=True,
    help="Exit 2 (when nothing else failed it) if the run judged less than half of its "
    "examples or did not run the pairs' plan to the end: for CI.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@VERBOSE
@output_options
def run_command(
    target: str,
    require_coverage: bool,
    no_progress: bool,
    verbose: bool,
    output: str,
    summary_file: str | None,
    **options: Any,
) -> None:
    """Fuzz TARGET (package.module:attribute). Exit 1 if it finds anything."""
    from fuzzer import api
    from fuzzer.report.text import finding_text

    out = Output("run", target, output, summary_file)

    def action() -> int:
        settings = settings_of(options)
        if settings.report_dir is not None:
            check_report_dir(settings.report_dir)
        progress = out.progress(no_progress)
        try:
            report = api.run(target, settings, on_event=progress, verbose=verbose)
        finally:
            progress.stop()
        if out.text:
            for finding in report.findings:
                reporting.text("\n" + finding_text(finding, reproduce=report.reproduce(finding)))
            summary(report)
            reporting.time_line(report.result, out.seconds)
            if report.app_log is not None:
                reporting.note(report.app_log.line())
            for line in report.redis_after:
                reporting.note(line)
            if settings.keep_db:
                for where in kept(report.database):
                    reporting.note(f"Kept the scratch database {where}")
        code = report.exit_code
        if require_coverage and code == 0 and report.result.uncovered:
            code = 2
            if out.text:
                reporting.note("--require-coverage: the run did not cover enough (above); exit 2")
        out.run(report, code)
        return code

    guard(out.guarded(action))


def summary(report: Any) -> None:
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


def kept(database: dict[str, Any]) -> list[str]:
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


@click.command("stress")
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
@settings_options("stress")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@VERBOSE
@output_options
def stress_command(
    target: str,
    duration: float,
    concurrency: int,
    max_batches: int,
    no_progress: bool,
    verbose: bool,
    output: str,
    summary_file: str | None,
    **options: Any,
) -> None:
    """Free-running load on TARGET: batches of concurrent requests with real timing (no
    gates), each judged against serial runs. Bounded in time and batches; exit 1 on
    findings, 2 when it judged nothing. Their schedule is unknown, so their replay is
    best effort."""
    from fuzzer import api
    from fuzzer.report.text import finding_text

    out = Output("stress", target, output, summary_file)

    def action() -> int:
        settings = settings_of(options)
        if settings.report_dir is not None:
            check_report_dir(settings.report_dir)
        progress = out.progress(no_progress)
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
        if out.text:
            for finding in report.findings:
                reporting.text("\n" + finding_text(finding, reproduce=report.reproduce(finding)))
                reporting.note(f"Replay: {finding.extra.get('replay', '')}")
            summary(report)
            if report.app_log is not None:
                reporting.note(report.app_log.line())
        code = report.exit_code
        why = judged_nothing(report.result)
        if why and not report.findings:
            reporting.error(why)
            code = 2
        out.run(report, code)
        return code

    guard(out.guarded(action))


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
