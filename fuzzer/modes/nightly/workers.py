"""Several soak workers on one machine, all in one campaign (``fuzzer soak --workers N``).

The parent starts N worker processes (``spawn``: nothing of the parent's threads,
server or connections is inherited). Each worker is a whole soak of its own
(fuzzer/modes/nightly/soak.py): its own scratch databases, app and loopback server. They split the
work through the campaign's store (fuzzer/modes/nightly/campaign.py): each round claims the next
seed of one rotation and a chunk of the systematic opening, and each finding is
claimed by the first worker to confirm it. Workers send what they find and their
progress to the parent on a queue; the parent alone writes the reports, so a finding
is written once, in one run directory, the moment it arrives.

A worker that dies (killed, or the target called ``os._exit``) loses nothing the
store had: its findings are written, its seeds are spent, and the opening chunk it
held returns to the others when its lease runs out. The parent says so and goes on
with the others; when none of them reaches the end (all killed, the shared store gone)
the soak is an environment error, exit 2 with the cause on one line, as a single soak's.
A worker stops, dropping its scratch databases, when its parent dies (``kill -9``).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import multiprocessing
import os
import queue as queues
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fuzzer.errors import FuzzerError
from fuzzer.findings import Finding
from fuzzer.modes.logsummary import AppLogSummary
from fuzzer.modes.nightly.sharedstore import open_campaign
from fuzzer.modes.nightly.vitals import Vitals
from fuzzer.report.writer import ReportWriter, Written
from fuzzer.search import interrupt
from fuzzer.search.events import Event, Example, Listener, Start, WorkerDied, Wrote, ignore
from fuzzer.search.plan.pairs import Coverage
from fuzzer.settings import REPORTS, Settings
from fuzzer.settings import split as split_settings

__all__ = ["WORKER_MIB", "crowding", "soak_workers"]

# resident memory of one worker (its own app, server, Hypothesis and scratch databases):
# measured ≈ 90 MiB for the catalog's targets after their warm-up (issue 21)
WORKER_MIB = 90


@dataclass(frozen=True)
class _Job:
    """What a worker process needs to run its soak (picklable)."""

    target: str
    index: int
    workers: int
    options: dict[str, Any]
    parent: int  # the parent's pid: a worker whose parent is gone stops


def soak_workers(
    target: str,
    settings: Settings | None = None,
    *,
    workers: int,
    duration: float,
    shared: str | None = None,
    state_dir: str | None = None,
    on_event: Listener = ignore,
    **options: Any,
) -> Any:
    """Run ``workers`` soak processes of one campaign; return the merged SoakReport.
    ``settings`` and ``options`` as for ``soak``."""
    from fuzzer.db import parse as parse_db
    from fuzzer.modes.nightly.campaign import campaign_key
    from fuzzer.modes.nightly.soak import STATE_DIR, SoakReport
    from fuzzer.modes.nightly.soakreport import interrupted_summary
    from fuzzer.modes.prepare import reference_of, resolve

    given, options = split_settings(options)
    settings = Settings.of(settings or Settings.for_cli(), **given)
    db, seed, report_dir = settings.db, settings.seed, settings.report_dir or REPORTS

    spec = parse_db(db)
    if spec.database:
        raise FuzzerError(
            f"--workers {workers} needs scratch databases the fuzzer names itself, one per "
            f"worker, but --db names the database {spec.database!r}: give --db "
            f"{spec.dialect if spec.dialect != 'postgresql' else 'postgres'} or a URL "
            "without a database name"
        )
    resolved = resolve(target)
    reference = reference_of(resolved)
    state_dir = state_dir or STATE_DIR
    campaign = open_campaign(shared, state_dir, campaign_key(reference, spec.dialect))
    if seed is not None:
        campaign.start_rotation(seed)
    started = time.monotonic()
    context = multiprocessing.get_context("spawn")
    events: Any = context.Queue()
    common = {
        **options,
        "settings": settings.replace(seed=None),  # the rotation is started here, once
        "shared": shared,
        "state_dir": state_dir,
        "duration": duration,
    }
    processes = [
        context.Process(
            target=_work,
            args=(_Job(reference, index, workers, common, os.getpid()), events),
            name=f"fuzzer-worker-{index}",
            daemon=True,
        )
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    parent = _Parent(
        reference, resolved.name, spec.safe_url, workers, duration, report_dir, on_event
    )
    parent.started = started
    try:
        parent.follow(processes, events)
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: each worker stops as a soak does (its scratch databases
        # dropped), then the reports of what arrived so far are written
        _stop(processes)
        if parent.writer is not None:
            summary = interrupted_summary(sum(parent.examples.values()), parent.seconds())
            parent.writer.finish(summary)
        raise
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    parent.check_outcome()
    report = _merge(
        SoakReport,
        reference,
        parent.database,
        duration,
        parent.seconds(),
        parent.summaries,
        parent.died,
        parent.errors,
        parent.written,
        parent.writer,
        campaign,
        workers,
    )
    report.app_log = _worker_logs(parent.summaries, report.directory)
    return report


class _Parent:
    """What the parent follows of its workers: their events on the queue, and which of
    them died; it alone writes the run directory."""

    def __init__(
        self,
        reference: str,
        name: str,
        url: str,
        workers: int,
        duration: float,
        report_dir: str,
        on_event: Listener,
    ) -> None:
        self.reference, self.name, self.url = reference, name, url
        self.workers, self.duration, self.report_dir = workers, duration, report_dir
        self.on_event = on_event
        self.started = time.monotonic()
        self.writer: ReportWriter | None = None
        self.written: list[Written] = []
        self.summaries: dict[int, dict[str, Any]] = {}  # {}: it stopped on an error
        self.examples: dict[int, int] = {}
        self.died: dict[int, int | None] = {}
        self.errors: dict[int, str] = {}
        self.database: dict[str, Any] = {}

    def seconds(self) -> float:
        return time.monotonic() - self.started

    def follow(self, processes: list[Any], events: Any) -> None:
        """Until every worker sent its summary, an error, or died."""
        while len(self.summaries) + len(self.died) < self.workers:
            interrupt.check()  # a signal whose raise was lost (fuzzer/search/interrupt.py)
            try:
                index, event, data = events.get(timeout=0.5)
            except queues.Empty:
                self.look_for_dead(processes)
                continue
            self.receive(index, event, data)

    def look_for_dead(self, processes: list[Any]) -> None:
        for i, process in enumerate(processes):
            if i not in self.summaries and i not in self.died and not process.is_alive():
                self.died[i] = process.exitcode
                self.on_event(WorkerDied(i, process.exitcode))

    def receive(self, index: int, event: str, data: dict[str, Any]) -> None:
        if event == "start" and self.writer is None:
            self.start(data)
        elif event == "example":
            self.examples[index] = data["examples"]
            self.on_event(Example(sum(self.examples.values()), findings=len(self.written)))
        elif event == "finding" and self.writer is not None:
            entry = self.writer.add(data["finding"])
            self.written.append(entry)
            self.on_event(Wrote(entry.json))
        elif event == "done":
            self.summaries[index] = data
        elif event == "error":
            self.errors[index] = data["message"]
            self.summaries[index] = {}

    def start(self, data: dict[str, Any]) -> None:
        self.database = data["database"]
        self.writer = ReportWriter(
            self.report_dir,
            self.reference,
            f"{self.name}-soak",
            self.database,
            {"duration": self.duration, "db": self.url, "workers": self.workers},
            columns=data["columns"] or {},
            identities=data["identities"],
        )
        self.writer.ensure_directory()
        self.writer.write_manifest({"state": "running"})
        self.on_event(
            Start(
                target=self.reference,
                database=self.database,
                max_examples=None,
                time_budget=self.duration,
                directory=self.writer.directory,
                notices=data["notices"] or [],
            )
        )

    def check_outcome(self) -> None:
        """A soak none of whose workers got to its end is an environment error (exit 2),
        with the cause on one line: as a single soak's, whatever the number of workers.
        One that some workers finished goes on to its report, which names the others."""
        if any(self.summaries.values()):
            return
        if self.errors:  # the same cause for every worker (the store gone): said once
            causes = sorted(set(self.errors.values()))
            raise FuzzerError("; ".join(causes))
        died = ", ".join(f"worker {i + 1} (exit {code})" for i, code in sorted(self.died.items()))
        raise FuzzerError(
            f"every worker died before the end of the soak: {died}; nothing was reported "
            f"for the time left. Killed from outside, or the target ended the process "
            f"(os._exit): run a single soak (no --workers) to see it"
        )


def crowding(workers: int, cores: int | None = None) -> str | None:
    """A warning when ``workers`` exceed this machine's cores, with the memory they take;
    None when they fit."""
    cores = cores or os.cpu_count() or 1
    if workers <= cores:
        return None
    return (
        f"--workers {workers} on {cores} core{'s' if cores != 1 else ''}: the workers will "
        f"take turns on the cores rather than run at once (fewer examples per second each, "
        f"and hangs judged on a loaded machine), and take about {workers * WORKER_MIB} MiB "
        f"of memory ({WORKER_MIB} MiB each); --workers {cores} uses every core"
    )


def _stop(processes: list[Any]) -> None:
    """Ask every live worker to stop (SIGTERM: it stops before its next execution and
    drops its scratch databases), and wait for them a while."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + 20
    for process in processes:
        process.join(timeout=max(0.1, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():  # stuck where it reads no flag: a second signal raises
            process.terminate()
            process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)


def _merge(
    soak_report: Any,
    reference: str,
    database: dict[str, Any],
    duration: float,
    seconds: float,
    summaries: dict[int, dict[str, Any]],
    died: dict[int, int | None],
    errors: dict[int, str],
    written: list[Written],
    writer: ReportWriter | None,
    campaign: Any,
    workers: int,
) -> Any:
    from fuzzer.modes.nightly.soak import Round

    rounds: list[Round] = []
    per_worker: list[dict[str, Any]] = []
    for index in range(workers):
        summary = summaries.get(index) or {}
        mine = [_round(Round, r) for r in summary.get("rounds", [])]
        rounds += mine
        per_worker.append(
            {
                "worker": index,
                "examples": sum(r.examples for r in mine),
                "rounds": len(mine),
                "findings": summary.get("findings", 0),
                "exit": "died" if index in died else "error" if index in errors else "finished",
                "exit_code": died.get(index),
                "error": errors.get(index, ""),
            }
        )
    first = next((s for s in summaries.values() if s), {})
    vitals = first.get("vitals", {})
    coverage = first.get("coverage", {})
    stops = sorted({s.get("stop_reason", "") for s in summaries.values() if s})
    plans = [s["pairs"] for s in summaries.values() if s and s.get("pairs")]
    pairs = None
    if plans:  # each worker read the campaign's store when it ended: the latest knows most
        best = max(plans, key=lambda p: (p["explored"], p["ran"]))
        pairs = Coverage(**{**best, "relations": tuple(best.get("relations", ()))})
    report = soak_report(
        target=reference,
        database=database,
        duration=duration,
        seconds=seconds,
        rounds=rounds,
        start=_vitals(vitals.get("start", {})),
        end=_vitals(vitals.get("end", {})),
        setup=_vitals(vitals.get("setup", {})),
        warmup=int(vitals.get("start", {}).get("after_examples", 0)),
        written=written,
        stop_reason="; ".join(s for s in stops if s) or "every worker stopped",
        references=sum(int(s.get("references", 0)) for s in summaries.values() if s),
        campaign=campaign.where,
        workers=per_worker,
        coverage=(int(coverage.get("done", 0)), int(coverage.get("units", 0))),
        pairs=pairs,
        complete_after=min(
            (s["complete_after"] for s in summaries.values() if s and s.get("complete_after")),
            default=None,
        ),
    )
    if writer is not None:
        report.directory = writer.finish(report.summary())
    return report


def _work(job: _Job, events: Any) -> None:
    """One worker process: a whole soak whose findings and progress go to the parent."""
    from fuzzer.modes.nightly.sharedstore import store_failure
    from fuzzer.modes.nightly.soak import soak

    # SIGTERM (the parent stopping it, or dying) stops the search before its next
    # execution, and the session drops the scratch databases; Ctrl-C reaches the parent
    # too, which says so
    def stop(signum: int | None = None, frame: Any = None) -> None:
        again = interrupt.requested()
        interrupt.request()
        if os.getppid() != job.parent:
            events.cancel_join_thread()  # nobody reads the queue any more: exit anyway
        if again and signum is not None:
            raise KeyboardInterrupt  # a second signal: stuck where the flag is not read

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _die_with_parent(job.parent, stop)

    def send(event: Event) -> None:
        if isinstance(event, Start):
            info = {
                "database": event.database,
                "columns": event.columns,
                "identities": event.identities,
                "notices": event.notices,
            }
            events.put((job.index, "start", info))
        elif isinstance(event, Example):
            events.put((job.index, "example", {"examples": event.examples}))

    def sink(finding: Finding) -> Written | None:
        events.put((job.index, "finding", {"finding": finding}))
        return None

    try:
        report = soak(
            job.target,
            worker=job.index,
            workers=job.workers,
            sink=sink,
            on_event=send,
            **job.options,
        )
    except FuzzerError as exc:
        events.put((job.index, "error", {"message": str(exc)}))
        return
    except KeyboardInterrupt:
        return  # stopped by the parent, or its death
    except Exception as exc:
        failure = store_failure(exc, job.options.get("shared"))
        if failure is None:
            raise  # a bug: its traceback, and the parent sees a worker that died
        events.put((job.index, "error", {"message": str(failure)}))
        return
    summary = report.summary()
    summary["findings"] = sum(r.findings for r in report.rounds)
    if report.app_log is not None:
        summary["app_log"] = dataclasses.asdict(report.app_log)
    events.put((job.index, "done", summary))


def _worker_logs(summaries: dict[int, dict[str, Any]], directory: str) -> AppLogSummary | None:
    """Each worker's app log moved into the run directory as ``app-w<N>.log``; what they
    logged together."""
    logs = {i: s["app_log"] for i, s in summaries.items() if s and s.get("app_log")}
    if not logs:
        return None
    for index, log in sorted(logs.items()):
        if log["path"] and os.path.exists(log["path"]):
            if directory:
                shutil.move(log["path"], os.path.join(directory, f"app-w{index + 1}.log"))
            shutil.rmtree(os.path.dirname(log["path"]), ignore_errors=True)
    kept = any(log["path"] for log in logs.values()) and directory
    return AppLogSummary(
        records=sum(log["records"] for log in logs.values()),
        errors=sum(log["errors"] for log in logs.values()),
        lines=sum(log["lines"] for log in logs.values()),
        path=os.path.join(directory, "app-w*.log") if kept else None,
    )


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent: int, stop: Callable[..., None]) -> None:
    """Stop this worker when its parent dies, ``kill -9`` included: Linux sends SIGTERM
    (prctl PR_SET_PDEATHSIG); elsewhere, and as a second line, a thread that notices the
    parent is gone within a second. Either way the soak stops before its next execution
    and drops its scratch databases, instead of fuzzing on for nobody under PID 1."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        stop()

    if os.getppid() != parent:  # it died while this one started
        stop()
    threading.Thread(target=watch, name="fuzzer-parent-watch", daemon=True).start()


def _vitals(data: dict[str, Any]) -> Vitals:
    return Vitals(float(data.get("memory_mib", 0.0)), data.get("connections"))


def _round(round_type: Any, data: dict[str, Any]) -> Any:
    return round_type(
        data.get("seed"),
        int(data.get("examples", 0)),
        float(data.get("seconds", 0.0)),
        str(data.get("stop_reason", "")),
        int(data.get("findings", 0)),
        _vitals(data.get("after", {})),
    )
