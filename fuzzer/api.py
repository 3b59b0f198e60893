"""What the command line and a user's test suite call: run a search, replay a report.

``fuzz(target)`` is the one-liner for a test suite: it raises ``AssertionError`` with
the text report of every finding. ``run(...)`` does the same work and returns a
``RunReport`` (the CLI uses it); ``replay(path)`` re-runs a recorded scenario and
schedule without Hypothesis.

A façade: the work is done in ``fuzzer/modes/`` (``run``: a search and its reports;
``replay``: a recorded scenario again; ``prepare``: a target resolved and surveyed).
"""

from __future__ import annotations

from fuzzer.modes.prepare import Searchable, check, reference_of, resolve, searchable
from fuzzer.modes.replay import ReplayResult, assert_serializable, replay
from fuzzer.modes.run import DEFAULT_REPORT_DIR, RunReport, failure_message, fuzz, run, stress
from fuzzer.settings import Settings

__all__ = [
    "DEFAULT_REPORT_DIR",
    "ReplayResult",
    "RunReport",
    "Searchable",
    "Settings",
    "assert_serializable",
    "check",
    "failure_message",
    "fuzz",
    "reference_of",
    "replay",
    "resolve",
    "run",
    "searchable",
    "stress",
]
