"""The benchmark's results as a Markdown page a person reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def markdown(results: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> str:
    lines = [
        "# Benchmark: controlled search vs free-running stress",
        "",
        f"Run {meta['started']} on {meta['machine']}; budgets: {meta['budget']}.",
        'Every number below was measured in this run. "req" counts every HTTP request '
        "sent, serial reference runs included, for both modes.",
        "",
        "## First detection (median over seeds; found = seeds that found it within budget)",
        "",
        "| target | db | controlled: found | examples | req | s | stress: found (c) "
        "| req | s | stress req ÷ controlled req | stress replays |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c, s = r["controlled"], r["stress"]
        ratio = r["request_ratio"]
        ratio_text = (
            f"{ratio['value']}×"
            if ratio.get("value") is not None
            else (f"≥ {ratio['bound']}× (not found)" if ratio.get("bound") else "—")
        )
        stress_found = f"{s['found']}/{s['seeds']} ({s['concurrency']})" if s["seeds"] else "—"
        lines.append(
            f"| {_short(r['target'])} | {r['database']} | {c['found']}/{c['seeds']} "
            f"| {_m(c, 'examples')} | {_m(c, 'requests')} | {_m(c, 'seconds')} "
            f"| {stress_found} | {_m(s, 'requests')} | {_m(s, 'seconds')} | {ratio_text} "
            f"| {s.get('replayed', '—')} |"
        )
    lines += [
        "",
        "## Minimized scenario, replay, false positives",
        "",
        "| target | db | kind | requests | context switches | replays | fixed twin: examples "
        "| false positives |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m, t = r["minimized"], r["throughput"]
        lines.append(
            f"| {_short(r['target'])} | {r['database']} | {m.get('kind', '—')} "
            f"| {m.get('requests', '—')} | {m.get('switches', '—')} | {m.get('replayed', '—')} "
            f"| {t.get('examples', '—')} | {t.get('false_positives', '—')} |"
        )
    lines += [
        "",
        "## Throughput on the fixed twins, and the floor",
        "",
        "| target | db | examples/s | ms/example | floor: 2 requests + reset (ms) "
        "| × floor | serial req/s ungated | executions/example | grants/example "
        "| blocked (db/python/model/timeouts) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        t, f = r["throughput"], r["floor"]
        if not t:
            continue
        b = t["blocked"]
        lines.append(
            f"| {_short(t['target'])} | {r['database']} | {t['examples_per_second']} "
            f"| {t['ms_per_example']} | {f.get('two_requests_and_reset_ms', '—')} "
            f"| {t.get('times_the_floor', '—')} | {f.get('serial_requests_per_second', '—')} "
            f"| {t['executions_per_example']} | {t['grants_per_example']} "
            f"| {b['db']}/{b['python']}/{b['sqlite model']}/{b['timeouts']} |"
        )
    lines += ["", "## Where the time goes (ms per example, fixed twins)", ""]
    parts: Mapping[str, float] = next(
        (r["throughput"]["ms_per_example_by_part"] for r in results if r["throughput"]), {}
    )
    if parts:
        lines.append("| target | db | " + " | ".join(parts) + " |")
        lines.append("|---|---|" + "---|" * len(parts))
        for r in results:
            t = r["throughput"]
            if t:
                values = " | ".join(str(v) for v in t["ms_per_example_by_part"].values())
                lines.append(f"| {_short(t['target'])} | {r['database']} | {values} |")
        lines.append("")
        lines.append(
            "Controlled executions and serial references include their reset, "
            "HTTP requests and reading of the final rows (the first three columns)."
        )
    notes = [
        f"- {_short(r['target'])} on {r['database']}: {n}" for r in results for n in r["notes"]
    ]
    notes += [f"- {n}" for n in meta.get("notes", [])]
    if notes:
        lines += ["", "## Notes", "", *notes]
    return "\n".join(lines) + "\n"


def _m(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name, {}).get("median") if data.get("seeds") else None
    if value is None:
        return "—"
    high = data[name].get("max")
    return f"{value:g}" + (f" (max {high:g})" if high is not None and high != value else "")


def _short(reference: str) -> str:
    return reference.removeprefix("targets.")
