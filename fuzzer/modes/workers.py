"""Several soak workers on one machine, all in one campaign (``fuzzer soak --workers N``).

The parent starts N worker processes (``spawn``: nothing of the parent's threads,
server or connections is inherited). Each worker is a whole soak of its own
(fuzzer/modes/soak.py): its own scratch databases, app and loopback server. They split the
work through the campaign's store (fuzzer/modes/campaign.py): each round claims the next
seed of one rotation and a chunk of the systematic opening, and each finding is
claimed by the first worker to confirm it. Workers send what they find and their
progress to the parent on a queue; the parent alone writes the reports, so a finding
is written once, in one run directory, the moment it arrives.

A worker that dies (killed, or the target called ``os._exit``) loses nothing the
store had: its findings are written, its seeds are spent, and the opening chunk it
held returns to the others when its lease runs out. The parent says so and goes on
with the others.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queues
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fuzzer.errors import FuzzerError
from fuzzer.findings import Finding
from fuzzer.modes.campaign import open_campaign
from fuzzer.modes.vitals import Vitals
from fuzzer.report.writer import ReportWriter, Written
from fuzzer.search.pairs import Coverage

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


def soak_workers(
    target: str,
    *,
    workers: int,
    duration: float,
    db: str = "sqlite",
    shared: str | None = None,
    seed: int | None = None,
    report_dir: str = "reports",
    state_dir: str | None = None,
    on_event: Callable[..., None] = lambda *a, **k: None,
    **options: Any,
) -> Any:
    """Run ``workers`` soak processes of one campaign; return the merged SoakReport."""
    from fuzzer.api import reference_of, resolve
    from fuzzer.db import parse as parse_db
    from fuzzer.modes.soak import STATE_DIR, SoakReport, campaign_key, interrupted_summary

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
        "db": db,
        "shared": shared,
        "state_dir": state_dir,
        "duration": duration,
    }
    processes = [
        context.Process(
            target=_work,
            args=(_Job(reference, index, workers, common), events),
            name=f"fuzzer-worker-{index}",
            daemon=True,
        )
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    writer: ReportWriter | None = None
    written: list[Written] = []
    summaries: dict[int, dict[str, Any]] = {}
    examples: dict[int, int] = {}
    died: dict[int, int | None] = {}
    failure: str | None = None
    database: dict[str, Any] = {}
    try:
        while len(summaries) + len(died) < workers:
            try:
                index, event, data = events.get(timeout=0.5)
            except queues.Empty:
                for i, process in enumerate(processes):
                    if i not in summaries and i not in died and not process.is_alive():
                        died[i] = process.exitcode
                        on_event("worker-died", worker=i, exit_code=process.exitcode)
                continue
            if event == "start" and writer is None:
                database = data["database"]
                writer = ReportWriter(
                    report_dir,
                    reference,
                    f"{resolved.name}-soak",
                    database,
                    {"duration": duration, "db": spec.safe_url, "workers": workers},
                    columns=data["columns"] or {},
                    identities=data["identities"],
                )
                writer.ensure_directory()
                writer.write_manifest({"state": "running"})
                on_event(
                    "start",
                    target=reference,
                    database=database,
                    max_examples=None,
                    time_budget=duration,
                    directory=writer.directory,
                    notices=data["notices"] or [],
                )
            elif event == "example":
                examples[index] = data["examples"]
                on_event(
                    "example",
                    examples=sum(examples.values()),
                    findings=len(written),
                    phase=data.get("phase", "generate"),
                )
            elif event == "finding" and writer is not None:
                entry = writer.add(data["finding"])
                written.append(entry)
                on_event("written", entry=entry)
            elif event == "done":
                summaries[index] = data
            elif event == "error":
                failure = failure or data["message"]
                summaries[index] = {}
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: each worker stops as a soak does (its scratch databases
        # dropped), then the reports of what arrived so far are written
        _stop(processes)
        if writer is not None:
            writer.finish(interrupted_summary(sum(examples.values()), time.monotonic() - started))
        raise
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    if failure is not None and not any(summaries.values()):
        raise FuzzerError(failure)
    return _merge(
        SoakReport,
        reference,
        database,
        duration,
        time.monotonic() - started,
        summaries,
        died,
        written,
        writer,
        campaign,
        workers,
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


def _merge(
    soak_report: Any,
    reference: str,
    database: dict[str, Any],
    duration: float,
    seconds: float,
    summaries: dict[int, dict[str, Any]],
    died: dict[int, int | None],
    written: list[Written],
    writer: ReportWriter | None,
    campaign: Any,
    workers: int,
) -> Any:
    from fuzzer.modes.soak import Round

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
                "exit": "died" if index in died else "finished",
                "exit_code": died.get(index),
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
    from fuzzer.modes.soak import soak
    from fuzzer.search import interrupt

    # SIGTERM (the parent stopping it) stops the search before its next execution, and
    # the session drops the scratch databases; Ctrl-C reaches the parent, which says so
    signal.signal(signal.SIGTERM, lambda *_: interrupt.request())
    signal.signal(signal.SIGINT, lambda *_: interrupt.request())

    def send(event: str, **data: Any) -> None:
        if event == "start":
            keep = ("database", "columns", "identities", "notices")
            info = {name: data.get(name) for name in keep}
            events.put((job.index, "start", info))
        elif event == "example":
            events.put((job.index, "example", {"examples": data.get("examples", 0)}))

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
        return  # stopped by the parent
    summary = report.summary()
    summary["findings"] = sum(r.findings for r in report.rounds)
    events.put((job.index, "done", summary))


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
