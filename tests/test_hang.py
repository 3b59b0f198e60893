"""A deadlock in Python: found as a hang that says where each request was stuck, and the
search stops instead of hanging on the locks the stuck threads keep."""

from __future__ import annotations

import time

from fuzzer import api


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
