"""The text of a finding, as a person reads it in a terminal, a CI log or a test failure.

Fixed titles (``= Lost update =``), the minimized requests, the interleaving as a
table (one column per request, one row per step, the SQL text), the explanation,
the closest serial outcome and its differences, and how to reproduce it.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from fuzzer.findings import Finding, label
from fuzzer.model import Gene, Request, Response, Scenario, Step

WIDTH = 120


def render(renderable: Any, width: int = WIDTH) -> str:
    """A rich renderable as plain text (no colors)."""
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        color_system=None,
        force_terminal=False,
        legacy_windows=False,
        soft_wrap=False,
    )
    console.print(renderable)
    lines = [line.rstrip() for line in buffer.getvalue().splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines).rstrip() + "\n"


def context_switches(trace: Sequence[Step]) -> int:
    """How often a request that had not ended gave the turn to another."""
    switches = 0
    for previous, step in itertools.pairwise(trace):
        if step.request != previous.request and previous.kind != "end":
            switches += 1
    return switches


def short_sql(text: str, limit: int = 90) -> str:
    sql = " ".join(text.split())
    match = re.match(r"(?is)^(SELECT\s+(?:DISTINCT\s+)?)(.+?)(\s+FROM\s+.*)$", sql)
    if match and len(match.group(2)) > 24:
        sql = f"{match.group(1)}…{match.group(3)}"
    return sql if len(sql) <= limit else sql[: limit - 1] + "…"


def step_text(step: Step, responses: Sequence[Response | None] | None = None) -> str:
    if step.kind == "sql":
        text = short_sql(step.text)
        if step.params and step.params not in ("()", "{}", "[]"):
            text += f"  {_clip(step.params, 60)}"
    elif step.kind == "start":
        text = "start"
    elif step.kind == "end":
        response = responses[step.request] if responses and step.request < len(responses) else None
        text = f"end → {response.status}" if response else "end"
    elif step.kind in ("commit", "rollback"):
        text = step.kind.upper()
    else:
        text = f"{step.kind} {step.text}".strip()
    if step.rowcount is not None:
        text += f"  → {step.rowcount} row{'s' if step.rowcount != 1 else ''}"
    if step.injected:  # --faults: the fuzzer made this statement fail
        text += f"  ✗ injected {step.injected}"
    elif step.error:
        text += f"  ✗ {_clip(step.error, 80)}"
    if step.waited:
        text += f"  ⏳ {_clip(step.waited, 80)}"
    return text


def interleaving(finding: Finding) -> Table:
    """One column per request, one row per step; a rule where the turn switches."""
    scenario, execution = finding.scenario, finding.execution
    table = Table(
        show_header=True,
        header_style="bold",
        show_lines=False,
        expand=False,
        pad_edge=False,
        box=_box(),
    )
    table.add_column("#", justify="right", no_wrap=True)
    for i, request in enumerate(scenario.requests):
        table.add_column(
            Text(f"{label(i)} {request.endpoint}", style="bold"),
            overflow="fold",
            max_width=max(30, (WIDTH - 8) // max(1, len(scenario.requests))),
        )
    conflicts = set(finding.explanation.conflicts)
    trace = execution.trace
    for position, step in enumerate(trace):
        cells: list[Any] = [""] * len(scenario.requests)
        text = step_text(step, execution.responses)
        marker = "▶ " if position in conflicts else ""
        cells[step.request] = Text(marker + text, style="bold" if marker else "")
        following = trace[position + 1] if position + 1 < len(trace) else None
        switch = following is not None and following.request != step.request and step.kind != "end"
        table.add_row(str(position + 1), *cells, end_section=switch)
    return table


def requests_table(scenario: Scenario, responses: Sequence[Response | None]) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    table.add_column(overflow="fold")
    for i, request in enumerate(scenario.requests):
        response = responses[i] if i < len(responses) else None
        gene = scenario.schedule[i]
        answer = response_text(response)
        schedule = schedule_text(gene)
        # Text, not str: rich would read "[priority 0, …]" or a JSON list as markup
        table.add_row(Text(label(i)), Text(request.describe()), Text(f"→ {answer}   [{schedule}]"))
    return table


def finding_text(finding: Finding, *, reproduce: Sequence[str] = (), width: int = WIDTH) -> str:
    """The whole report of one finding."""
    scenario, execution = finding.scenario, finding.execution
    parts: list[str] = []
    endpoints = " + ".join(finding.endpoints) or "—"
    header = f"= {finding.title} =   {finding.kind} · {endpoints}"
    if finding.exception:
        header += f" · {finding.exception}"
    if finding.flaky:
        header += f"   (FLAKY: reproduced {finding.flaky})"
    if finding.response_only:
        header += "   (responses only: the final rows match a serial order)"
    parts.append(header)
    if finding.extra.get("routes"):
        parts.append("Reached through: " + ", ".join(finding.extra["routes"]))
    for name in ("stopped", "replay"):
        if finding.extra.get(name):
            parts.append(f"Note: {finding.extra[name]}")
    parts.append("")
    if scenario.init:
        parts.append("Before them, serially: " + "; ".join(r.describe() for r in scenario.init))
    n = len(scenario.requests)
    parts.append(
        f"{n} concurrent request{'s' if n != 1 else ''}, "
        f"{context_switches(execution.trace)} context switch"
        f"{'es' if context_switches(execution.trace) != 1 else ''}:"
    )
    parts.append(render(requests_table(scenario, execution.responses), width).rstrip())
    if scenario.observers:
        observed = ", ".join(
            f"{r.describe()} → {response_text(resp)}"
            for r, resp in zip(scenario.observers, execution.observers, strict=False)
        )
        parts.append(f"Observed afterwards: {observed}")
    parts.append("")
    parts.append("Interleaving:")
    parts.append(render(interleaving(finding), width).rstrip())
    parts.append("")
    parts.append("Explanation:")
    parts += [f"  {line}" for line in finding.explanation.text().splitlines()]
    verdict = finding.verdict
    if verdict is not None and verdict.status == "violation" and finding.is_race:
        parts.append("")
        order = " → ".join(label(i) for i in verdict.order) or "(none)"
        parts.append(f"Closest serial order: {order}   ({verdict.orders_tried} tried)")
        if verdict.aborted:
            parts.append(
                "Aborted (conflict status): " + ", ".join(label(i) for i in verdict.aborted)
            )
        for difference in verdict.differences[:10]:
            parts.append(f"  - {difference.describe(label)}")
        if len(verdict.differences) > 10:
            parts.append(f"  … and {len(verdict.differences) - 10} more differences")
    if reproduce:
        parts.append("")
        parts.append("Reproduce with:")
        parts += [f"  {line}" for line in reproduce]
    return "\n".join(parts).rstrip() + "\n"


def curl_chain(
    requests: Sequence[Request],
    base_url: str = "http://127.0.0.1:5000",
    identities: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The requests as curl commands, in order (no control over interleaving).

    ``identities`` names the headers each identity sends (a login's ``Cookie``, a
    token's ``Authorization``, nothing for a visitor); their values are placeholders."""
    commands = []
    for request in requests:
        url = base_url + request.path
        if request.params:
            url += "?" + "&".join(f"{k}={v}" for k, v in request.params.items())
        command = ["curl", "-sS", "-X", request.method, url]
        for key, value in (request.headers or {}).items():
            command += ["-H", f"{key}: {value}"]
        if request.json is not None:
            command += [
                "-H",
                "Content-Type: application/json",
                "--data",
                json.dumps(request.json, ensure_ascii=False),
            ]
        for key, value in (request.form or {}).items():
            command += ["--data-urlencode", f"{key}={value}"]
        if request.identity is not None:
            command += _identity_headers(request.identity, identities)
        commands.append(" ".join(shlex.quote(part) for part in command))
    return " && ".join(commands)


def _identity_headers(name: str, identities: Mapping[str, Sequence[str]] | None) -> list[str]:
    if identities is None:  # not known here: say who, not how
        return ["-H", f"<{name}'s login cookie or headers>"]
    headers = []
    for header in identities.get(name, ()):
        what = "session" if header.lower() == "cookie" else header
        headers += ["-H", f"{header}: <{name}'s {what}>"]
    return headers


def schedule_text(gene: Gene) -> str:
    """``priority 0, yields after step 2``: one request's scheduling genes (and the
    errors injected into it, ``deadlock injected at step 4``)."""
    after = f"yields after step {', '.join(map(str, gene.yields))}" if gene.yields else "no yields"
    faults = "".join(f", {f.kind} injected at step {f.step}" for f in gene.faults)
    return f"priority {gene.priority}, {after}{faults}"


def response_text(response: Response | None, limit: int = 70) -> str:
    """``200 {"id": 1}``: status and body on one line, clipped to ``limit`` characters."""
    if response is None:
        return "not sent"
    body = response.body
    text = (
        json.dumps(body, ensure_ascii=False, sort_keys=True)
        if not isinstance(body, str)
        else " ".join(body.split())
    )
    text = f"{response.status} {_clip(text, limit)}"
    if response.error:
        text += f" ({_clip(response.error, limit)})"
    return text


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _box() -> Any:
    """A plain box whose section lines (drawn where the turn switches) are dotted."""
    from rich.box import Box

    return Box("    \n    \n ── \n    \n ┄┄ \n    \n    \n    \n")
