"""Everything a person reads on the terminal comes from here: progress, findings, summary,
errors. (The only module allowed to print.)"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from .findings import Finding, label
from .report.text import context_switches

console = Console(highlight=False, soft_wrap=False)
errors = Console(stderr=True, highlight=False)


def error(message: str) -> None:
    """One line that says what is wrong and how to fix it."""
    errors.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)


def note(message: str) -> None:
    console.print(message, markup=False, highlight=False, soft_wrap=True)


def text(block: str) -> None:
    """Print pre-rendered plain text as it is."""
    sys.stdout.write(block if block.endswith("\n") else block + "\n")
    sys.stdout.flush()


class SearchProgress:
    """A live progress bar: examples, examples per second, distinct findings, time left."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled and console.is_terminal
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._started = time.monotonic()
        self._budget: float | None = None
        self._findings = 0

    def __call__(self, event: str, **data: Any) -> None:
        if event == "start":
            self._start(data)
        elif event == "example":
            self._example(data)
        elif event == "finding":
            self._findings += 1
            finding: Finding = data["finding"]
            self._line(
                f"found {finding.kind} ({' + '.join(finding.endpoints)}) after "
                f"{data['examples']} examples; shrinking it later"
            )

    def _start(self, data: dict[str, Any]) -> None:
        database = data.get("database") or {}
        version = database.get("server_version", database.get("dialect", ""))
        level = database.get("isolation_level", "")
        note(f"Fuzzing {data['target']} on {version}" + (f" at {level}" if level else ""))
        self._budget = data.get("time_budget")
        self._started = time.monotonic()
        if not self.enabled:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>6} ex/s"),
            TextColumn("{task.fields[findings]} finding(s)"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[left]}"),
            console=console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            "searching", total=data.get("max_examples"), rate="", findings=0, left=""
        )

    def _example(self, data: dict[str, Any]) -> None:
        if self._progress is None or self._task is None:
            return
        elapsed = max(time.monotonic() - self._started, 1e-6)
        left = ""
        if self._budget:
            left = f"{max(0.0, self._budget - elapsed):.0f} s left"
        self._progress.update(
            self._task,
            completed=data["examples"],
            description="shrinking" if data.get("shrinking") else "searching",
            rate=f"{data['examples'] / elapsed:.1f}",
            findings=data.get("findings", self._findings),
            left=left,
        )

    def _line(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message, markup=False, highlight=False)
        else:
            note(message)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def summary(
    findings: Sequence[Finding],
    *,
    examples: int,
    seconds: float,
    stop_reason: str,
    directory: str | None,
    unknown: dict[str, int] | None = None,
    references: int = 0,
) -> None:
    rate = examples / seconds if seconds > 0 else 0.0
    note(
        f"\n{examples} examples in {seconds:.1f} s ({rate:.1f}/s), {references} serial "
        f"reference runs; stopped: {stop_reason}"
    )
    if unknown:
        for reason, count in sorted(unknown.items()):
            note(f"  {count} example(s) could not be judged: {reason}")
    if not findings:
        console.print("[bold green]No findings.[/]")
        return
    table = Table(title=f"{len(findings)} finding(s)", title_justify="left")
    table.add_column("kind")
    table.add_column("endpoints")
    table.add_column("requests", justify="right")
    table.add_column("switches", justify="right")
    table.add_column("found after", justify="right")
    table.add_column("replays")
    for f in findings:
        table.add_row(
            f.kind,
            " + ".join(f.endpoints) + (f" ({f.exception})" if f.exception else ""),
            str(len(f.scenario.requests)),
            str(context_switches(f.execution.trace)),
            f"{f.found_after} ex",
            f"flaky {f.flaky}" if f.flaky else "always",
        )
    console.print(table)
    if directory:
        note(f"Reports: {directory}/")


def requests_line(finding: Finding) -> str:
    return ", ".join(f"{label(i)} {r.endpoint}" for i, r in enumerate(finding.scenario.requests))
