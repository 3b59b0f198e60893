"""One self-contained HTML page per run: open it from disk, no server, no scripts.

Per finding: the requests and their schedule; a swimlane timeline (one lane per
request, one box per step, top to bottom in the order the scheduler granted them,
conflicting steps highlighted, commit points marked, a dashed line where the turn
switched); the explanation; the differences from the closest serial outcome, with
the final rows of the tables that differ side by side; how to reproduce it.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

import jinja2
import markupsafe

from fuzzer.findings import Finding, flaky_text, label
from fuzzer.model import Step
from fuzzer.report import escape
from fuzzer.report.text import context_switches, response_text, schedule_text, step_text
from fuzzer.version import __version__

if TYPE_CHECKING:
    from fuzzer.report.written import Written


def render(
    target: str,
    written: Sequence[Written],
    *,
    database: Mapping[str, Any],
    settings: Mapping[str, Any],
    summary: Mapping[str, Any],
    columns: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The page; ``columns`` names the columns of each table (table -> column names)."""
    columns = columns or {}
    return _template().render(
        target=target,
        version=__version__,
        created=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        database=_database(database),
        settings={k: v for k, v in settings.items() if v not in (None, "")},
        summary=summary,
        findings=[_finding(i, w, columns) for i, w in enumerate(written, 1)],
    )


@functools.cache
def _template() -> jinja2.Template:
    source = resources.files(__package__).joinpath("report.html.j2").read_text(encoding="utf-8")
    environment = jinja2.Environment(
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        # every value shown: control characters and lone surrogates made visible
        finalize=_visible,
    )
    return environment.from_string(source)


def _visible(value: Any) -> Any:
    """Every value the page shows, with control characters and lone surrogates made
    visible (already escaped markup stays markup: the replacements hold no ``<`` or ``&``)."""
    if isinstance(value, markupsafe.Markup):
        return markupsafe.Markup(escape.html(str(value)))
    return escape.html(value) if isinstance(value, str) else value


def _database(database: Mapping[str, Any]) -> dict[str, Any]:
    settings = database.get("settings") or {}
    return {
        "version": database.get("server_version") or database.get("dialect", ""),
        "isolation": database.get("isolation_level", ""),
        "url": database.get("url", ""),
        "settings": ", ".join(f"{k}={v}" for k, v in settings.items()),
        "notes": list(database.get("notes") or ()),
    }


def _finding(index: int, written: Written, columns: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    finding = written.finding
    scenario, execution = finding.scenario, finding.execution
    verdict = finding.verdict
    order = ""
    if verdict is not None and verdict.order:
        order = " → ".join(label(i) for i in verdict.order)
    return {
        "anchor": f"finding-{index}",
        "index": index,
        "title": finding.title,
        "kind": finding.kind,
        "endpoints": " + ".join(finding.endpoints) or "—",
        "exception": finding.exception,
        "flaky": flaky_text(finding),
        "found_after": finding.found_after,
        "switches": context_switches(execution.trace),
        "init": [r.describe() for r in scenario.init],
        "requests": [
            {
                "label": label(i),
                "request": request.describe(),
                "response": response_text(
                    execution.responses[i] if i < len(execution.responses) else None, 140
                ),
                "schedule": schedule_text(scenario.schedule[i]),
            }
            for i, request in enumerate(scenario.requests)
        ],
        "observers": [
            f"{r.describe()} → {response_text(resp, 140)}"
            for r, resp in zip(scenario.observers, execution.observers, strict=False)
        ],
        "lanes": [
            {"label": label(i), "endpoint": request.endpoint}
            for i, request in enumerate(scenario.requests)
        ],
        "steps": _steps(finding),
        "rows": len(execution.trace),
        "explanation": {
            "let": [f"{name} = {what}" for name, what in finding.explanation.let],
            "facts": list(finding.explanation.facts),
            "however": finding.explanation.however,
        },
        "order": order,
        "orders_tried": verdict.orders_tried if verdict else 0,
        "differences": [d.describe(label) for d in verdict.differences] if verdict else [],
        "tables": _tables(finding, columns),
        "reproduce": written.reproduce,
        "text": written.text(),
    }


def _steps(finding: Finding) -> list[dict[str, Any]]:
    trace = finding.execution.trace
    conflicts = set(finding.explanation.conflicts)
    steps = []
    for position, step in enumerate(trace):
        previous = trace[position - 1] if position else None
        classes: list[str] = [step.kind]
        if step.is_write:
            classes.append("write")
        if position in conflicts:
            classes.append("conflict")
        if step.error:
            classes.append("error")
        if step.injected:
            classes.append("injected")
        if step.waited:
            classes.append("waited")
        steps.append(
            {
                "row": position + 1,
                "lane": step.request,
                "classes": " ".join(classes),
                "text": step_text(step, finding.execution.responses),
                "full": _full_text(step),
                "conflict": position in conflicts,
                "commit": step.kind == "commit" and not step.error,
                "injected": step.injected,
                "switch": previous is not None
                and previous.request != step.request
                and previous.kind != "end",
            }
        )
    return steps


def _full_text(step: Step) -> str:
    parts = [f"{label(step.request)} step {step.number}: {step.kind}"]
    if step.text:
        parts.append(" ".join(step.text.split()))
    if step.params:
        parts.append(f"parameters {step.params}")
    if step.database and step.database != "default":
        parts.append(f"on {step.database}")
    if step.injected:
        parts.append(f"injected {step.injected} (--faults): the database made it fail")
    if step.error:
        parts.append(f"raised {step.error}")
    if step.waited:
        parts.append(f"waited: {step.waited}")
    return "\n".join(parts)


def _tables(finding: Finding, columns: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """The final rows of every table that differs, beside the closest serial order's."""
    verdict = finding.verdict
    if verdict is None or verdict.reference is None:
        return []
    names = sorted({d.table for d in verdict.differences if d.table})
    actual_tables = finding.execution.tables
    expected_tables = verdict.reference.tables
    result = []
    for name in names:
        actual = [list(r) for r in actual_tables.get(name, ())]
        expected = [list(r) for r in expected_tables.get(name, ())]
        width = max((len(r) for r in actual + expected), default=0)
        changed = {
            (i, j)
            for i in range(max(len(actual), len(expected)))
            for j in range(width)
            if _cell(actual, i, j) != _cell(expected, i, j)
        }
        result.append(
            {
                "name": name,
                "columns": _columns(columns.get(name), width),
                "actual": [
                    [(_show(v), (i, j) in changed) for j, v in enumerate(r)]
                    for i, r in enumerate(actual)
                ],
                "expected": [
                    [(_show(v), (i, j) in changed) for j, v in enumerate(r)]
                    for i, r in enumerate(expected)
                ],
            }
        )
    return result


def _columns(names: Sequence[str] | None, width: int) -> list[str]:
    if names and len(names) == width:
        return list(names)
    return [f"column {j + 1}" for j in range(width)]


def _cell(rows: list[list[Any]], i: int, j: int) -> Any:
    return rows[i][j] if i < len(rows) and j < len(rows[i]) else None


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
