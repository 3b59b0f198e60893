"""Turn a verdict and its trace into classified, explained findings (DESIGN.md §6).

The kind of a finding is decided from evidence — the responses, the final rows, the
trace — never from the target's name:

* ``concurrency-error``: a request answered 5xx, and no serial reference of the same
  requests raised that exception in that request;
* ``lost-update``: a cell ends with the value a request wrote with an UPDATE of that
  row, after another request had committed its own UPDATE of the same column, and
  the writer had read the table before that commit;
* ``duplicate-insert``: the final rows hold a row twice, inserted by requests that
  each looked for it in that table before the other's insert was committed;
* ``write-skew``: two committed requests changed *different* rows, each after
  reading a table the other was about to change;
* ``limit-overrun``: any other final rows no serial order reaches (typically a
  check on a count or a stock that every request passed);
* ``stale-read``: the rows are fine, but a response is one no serial order gives;
* ``partial-commit``, ``duplicate-effect``, ``stale-retry``, ``unhandled-retryable``:
  what an injected error (``--faults``) showed (findings/faults.py);
* the hygiene kinds (``hang``, ``leaked-transaction``, ``wrong-engine``) come from
  the instrumentation, and ``serial-failure`` from the serial references: a 5xx a
  request also gives alone is a plain bug, never a race.

Each finding names only the requests involved: the fingerprint (kind + their
endpoints + exception type) is what tells one bug from another, and what lets
shrinking delete a request that only stood by. Each carries an explanation as data
(who read what before whom, the closest serial order, the first difference) that
renders as text: "Let … Then … However … : a contradiction!".
"""

from __future__ import annotations

from fuzzer.findings.context import _Context
from fuzzer.findings.errors import _serial_failures
from fuzzer.findings.explain import Explanation, label, responses_text
from fuzzer.findings.faults import _faults
from fuzzer.findings.finding import (
    Finding,
    Reproduced,
    fails_run,
    fingerprint,
    flaky_text,
    parse_fail_on,
    priority,
)
from fuzzer.findings.hygiene import _blocked_schema_change, _hang, _leaks, _wrong_engine
from fuzzer.findings.races import _races
from fuzzer.judge.oracle import Verdict
from fuzzer.kinds import KINDS, RACES, TITLES
from fuzzer.model import Execution, Scenario

__all__ = [
    "KINDS",
    "RACES",
    "TITLES",
    "Explanation",
    "Finding",
    "Reproduced",
    "classify",
    "fails_run",
    "fingerprint",
    "flaky_text",
    "label",
    "parse_fail_on",
    "priority",
    "responses_text",
]


def classify(
    scenario: Scenario, execution: Execution, verdict: Verdict, prefix_tables: bool = False
) -> list[Finding]:
    """Every finding one execution shows, most important first."""
    context = _Context(scenario, execution, verdict)
    findings: list[Finding] = []
    if execution.hang is not None:
        findings.append(_hang(context, execution.hang))
    if execution.schema_change is not None:
        findings += _blocked_schema_change(context, execution.schema_change)
    faulted = _faults(context)  # injected errors (--faults): their own kinds
    if faulted is not None:
        findings += faulted
    elif verdict.status == "violation":
        findings += _races(context)
    findings += _leaks(context)
    findings += _wrong_engine(context)
    findings += _serial_failures(context)
    findings.sort(key=priority)
    return findings
