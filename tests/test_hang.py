"""A deadlock in Python: found as a hang that says where each request was stuck, and the
search stops instead of hanging on the locks the stuck threads keep."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from fuzzer import api

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_python_deadlock_is_a_hang_and_the_run_stops() -> None:
    started = time.monotonic()
    report = api.run(
        "tests.fixtures.deadlock:target",
        max_examples=50,
        seed=1,
        report_dir=None,
        example_db=None,
        hang_timeout=0.5,
        stuck_grace=1.0,
    )
    assert time.monotonic() - started < 30
    (finding,) = report.findings
    assert finding.kind == "hang"
    assert sorted(finding.endpoints) == ["POST /audit", "POST /pay"]
    assert finding.execution.hang is not None
    reasons = list(finding.execution.hang.blocked.values())
    assert all(r.startswith("blocked in Python at tests/fixtures/deadlock.py:") for r in reasons)
    assert sorted(r.rsplit(" in ", 1)[1] for r in reasons) == ["audit", "pay"]
    assert "stuck" in report.result.stop_reason
    assert "stopped here" in finding.extra["stopped"]


def test_a_slow_password_hash_and_a_10mb_page_are_slow_not_hung() -> None:
    # issue 19: werkzeug's default scrypt on a loaded machine, and a 10 MB page, took
    # longer than --hang-timeout and were reported as hangs (4 on this fixed twin with
    # 0.2 s, seed 1, 40 examples), then as a deadlock that stopped the search. Their
    # threads run the whole time: no finding, every example judged
    report = api.run(
        "targets.shoplogin:fixed",
        max_examples=12,
        seed=1,
        report_dir=None,
        example_db=None,
        hang_timeout=0.2,
    )
    assert report.findings == [], [f.explanation.text() for f in report.findings]
    assert report.result.judged["fully"] == report.result.examples
    assert "stuck" not in report.result.stop_reason


def test_a_crash_of_a_background_thread_stops_the_run_with_exit_3() -> None:
    # issue 21: the scheduler's monitor died of a TypeError (frozen_since was None) and
    # the run went on without hang detection, exiting 1 on its other findings
    crash = (
        "from fuzzer.execute.scheduler import Scheduler\n"
        "def broken(self, now):\n"
        "    raise TypeError('frozen_since was None')\n"
        "Scheduler._check_hang = broken\n"
        "from fuzzer.cli.commands import main\n"
        "main()\n"
    )
    command = ["run", "targets.profile:buggy", "-n", "5", "--seed", "1", "--no-progress"]
    result = subprocess.run(
        [sys.executable, "-c", crash, *command, "--report-dir", "reports"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "the scheduler's monitor thread crashed" in result.stderr
    assert "TypeError: frozen_since was None" in result.stderr
    assert "in broken" in result.stderr  # the traceback, not just its last line
