"""Stress mode: free-running batches judged by the same oracle, bounded, and best-effort
replay of what they find."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from fuzzer import api
from fuzzer.model import Step
from fuzzer.search.plan.schedules import from_trace
from tests.test_scheduler import program, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_schedule_derived_from_an_observed_order_replays_it() -> None:
    observed = [(1, 1), (1, 2), (0, 1), (0, 2), (1, 3), (0, 3), (0, 4), (1, 4)]
    trace = [Step(request=r, number=n, kind="sql") for r, n in observed]
    genes = from_trace(trace, 2)
    order, _ = run(genes, [program("sql", "sql"), program("sql", "sql")])
    assert order == observed


def test_stress_stops_by_itself_and_the_fixed_twin_is_clean() -> None:
    report = api.stress("targets.profile:fixed", duration=2.0, concurrency=3, report_dir=None)
    assert report.findings == []
    assert report.result.examples >= 1  # it ran (how many fit in 2 s is the bench's business)
    assert "time budget" in report.result.stop_reason


@pytest.mark.slow
def test_stress_command_is_bounded_by_batches() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fuzzer",
            "stress",
            "targets.profile:fixed",
            "--max-batches",
            "5",
            "--concurrency",
            "2",
            "--no-progress",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "5 examples" in result.stdout


def test_stress_waits_for_a_sleeping_handler_and_calls_a_deadlock_a_hang() -> None:
    # issue 21: stress called a sleeping handler a deadlock and exited 0 with nothing
    # judged; the rule of `run` holds here too: a sleep is progress, a thread that
    # stands still past the hang budget is a hang
    from tests.fixtures import sleepy

    sleepy.NAP["seconds"] = 1.0  # longer than the hang budget: still no hang
    slow = api.stress(
        "tests.fixtures.sleepy:sleeper",
        duration=8.0,  # two batches of a 1 s sleep, on a loaded machine too
        concurrency=2,
        max_batches=2,
        hang_timeout=0.3,
        stuck_grace=0.5,
        report_dir=None,
    )
    assert slow.findings == []
    assert slow.result.judged["fully"] == 2, slow.result.judged

    started = time.monotonic()
    stuck = api.stress(
        "tests.fixtures.sleepy:deadlock",
        duration=30.0,
        concurrency=4,  # both endpoints in the first batch, for this seed
        seed=1,
        hang_timeout=0.3,
        stuck_grace=0.5,
        report_dir=None,
    )
    assert time.monotonic() - started < 14.0  # before: the 15.3 s request timeout
    hangs = [f for f in stuck.findings if f.kind == "hang"]
    assert hangs, stuck.result.stop_reason
    assert hangs[0].execution.hang is not None
    assert all(
        "neither its CPU clock nor its stack moved" in why
        for why in hangs[0].execution.hang.blocked.values()
    )
    assert "stuck" in stuck.result.stop_reason


def test_stress_that_judged_nothing_exits_2() -> None:
    # a handler that sleeps past --duration: every batch still running when the time is
    # up is cut, unjudged; before, the batch ran on past the duration and a run that
    # judged nothing could exit 0
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tests.fixtures import sleepy; sleepy.NAP['seconds'] = 4.0; "
            "from fuzzer.cli.commands import main; main()",
            "stress",
            "tests.fixtures.sleepy:sleeper",
            "--duration",
            "1",
            "--concurrency",
            "2",
            "--no-progress",
            "--report-dir",
            "reports",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "stress judged nothing" in result.stderr + result.stdout
    assert "still running when the time budget ended" in result.stderr + result.stdout


def test_a_stress_finding_that_does_not_replay_under_control_is_unconfirmed() -> None:
    # issue 19: such a finding got a replay file and a regression test that said "fixed";
    # unconfirmed ("0/n"), it gets neither, and is counted apart from the findings
    from fuzzer.findings import Explanation, Finding
    from fuzzer.model import Execution, Gene, Request, Scenario
    from fuzzer.search.engine import Search, Tuning

    requests = (Request("PUT /a", "PUT", "/a"), Request("PUT /a", "PUT", "/a"))
    trace = (Step(request=1, number=1, kind="sql"), Step(request=0, number=1, kind="sql"))
    seen = Finding(
        kind="lost-update",
        endpoints=("PUT /a",),
        exception="",
        scenario=Scenario(requests=requests, schedule=(Gene(), Gene())),
        execution=Execution(mode="free", responses=(None, None), tables={}, trace=trace),
        verdict=None,
        explanation=Explanation(let=(), facts=(), however=""),
    )
    search = object.__new__(Search)
    search.tuning = Tuning(confirm=3)
    replays: list[Scenario] = []
    search._reproduces = lambda scenario, fingerprint: replays.append(scenario)  # type: ignore[method-assign]
    never = search._replay_under_control(seen)
    assert len(replays) == 3 and never.unconfirmed and str(never.flaky) == "0/3"
    assert never.extra["replay"].startswith("not reproducible")
    search._reproduces = lambda scenario, fingerprint: seen  # type: ignore[method-assign]
    always = search._replay_under_control(seen)
    assert not always.unconfirmed and not always.flaky
    assert always.extra["replay"].startswith("reproduced 3/3")
