"""Stress mode: free-running batches judged by the same oracle, bounded, and best-effort
replay of what they find."""

from __future__ import annotations

import os
import subprocess
import sys

from fuzzer import api
from fuzzer.model import Step
from fuzzer.search.schedules import from_trace
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
    assert report.result.examples >= 5
    assert "time budget" in report.result.stop_reason


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
