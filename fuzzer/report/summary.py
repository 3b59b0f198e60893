"""The machine-readable summary of a command: ``--format json`` and ``--summary-file``.

One JSON object per command (``run``, ``stress``, ``soak``, ``replay``), versioned:

``schema``
    ``"flask-race-fuzzer/summary"``; ``version``: 1. A field is added without a new
    version; renaming or removing one, or changing its meaning, makes version 2.
``command``, ``target``, ``exit_code``, ``seconds``
    what ran, the code the command exits with, its wall-clock time (start-up included).
``database``
    dialect, server version, isolation, URLs with their password masked.
``findings``
    one object per confirmed finding: ``kind``, ``title``, ``fingerprint``,
    ``endpoints`` (of the minimal example), ``routes`` (every route seen reaching it: an
    error reached through several views lists them all), ``requests`` (of the minimal
    example), ``flaky`` (``"k/N"`` or
    ``""``), ``responses_only``, ``fails_run``, ``found_after`` (examples), ``json`` and
    ``test`` (the files written for it, or null).
``unconfirmed``
    findings whose minimal example never reproduced: ``kind``, ``fingerprint``, ``endpoints``.
``judged``
    examples judged ``fully``, ``partly`` (with masks) or ``not``; ``unknown``: the
    reasons examples could not be judged, with counts; ``masked``: the cells masked.
``coverage``
    the plan of endpoint pairs (``pairs``, ``explored``, ``schedules``, ``ran``,
    ``depth``, ...) and ``statement``, the sentence the text summary prints; null when
    no plan ran. ``uncovered``: what the run did not cover, one line each (less than
    half of the examples judged, the plan not run to the end): ``--require-coverage``
    exits 2 on it.
``search``
    ``examples``, ``stop_reason``, ``seed``, ``references`` (serial reference runs).
``directory``
    the run's report directory, or null when nothing was written.

``soak`` adds ``soak`` (rounds, seeds, vitals: the manifest's summary); ``replay`` has
``replay`` (``status``: reproduced, fixed or flaky; ``reproduced`` of ``times``;
``traces_identical``) and the finding it replayed instead of ``findings``' search. A
command that stopped with an error has only the head fields and ``error`` (its one line).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from fuzzer.findings import Finding, fails_run, flaky_text
from fuzzer.report.json import write_text_atomic
from fuzzer.report.reporting import coverage_text

SCHEMA = "flask-race-fuzzer/summary"
VERSION = 1


def of_run(report: Any, *, command: str, exit_code: int, seconds: float) -> dict[str, Any]:
    """``fuzzer run`` or ``fuzzer stress``: ``report`` is an ``api.RunReport``."""
    result = report.result
    files = {id(w.finding): w for w in report.written}
    return {
        **_head(command, report.target, report.database, exit_code, seconds),
        "findings": [_finding(f, files.get(id(f)), report.fail_on) for f in report.findings],
        "unconfirmed": [_brief(f) for f in result.unconfirmed],
        "judged": _counts(result.judged),
        "unknown": _counts(result.unknown),
        "masked": _counts(result.masked),
        "treated": _counts(result.treated),
        "coverage": _coverage(result.coverage, report.findings),
        "uncovered": list(getattr(result, "uncovered", [])),
        "search": {
            "examples": result.examples,
            "stop_reason": result.stop_reason,
            "seed": result.seed,
            "references": report.references,
            "search_seconds": round(result.seconds, 3),
            "shrink_seconds": round(result.shrink_seconds, 3),
        },
        "directory": report.directory,
    }


def of_soak(report: Any, *, exit_code: int, seconds: float) -> dict[str, Any]:
    """``fuzzer soak``: ``report`` is a ``SoakReport``."""
    findings = [w.finding for w in report.written]
    return {
        **_head("soak", report.target, report.database, exit_code, seconds),
        "findings": [_finding(w.finding, w, frozenset({"all"})) for w in report.written],
        "unconfirmed": [],
        "coverage": _coverage(report.pairs, findings),
        "search": {
            "examples": report.examples,
            "stop_reason": report.stop_reason,
            "seed": report.seeds[0] if report.seeds else None,
            "references": report.references,
        },
        "soak": report.summary(),
        "directory": report.directory or None,
    }


def of_replay(result: Any, *, target: str, exit_code: int, seconds: float) -> dict[str, Any]:
    """``fuzzer replay``: ``result`` is an ``api.ReplayResult``."""
    return {
        **_head("replay", target, result.database, exit_code, seconds),
        "replay": {
            "report": result.path,
            "kind": result.kind,
            "fingerprint": result.fingerprint,
            "status": result.status,
            "reproduced": result.reproduced,
            "times": result.times,
            "traces_identical": result.traces_identical,
        },
        "findings": [_finding(result.last, None, frozenset({"all"}))] if result.last else [],
    }


def dumps(summary: Mapping[str, Any]) -> str:
    return json.dumps(summary, indent=2, ensure_ascii=False, default=str)


def write(summary: Mapping[str, Any], path: str) -> None:
    """Write atomically: a reader sees the old file or the new one (report/json's writer,
    which also holds a lone surrogate from a target's name)."""
    write_text_atomic(os.path.abspath(path), dumps(summary) + "\n")


def _head(
    command: str, target: str, database: Mapping[str, Any], exit_code: int, seconds: float
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "command": command,
        "target": target,
        "exit_code": exit_code,
        "seconds": round(seconds, 3),
        "database": dict(database),
    }


def _finding(finding: Finding, written: Any, fail_on: frozenset[str]) -> dict[str, Any]:
    return {
        **_brief(finding),
        "title": finding.title,
        "routes": list(finding.routes),
        "requests": len(finding.scenario.requests),
        "flaky": flaky_text(finding),
        "responses_only": finding.response_only,
        "fails_run": fails_run(finding, fail_on),
        "found_after": finding.found_after,
        "json": getattr(written, "json", None),
        "test": getattr(written, "test", None),
    }


def _brief(finding: Finding) -> dict[str, Any]:
    return {
        "kind": finding.kind,
        "fingerprint": finding.fingerprint,
        "endpoints": list(finding.endpoints),
    }


def _counts(counter: Mapping[str, int]) -> dict[str, int]:
    return dict(counter)


def _coverage(coverage: Any, findings: list[Finding]) -> dict[str, Any] | None:
    if coverage is None:
        return None
    return {**coverage.to_json(), "statement": coverage_text(coverage, findings)}


def of_error(
    command: str, target: str, *, exit_code: int, seconds: float, message: str
) -> dict[str, Any]:
    """A command that stopped with an error (exit 2, 3) or was interrupted (130)."""
    return {**_head(command, target, {}, exit_code, seconds), "error": message}
