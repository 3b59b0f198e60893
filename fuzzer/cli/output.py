"""What a command prints and writes besides its reports: text for a person, or the JSON
summary (``--format json`` on stdout, ``--summary-file PATH``; fuzzer/report/summary.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from fuzzer.errors import FuzzerError
from fuzzer.report import reporting
from fuzzer.search import interrupt

FORMATS = ("text", "json")


def options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--format`` and ``--summary-file``."""
    command = click.option(
        "--summary-file",
        type=click.Path(dir_okay=False),
        default=None,
        metavar="PATH",
        help="Also write the JSON summary (findings, coverage, judged counts, time, exit "
        "code) to PATH.",
    )(command)
    return click.option(
        "--format",
        "output",
        type=click.Choice(FORMATS),
        default="text",
        show_default=True,
        help="text for a person; json: the JSON summary on stdout, and nothing else there "
        "(schema: flask-race-fuzzer/summary, version 1; README, 'Machine-readable summary').",
    )(command)


class Output:
    """One command's output: whether to print text, and where the summary goes."""

    def __init__(self, command: str, target: str, output: str, summary_file: str | None) -> None:
        self.command = command
        self.target = target
        self.json = output == "json"
        self.summary_file = summary_file
        self.began = time.monotonic()

    @property
    def text(self) -> bool:
        return not self.json

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.began

    def progress(self, off: bool) -> reporting.SearchProgress:
        """The progress bar or lines; with ``--format json`` on stderr, so that stdout
        holds the JSON alone."""
        where = reporting.stderr_console() if self.json else None
        return reporting.SearchProgress(enabled=not off, out=where)

    def run(self, report: Any, exit_code: int | None = None) -> None:
        """The summary of ``fuzzer run`` (an ``api.RunReport``), with the exit code the
        command gives (``--require-coverage`` may make it 2)."""
        from fuzzer.report import summary as summaries

        code = report.exit_code if exit_code is None else exit_code
        self.emit(
            summaries.of_run(report, command=self.command, exit_code=code, seconds=self.seconds)
        )

    def soak(self, report: Any) -> None:
        from fuzzer.report import summary as summaries

        self.emit(summaries.of_soak(report, exit_code=report.exit_code, seconds=self.seconds))

    def replay(self, result: Any) -> None:
        from fuzzer.report import summary as summaries

        self.emit(
            summaries.of_replay(
                result, target=result.target, exit_code=result.exit_code, seconds=self.seconds
            )
        )

    def emit(self, summary: dict[str, Any]) -> None:
        from fuzzer.report import summary as summaries

        if self.summary_file:
            summaries.write(summary, self.summary_file)
        if self.json:
            reporting.document(summaries.dumps(summary))

    def guarded(self, action: Callable[[], int]) -> Callable[[], int]:
        """``action``, and a summary of the error it stops with (exit 2, 3) or of an
        interruption (130), before the one line the command prints for it."""

        def run() -> int:
            try:
                return action()
            except FuzzerError as exc:
                self._failed(exc.exit_code, str(exc))
                raise
            except BaseException as exc:
                if interrupt.is_stop(exc):
                    self._failed(130, "interrupted")
                elif isinstance(exc, Exception):  # the fuzzer's own bug: exit 3
                    self._failed(3, f"a bug in the fuzzer itself: {exc!r}")
                raise

        return run

    def _failed(self, exit_code: int, message: str) -> None:
        if self.summary_file or self.json:
            from fuzzer.report import summary as summaries

            self.emit(
                summaries.of_error(
                    self.command,
                    self.target,
                    exit_code=exit_code,
                    seconds=self.seconds,
                    message=message,
                )
            )
