"""Everything a person reads on the terminal comes from here: progress, findings, summary,
errors. (The only module allowed to print.)

The engine and the soak emit events (``start``, ``round``, ``example``, ``finding``,
``final``, ``written``); ``SearchProgress`` consumes them, as the JSON, HTML and JUnit
writers consume findings: the search never formats anything for a person.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
)
from rich.table import Table
from rich.text import Text

from fuzzer.findings import Finding, label
from fuzzer.report.escape import terminal
from fuzzer.report.text import context_switches
from fuzzer.search.events import (
    Event,
    Example,
    Found,
    Planned,
    RoundStarted,
    Start,
    Surveying,
    WorkerDied,
    Wrote,
)

if TYPE_CHECKING:
    from fuzzer.modes.nightly.soakreport import SoakReport
    from fuzzer.search.engine import SearchResult
    from fuzzer.search.plan.pairs import Coverage

console = Console(highlight=False, soft_wrap=False)
errors = Console(stderr=True, highlight=False)


def stderr_console() -> Console:
    """A console on the stderr of now: it keeps writing there while a run sends the
    app's stderr to its log (``--format json`` puts the progress lines there)."""
    return Console(file=sys.stderr, highlight=False)


def use_stderr(stream: Any) -> None:
    """Where the fuzzer's errors and warnings go while the app's stderr is redirected to
    its log (modes/applog.py); None: back to ``sys.stderr``."""
    global errors
    if stream is None:
        errors = Console(stderr=True, highlight=False)
    else:
        errors = Console(file=stream, highlight=False)


def error(message: str) -> None:
    """One line that says what is wrong and how to fix it."""
    errors.print(Text.assemble(("error:", "bold red"), " ", terminal(message)), soft_wrap=True)


def warning(message: str) -> None:
    """Something that works but not as the user may expect, said before it starts."""
    errors.print(Text.assemble(("warning:", "bold yellow"), " ", terminal(message)), soft_wrap=True)


def note(message: str) -> None:
    console.print(terminal(message), markup=False, highlight=False, soft_wrap=True)


def text(block: str) -> None:
    """Print pre-rendered plain text as it is (but for control characters, shown escaped)."""
    block = terminal(block)
    sys.stdout.write(block if block.endswith("\n") else block + "\n")
    sys.stdout.flush()


def document(block: str) -> None:
    """Print a machine-readable document (``--format json``) as it is: JSON escapes what
    it must itself."""
    sys.stdout.write(block if block.endswith("\n") else block + "\n")
    sys.stdout.flush()


class SearchProgress:
    """Progress of a run or a soak: examples, examples per second, distinct findings,
    elapsed time and the time left in a budget.

    On a terminal it is a live bar that appears once the run has taken ``delay``
    seconds (short runs stay quiet); elsewhere (a CI log) it is one line every
    ``heartbeat`` seconds.
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        delay: float = 2.0,
        heartbeat: float = 30.0,
        out: Console | None = None,
    ) -> None:
        self.out = out or console
        self.enabled = enabled
        self.live = enabled and self.out.is_terminal
        self.delay = delay
        self.heartbeat = heartbeat
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._started = time.monotonic()
        self._beat = self._started
        self._budget: float | None = None
        self._max_examples: int | None = None
        self._examples = 0
        self._findings = 0
        self._phase = "searching"

    def __call__(self, event: Event, /) -> None:
        if isinstance(event, Start):
            self._start(event)
        elif isinstance(event, RoundStarted):
            seed = event.seed
            self._phase = "replaying" if seed is None else f"seed {seed}"
            if seed is None:
                self._line(
                    "replaying the known failures: what earlier soaks reported, then the "
                    "example database"
                )
            elif not self.live:
                self._line(f"searching with seed {seed} ({event.left:.0f} s left)")
        elif isinstance(event, Surveying):
            self._line(f"surveying {event.endpoints} endpoints, each request alone")
        elif isinstance(event, Planned):
            self._line(planned_text(event))
        elif isinstance(event, Example):
            self._example(event)
        elif isinstance(event, Found):
            seen = event.findings if event.findings is not None else self._findings + 1
            self._findings = max(self._findings, seen)
            finding = event.finding
            self._line(
                f"found {finding.kind} ({' + '.join(finding.endpoints)}) after "
                f"{event.examples} example{'s' if event.examples != 1 else ''}; "
                f"shrinking it later"
            )
        elif isinstance(event, Wrote):
            self._line(f"wrote {event.json}")
        elif isinstance(event, WorkerDied):
            self._line(
                f"worker {event.worker + 1} died (exit {event.exit_code}); what it "
                "reported is kept, and its share of the opening returns to the others"
            )

    def _start(self, event: Start) -> None:
        database = event.database or {}
        version = database.get("server_version", database.get("dialect", ""))
        level = database.get("isolation_level", "")
        self._line(f"Fuzzing {event.target} on {version}" + (f" at {level}" if level else ""))
        for notice in event.notices or ():  # tables emptied, leftovers of dead runs
            self._line(notice)
        if event.directory:
            self._line(f"Reports go to {event.directory}/ as soon as each finding is final")
        self._budget = event.time_budget
        self._max_examples = event.max_examples
        self._started = self._beat = time.monotonic()

    def _example(self, event: Example) -> None:
        self._examples = event.examples
        self._findings = event.findings
        shrinking = event.shrinking
        now = time.monotonic()
        if not self.enabled:
            return
        if not self.live:
            if now - self._beat >= self.heartbeat:
                self._beat = now
                self._line(self.status(now, shrinking))
            return
        if self._progress is None:
            if now - self._started < self.delay:
                return
            self._open()
        assert self._progress is not None and self._task is not None
        elapsed = now - self._started
        if self._max_examples:
            completed, total = float(self._examples), float(self._max_examples)
        else:  # time-boxed: the bar is the time
            completed, total = elapsed, float(self._budget or max(elapsed, 1.0))
        self._progress.update(
            self._task,
            completed=min(completed, total),
            total=total,
            description="shrinking" if shrinking else self._phase,
            examples=self._examples_text(),
            rate=f"{self._examples / max(elapsed, 1e-6):.1f}",
            findings=self._findings,
            elapsed=f"{int(elapsed) // 60}:{int(elapsed) % 60:02d} elapsed",
            left=self._left(elapsed),
        )

    def status(self, now: float | None = None, shrinking: bool = False) -> str:
        """One line: what the bar shows."""
        elapsed = (now or time.monotonic()) - self._started
        rate = self._examples / max(elapsed, 1e-6)
        left = self._left(elapsed)
        return (
            f"{'shrinking' if shrinking else self._phase}: {self._examples_text()}, "
            f"{rate:.1f} ex/s, {self._findings} finding(s), {elapsed:.0f} s elapsed"
            + (f", {left}" if left else "")
        )

    def _examples_text(self) -> str:
        if self._max_examples:
            return f"{self._examples}/{self._max_examples} examples"
        return f"{self._examples} examples"

    def _left(self, elapsed: float) -> str:
        if not self._budget:
            return ""
        return f"{max(0.0, self._budget - elapsed):.0f} s left"

    def _open(self) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[examples]}"),
            TextColumn("{task.fields[rate]:>6} ex/s"),
            TextColumn("{task.fields[findings]} finding(s)"),
            TextColumn("{task.fields[elapsed]}"),  # since the run began, not the bar
            TextColumn("{task.fields[left]}"),
            console=self.out,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            self._phase, total=None, examples="", rate="", findings=0, elapsed="", left=""
        )

    def _line(self, message: str) -> None:
        message = terminal(message)
        if self._progress is not None:
            self._progress.console.print(message, markup=False, highlight=False)
        else:
            self.out.print(message, markup=False, highlight=False, soft_wrap=True)

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
    coverage: Coverage | None = None,
    unconfirmed: Sequence[Finding] = (),
    treated: dict[str, int] | None = None,
    judged: dict[str, int] | None = None,
    masked: dict[str, int] | None = None,
    uncovered: Sequence[str] = (),
) -> None:
    rate = examples / seconds if seconds > 0 else 0.0
    if uncovered:  # first: "no race" below means little after it
        note("\n" + "\n".join(f"Not covered: {line}" for line in uncovered))
    note(
        f"\n{examples} examples in {seconds:.1f} s ({rate:.1f}/s), {references} serial "
        f"reference runs; stopped: {stop_reason}"
    )
    if judged:
        note(
            f"Judged: {judged.get('fully', 0)} example(s) fully, {judged.get('partly', 0)} "
            f"partly (values that differ between serial runs of one order masked), "
            f"{judged.get('not', 0)} not at all"
        )
    for cell, count in sorted((masked or {}).items(), key=lambda m: (-m[1], m[0]))[:8]:
        note(f"  {cell}: differs between serial runs, masked in {count} example(s)")
    if unknown:
        for reason, count in sorted(unknown.items()):
            note(f"  {count} example(s) could not be judged: {reason}")
    if coverage is not None:
        note(coverage_text(coverage, findings))
    for reason, count in sorted((treated or {}).items()):
        note(f"  {count} example(s) judged with {reason}")
    findings_table(findings)
    unconfirmed_section(unconfirmed)
    if directory:
        note(f"Reports: {directory}/ (report.html, junit.xml, manifest.json, one JSON per finding)")


def time_line(result: SearchResult, total: float) -> None:
    """Where a run's time went, against its two budgets: the search's and shrinking's."""
    budget = f"budget {result.time_budget:g} s" if result.time_budget else "no time budget"
    starting = max(total - result.seconds, 0.0)
    note(
        f"time: {total:.1f} s = {starting:.1f} s starting (app, survey) + "
        f"{result.search_seconds:.1f} s searching ({budget}; {result.examples} of "
        f"{result.max_examples} examples) + {result.shrink_seconds:.1f} s shrinking and "
        f"confirming (budget {result.shrink_budget:g} s)"
    )


def unconfirmed_section(unconfirmed: Sequence[Finding]) -> None:
    """Minimal examples that never reproduced in their confirmations: listed with what
    each try showed, neither counted among the findings nor failing the run."""
    if not unconfirmed:
        return
    note(
        f"\nUnconfirmed ({len(unconfirmed)}, not counted as findings: the minimal example "
        f"never reproduced when replayed)"
    )
    for f in unconfirmed:
        answers = ", ".join(str(r.status) if r else "none" for r in f.execution.responses)
        difference = f.explanation.difference
        first = f"answered {answers}; " + (
            difference.describe(label) if difference is not None else f.explanation.however
        )
        note(
            f"  {f.kind} ({' + '.join(f.endpoints) or '—'}), seen after {f.found_after} ex, "
            f"replayed {f.flaky}: {requests_line(f)}"
        )
        note(f"    first seen: {first}")
        for number, tried in enumerate(f.extra.get("tries", ()), 1):
            note(f"    try {number}: {tried}")


def findings_table(findings: Sequence[Finding]) -> None:
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
            Text(f.kind + (" (responses only)" if f.response_only else "")),
            Text(terminal(" + ".join(f.endpoints) + (f" ({f.exception})" if f.exception else ""))),
            str(len(f.scenario.requests)),
            str(context_switches(f.execution.trace)),
            f"{f.found_after} ex",
            f"flaky {f.flaky}" if f.flaky else "always",
        )
    console.print(table)


def soak_summary(report: SoakReport) -> None:
    """The end of a soak: what ran, what it held, what it found, where it wrote it."""
    seconds = max(report.seconds, 1e-6)
    seeds = report.seeds
    seed_text = ""
    if seeds:
        seed_text = f", seeds {seeds[0]}–{seeds[-1]}" if len(seeds) > 1 else f", seed {seeds[0]}"
    note(
        f"\nSoak of {report.target}: {report.seconds:.0f} s, {len(report.rounds)} rounds"
        f"{seed_text}; {report.examples} examples run ({report.examples / seconds:.1f}/s), "
        f"{report.replayed} known failure(s) found again first, {report.references} serial "
        f"reference runs; stopped: {report.stop_reason}"
    )
    for worker in report.workers:
        died = f", died (exit {worker['exit_code']})" if worker["exit"] == "died" else ""
        if worker["exit"] == "error":
            died = f", stopped on an error: {worker.get('error', '')}"
        note(
            f"  worker {worker['worker'] + 1}: {worker['examples']} examples in "
            f"{worker['rounds']} rounds, {worker['findings']} finding(s) reported first{died}"
        )
    done, units = report.coverage
    if units:
        state = "complete" if done == units else "in progress"
        note(f"opening: {done} of {units} units done for the campaign ({state}); {report.campaign}")
    if report.complete_after is not None:
        note(f"the opening and every pair at depth ≤ 2 done after {report.complete_after:.0f} s")
    start, end = report.start, report.end
    after = f" (after {report.warmup} warm-up examples)" if report.warmup else ""
    note(
        f"memory: {start.memory_mib:.1f} MiB at start{after}, {end.memory_mib:.1f} MiB at end "
        f"({end.memory_mib - start.memory_mib:+.1f} MiB; {report.setup.memory_mib:.1f} MiB "
        f"before the first example)"
    )
    half = report.memory.second_half()
    if half is not None:
        note(
            f"memory over the second half of the soak: {half[0]:.1f} → {half[1]:.1f} MiB "
            f"({half[1] - half[0]:+.1f} MiB): {report.memory.verdict()}"
        )
    else:
        note(f"memory trend: {report.memory.verdict()}")
    note(
        f"database connections: {_count(start.connections)} at start, "
        f"{_count(end.connections)} at end ({_count(report.setup.connections)} before the "
        f"first example)"
    )
    if report.pairs is not None:
        note(coverage_text(report.pairs, [w.finding for w in report.written]))
    findings_table([w.finding for w in report.written])
    note(
        f"Reports: {report.directory}/ (junit.xml, report.html, manifest.json"
        + (f", {len(report.written)} finding JSON)" if report.written else ")")
    )


def planned_text(event: Planned) -> str:
    """One line once the survey and the plan are made: how long each took, how big."""
    plan = event.plan
    pairs = (
        f" and {len(plan.pairs)} endpoint pairs ({plan.size} schedules, taken breadth first)"
        if plan is not None and plan.pairs
        else ""
    )
    return (
        f"surveyed {event.endpoints} endpoints in {event.surveyed:.1f} s "
        f"({event.writers} write); planned {event.openings} openings{pairs} "
        f"in {event.seconds:.1f} s"
    )


def coverage_text(coverage: Coverage, findings: Sequence[Finding]) -> str:
    """What the bounded exhaustive search of endpoint pairs covered: "24 of 24 endpoint
    pairs explored at depth ≤ 2 at conflict points; no race"."""
    races = sum(1 for f in findings if f.is_race)
    text = (
        f"{coverage.explored} of {coverage.pairs} endpoint pairs explored at depth "
        f"≤ {coverage.depth} at conflict points"
    )
    if coverage.relations:
        text += " (" + " and ".join(f"{r} identity" for r in coverage.relations) + ")"
    if not coverage.complete:
        text += _levels(coverage)
        text += f", {coverage.ran} of {coverage.schedules} schedules"
    elif coverage.done_after is not None:
        text += f", all after {coverage.done_after} examples"
    text += "; " + ("no race" if not races else f"{races} race{'s' if races > 1 else ''}")
    if coverage.random:
        text += f"; and {coverage.random} random examples"
    return text


def _levels(coverage: Coverage) -> str:
    """How far a plan not run to the end went, level by level (pairs.LEVELS): ", 25 of
    25 tried, 25 of 25 at their moments of decision, 2 of 25 at every single switch"."""
    text = ""
    if coverage.tried is not None:
        text += f", {coverage.tried} of {coverage.pairs} tried"
    if coverage.decided is not None:
        text += f", {coverage.decided} of {coverage.pairs} at their moments of decision"
    if coverage.shallow is not None and coverage.depth >= 2:
        text += f", {coverage.shallow} of {coverage.pairs} at every single switch"
    return text


def _count(value: int | None) -> str:
    return "unknown" if value is None else str(value)


def requests_line(finding: Finding) -> str:
    return ", ".join(f"{label(i)} {r.endpoint}" for i, r in enumerate(finding.scenario.requests))
