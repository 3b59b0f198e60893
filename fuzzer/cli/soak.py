"""``fuzzer soak``: fuzz one target unattended for a while (a nightly CI job), alone or
with workers, a campaign kept in a file or shared in Redis."""

from __future__ import annotations

from typing import Any

import click

from fuzzer.cli.guard import guard
from fuzzer.cli.options import check_report_dir, settings_of, settings_options
from fuzzer.cli.output import Output
from fuzzer.cli.output import options as output_options
from fuzzer.cli.run import VERBOSE
from fuzzer.report import reporting


@click.command("soak")
@click.argument("target")
@click.option(
    "--duration",
    type=click.FloatRange(min=1.0),
    required=True,
    metavar="SECONDS",
    help="How long to fuzz (shrinking a finding found late may add up to a minute).",
)
@settings_options("soak")
@click.option(
    "--round-examples",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Examples per seed before the next seed.",
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
@click.option("--no-progress", is_flag=True, help="No progress bar or progress lines.")
@VERBOSE
@output_options
def soak_command(
    target: str,
    duration: float,
    round_examples: int,
    workers: int,
    shared: str | None,
    known_only: bool,
    lease: float | None,
    no_progress: bool,
    verbose: bool,
    output: str,
    summary_file: str | None,
    **options: Any,
) -> None:
    """Fuzz TARGET unattended for --duration seconds (a nightly CI job). Exit 1 on findings.

    Replays the known failures of the example database first, then searches with
    rotating seeds. Each finding is written as soon as it is final; a killed soak
    loses nothing it had finished, and the next one resumes."""
    from fuzzer.modes.nightly.soak import soak

    out = Output("soak", target, output, summary_file)

    def action() -> int:
        settings = settings_of(options)
        assert settings.report_dir is not None
        check_report_dir(settings.report_dir)
        from fuzzer.modes.nightly.sharedstore import check_shared
        from fuzzer.modes.nightly.workers import crowding, soak_workers

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
            "verbose": verbose,
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
            if report.app_log is not None:
                reporting.note(report.app_log.line())
        out.soak(report)
        return report.exit_code

    guard(out.guarded(action))
