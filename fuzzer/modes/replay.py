"""Replay a recorded scenario and schedule without Hypothesis: ``replay(path)`` (the
command line's ``fuzzer replay``) and ``assert_serializable`` (what a generated regression
test calls). A replay compares the traces of its runs and names the first step where they
differ.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fuzzer.errors import InvalidReport
from fuzzer.execute.instrument import load_target
from fuzzer.execute.runner import Controlled
from fuzzer.findings import Finding
from fuzzer.model import Scenario, Step
from fuzzer.modes.prepare import resolve
from fuzzer.modes.session import Session
from fuzzer.report import json as report_json
from fuzzer.report.text import finding_text
from fuzzer.search.engine import evaluate
from fuzzer.settings import Settings
from fuzzer.target.contract import Target


@dataclass
class ReplayResult:
    path: str
    fingerprint: str
    kind: str
    times: int
    reproduced: int
    traces_identical: bool
    database: dict[str, Any]
    last: Finding | None
    target: str = ""  # the recorded target's reference
    # when the traces differ: the first step where a replay's differs from the first's
    first_difference: str = ""

    @property
    def status(self) -> str:
        if self.reproduced == self.times:
            return "reproduced"
        if self.reproduced == 0:
            return "fixed"
        return "flaky"

    @property
    def exit_code(self) -> int:
        return {"reproduced": 1, "fixed": 0, "flaky": 4}[self.status]


def replay(
    path: str,
    settings: Settings | None = None,
    *,
    times: int = 1,
    **options: Any,
) -> ReplayResult:
    """Re-run a recorded scenario and schedule, ``times`` times, without Hypothesis.

    On the kind of database the report was written on, at its isolation level, unless
    ``settings`` (whole) or ``options`` (its fields as keywords: ``db=``, ``isolation=``,
    ``hang_timeout=``) say otherwise; an option given as None is left to the recording.
    """
    document = report_json.load(path)
    target = load_target(document["target"])
    scenario = Scenario.from_json(document["scenario"])
    fingerprint = document["fingerprint"]
    given = {k: v for k, v in options.items() if v is not None}
    chosen = Settings.of(settings, **given)
    elsewhere = settings is not None or "db" in given
    if not elsewhere:
        level = chosen.isolation if "isolation" in given else _recorded_isolation(document)
        recorded = report_json.recorded_db(document.get("database") or {})
        chosen = chosen.replace(db=recorded, isolation=level)
    runs, info = _replays(target, scenario, chosen, times)
    hits = [next((f for f in found if f.fingerprint == fingerprint), None) for _, found in runs]
    matched = [f for f in hits if f is not None]
    return ReplayResult(
        path,
        fingerprint,
        document["kind"],
        times,
        len(matched),
        len({_interleaving(trace) for trace, _ in runs}) == 1,
        info,
        matched[-1] if matched else None,
        target=document["target"],
        first_difference=_first_difference([trace for trace, _ in runs]),
    )


def _first_difference(traces: list[tuple[Step, ...]]) -> str:
    """Where the first replay whose trace differs from the first replay's departs from
    it: "step 4: replay 1 had R2 COMMIT, replay 3 R1 UPDATE … (1 row)"; "" if none do."""
    if not traces:
        return ""
    first = _interleaving(traces[0])
    for number, trace in enumerate(traces[1:], 2):
        other = _interleaving(trace)
        if other == first:
            continue
        at = next(
            (k for k, (a, b) in enumerate(zip(first, other, strict=False)) if a != b),
            min(len(first), len(other)),
        )
        mine, theirs = _step_text(traces[0], at), _step_text(trace, at)
        if mine == theirs:  # the same statement: its parameters differ
            mine, theirs = _step_text(traces[0], at, True), _step_text(trace, at, True)
        return f"step {at + 1}: replay 1 had {mine}, replay {number} {theirs}"
    return ""


def _step_text(trace: tuple[Step, ...], at: int, params: bool = False) -> str:
    if at >= len(trace):
        return "no step (its trace ended)"
    step = trace[at]
    what = " ".join(step.text.split())[:60] if step.text else step.kind.upper()
    if params and step.params:
        what += f" {step.params[:80]}"
    done = (
        f" ({step.rowcount} row{'s' if step.rowcount != 1 else ''})"
        if step.rowcount is not None
        else ""
    )
    error = f" ({step.error.split(':')[0]})" if step.error else ""
    return f"R{step.request + 1} {what}{done}{error}"


def assert_serializable(
    target: Target | str,
    scenario: Scenario | dict[str, Any],
    settings: Settings | None = None,
    *,
    times: int = 1,
    **options: Any,
) -> None:
    """Run ``scenario`` under its own schedule and fail with the report if it shows any finding.

    What a generated regression test calls: ``scenario`` is a ``Scenario`` or its JSON
    form (a finding report's ``"scenario"``); ``settings`` (or its fields as keywords:
    ``db=``, ``isolation=``, ``hang_timeout=``) say where and with which limits.
    """
    __tracebackhide__ = True
    resolved = resolve(target)
    if not isinstance(scenario, Scenario):
        try:
            scenario = Scenario.from_json(scenario)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidReport(
                f"Not a scenario (init, requests, schedule, observers): {exc}"
            ) from None
    runs, info = _replays(resolved, scenario, Settings.of(settings, **options), times)
    failing = [found for _, found in runs if found]
    if failing:
        where = info.get("server_version", info.get("dialect", ""))
        raise AssertionError(
            f"the pinned schedule still fails in {len(failing)} of {times} run(s) on {where}:\n\n"
            + "\n".join(finding_text(f) for f in failing[-1])
        )


def _replays(
    target: Target, scenario: Scenario, settings: Settings, times: int
) -> tuple[list[tuple[tuple[Step, ...], list[Finding]]], dict[str, Any]]:
    """Run one scenario ``times`` times under control: each run's trace and findings."""
    session = Session(target, settings)

    def work(s: Session) -> tuple[list[tuple[tuple[Step, ...], list[Finding]]], dict[str, Any]]:
        assert s.oracle is not None
        runs = []
        for _ in range(times):
            execution, _, findings = evaluate(scenario, s.execute, s.oracle, Controlled(s.limits))
            runs.append((tuple(execution.trace), findings))
        return runs, s.database_info

    return session.run(work)


def _recorded_isolation(document: dict[str, Any]) -> str | None:
    """The ``--isolation`` the finding was recorded at (None: the database's default)."""
    level = (document.get("database") or {}).get("isolation")
    return str(level) if level and level != "default" else None


def _interleaving(trace: tuple[Step, ...]) -> tuple[tuple[Any, ...], ...]:
    """What a replay must repeat: who ran which statement in which order, and what it did.
    (Which pooled connection a request was handed, and the text of a lock wait, may vary;
    so may a parameter that is random by nature, such as a token from ``secrets`` or a
    ``time()`` stamp: masks.meaningful tells them, and they are compared as placeholders.
    Flask-Caching's memoize steps are recorded without their keys, which end with a
    version drawn at random after every reset: execute/caches.py.)"""
    return tuple(
        (s.request, s.number, s.kind, s.text, _params(s.params), s.database, s.rowcount, s.error)
        for s in trace
    )


def _params(params: Any) -> Any:
    """Parameters with their random-by-nature values as placeholders."""
    import ast

    if isinstance(params, str) and params[:1] in "([{":  # the trace keeps their repr
        try:
            params = ast.literal_eval(params)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return params
    return _placeholders(params)


def _placeholders(value: Any) -> Any:
    from fuzzer.judge.masks import meaningful

    if isinstance(value, dict):
        return tuple(sorted((k, _placeholders(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_placeholders(v) for v in value)
    if isinstance(value, str) and _STAMP.fullmatch(value):
        return "<time>"  # the clock read while the request ran (a last_seen stamp)
    return "<random>" if meaningful(value) else value


#: A date and time to the fraction of a second, as drivers are given one.
_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}\.\d+([+-]\d{2}:?\d{2}|Z)?")
