"""Issue 20 item 8's acceptance on a target of 60+ endpoints, run as a user runs it (a
child process, ``bench.scale``): every planted race within ``-n 500``, the first
progress line within 10 s, peak memory under 500 MB, and a stop by SIGTERM or SIGINT
while surveying honoured within 10 s (exit 130)."""

from __future__ import annotations

import pytest

from bench import scale


def test_the_limits_are_checked() -> None:
    """What ``failures`` says of a run that misses each limit (so the slow test below
    can fail)."""
    result = scale.Scale("t", 500, 1, planted=["lost-update · A", "write-skew · B"])
    result.found = {"lost-update · A": 12}
    result.first_line, result.peak_mib = 11.0, 501.0
    result.stops = {
        "SIGTERM": {"seconds": 1.0, "code": 130},
        "SIGINT": {"seconds": 12.0, "code": 130},
    }
    assert result.failures() == [
        "missed write-skew · B",
        "first line after 11.0 s",
        "peak memory 501 MiB",
        "SIGINT: exit 130 after 12.0 s",
    ]


@pytest.mark.slow  # about 3 minutes on a loaded machine
def test_a_target_of_67_endpoints_meets_the_acceptance() -> None:
    result = scale.measure("targets.bazaar:buggy", 500, 1)
    assert result.endpoints >= 60 and len(result.planted) == 4
    assert not result.failures(), (result.failures(), scale.markdown(result))
