"""``duplicate-insert``: a row the app keeps unique, inserted twice."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fuzzer.findings.context import _bare, _Context, _Event, _is_new_key, _same
from fuzzer.findings.explain import _json, _short, label
from fuzzer.findings.finding import Finding
from fuzzer.findings.relations import copies as _copies


def _duplicate_insert(c: _Context) -> Finding | None:
    """A row the app keeps unique, inserted twice by requests that each looked for it
    first and did not see the other's insert.

    "The same row" is what the lookups asked for (``WHERE client_token = ?``: two rows
    with that token), or else two rows equal but for their generated key. "Kept
    unique" means no serial run of the same requests holds two such rows; if one does,
    the app allows repeats and too many of them is a limit overrun instead."""
    serial = c.verdict.consulted or (
        (c.verdict.reference,) if c.verdict.reference is not None else ()
    )
    for diff in (d for d in c.differences if d.where == "extra-row"):
        if not isinstance(diff.actual, dict):
            continue
        bare = _bare(diff.table)
        columns = list(diff.actual)
        final = c.execution.tables.get(diff.table, ())
        inserts = [
            e
            for e in c.events
            if e.access.verb in ("INSERT", "REPLACE")
            and e.access.write == bare
            and e.request in c.commits
            and e.position < c.commits[e.request]
            and not e.step.error
        ]
        lookups: dict[int, _Event] = {}
        for i in sorted({e.request for e in inserts}):
            first = min(e.position for e in inserts if e.request == i)
            looked = [
                e
                for e in c.of(i)
                if bare in e.access.reads and not e.access.write and e.position < first
            ]
            if looked:
                lookups[i] = looked[-1]
        groups: dict[frozenset[tuple[str, Any]], list[int]] = {}
        for i, lookup in lookups.items():
            wanted = frozenset((k, _hashable(v)) for k, v in lookup.access.filters)
            if wanted and _matches(diff.actual, wanted):
                groups.setdefault(wanted, []).append(i)
        if _copies(diff.actual, final) >= 2:  # equal rows: whatever the lookups said
            groups.setdefault(frozenset(), []).extend(
                i for i in lookups if i not in groups.get(frozenset(), [])
            )
        for wanted, members in groups.items():
            if len(members) < 2:
                continue
            if wanted:
                here = _count_matching(wanted, final, columns)
                serially = max(
                    (
                        _count_matching(wanted, r.tables.get(diff.table, ()), columns)
                        for r in serial
                    ),
                    default=0,
                )
            else:
                here = _copies(diff.actual, final)
                serially = max(
                    (_copies(diff.actual, r.tables.get(diff.table, ())) for r in serial), default=0
                )
            if here < 2 or serially >= 2:
                continue  # no repeat here, or the app allows repeats
            blind = [
                (i, lookups[i].position, j)
                for i in members
                for j in members
                if j != i and c.saw_before(lookups[i], c.commits[j])
            ]
            inserters = sorted({i for i, _, _ in blind})
            if len(inserters) < 2:
                continue
            checks = [next(b for b in blind if b[0] == i) for i in inserters]
            what = (
                " and ".join(f"{k} = {_json(v)}" for k, v in sorted(wanted))
                if wanted
                else _short(_without_new_keys(diff.actual))
            )
            facts = [
                f"{label(i)} looked for it in {bare} {c.when(lookups[i], c.commits[j])}, "
                f"before {label(j)} committed its insert at step {c.commits[j] + 1};"
                for i, p, j in checks
            ]
            facts.append(
                f"so each of {', '.join(label(i) for i in inserters)} found nothing and "
                f"inserted a row with {what} into {bare}."
            )
            however = (
                f"However, every serial order inserts it once (the later request finds the "
                f"earlier one's row), and here {bare} holds {here} ({c.closest()}): "
                f"a contradiction!"
            )
            return c.finding(
                "duplicate-insert",
                inserters,
                facts,
                however,
                place=diff.table,
                difference=diff,
                conflicts=[p for _, p, _ in checks]
                + [e.position for e in inserts if e.request in inserters],
            )
    return None


def _hashable(value: Any) -> Any:
    return (
        json.dumps(value, sort_keys=True, default=str) if isinstance(value, list | dict) else value
    )


def _matches(row: dict[str, Any], wanted: frozenset[tuple[str, Any]]) -> bool:
    return all(column in row and _same(row[column], value) for column, value in wanted)


def _count_matching(
    wanted: frozenset[tuple[str, Any]], rows: Sequence[Sequence[Any]], columns: list[str]
) -> int:
    """How many raw rows (in ``columns`` order) have every (column, value) wanted."""
    if any(column not in columns for column, _ in wanted):
        return 0
    positions = [(columns.index(column), value) for column, value in wanted]
    return sum(
        1
        for row in rows
        if len(row) == len(columns) and all(_same(row[p], v) for p, v in positions)
    )


def _without_new_keys(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not _is_new_key(v)}
