"""A double delete: one row deleted by two requests, the effects of deleting it made twice.

Whatever the order of the statements (both checks before both DELETEs, a check after the
other's DELETE but before its commit, a counter written over the other's), it is one
bug and one kind: a ``limit-overrun``, since only one of the requests may delete the row
in any serial order, and the other went on as if it had."""

from __future__ import annotations

from collections.abc import Sequence

from fuzzer.findings.context import _bare, _Context, _Event
from fuzzer.findings.explain import _describe, label
from fuzzer.findings.finding import Finding
from fuzzer.judge.oracle import Difference

ROWS = ("cell", "extra-row", "missing-row")


def _double_delete(c: _Context) -> Finding | None:
    """Two committed requests deleted the same row (same table, same WHERE parameters);
    one of the DELETEs matched no row, its request committed other writes all the same,
    and a final row no serial order reaches is in a table that request wrote."""
    diffs = [d for d in c.differences if d.where in ROWS]
    if not diffs:
        return None
    for (table, key), deletes in _deletes_by_row(c).items():
        if len({e.request for e in deletes}) < 2:
            continue
        done = next((e for e in deletes if e.step.rowcount != 0), None)
        missed = next(
            (e for e in deletes if e.step.rowcount == 0 and done and e.request != done.request),
            None,
        )
        if done is None or missed is None:
            continue
        effects = c.written(missed.request) - {table}
        damaged = [d for d in diffs if _bare(d.table) in effects]
        if damaged:
            return _finding(c, table, key, done, missed, damaged)
    return None


def _deletes_by_row(c: _Context) -> dict[tuple[str, tuple[object, ...]], list[_Event]]:
    """The committed DELETEs of a known row, by (table, WHERE parameters)."""
    rows: dict[tuple[str, tuple[object, ...]], list[_Event]] = {}
    for e in c.events:
        commit = c.commits.get(e.request)
        if (
            e.access.verb != "DELETE"
            or not e.access.write
            or not e.access.key
            or commit is None
            or e.position > commit
            or e.step.error
        ):
            continue
        try:
            row = (e.access.write, tuple(e.access.key))
            hash(row)
        except TypeError:  # an executemany's parameters: not one row
            continue
        rows.setdefault(row, []).append(e)
    return rows


def _finding(
    c: _Context,
    table: str,
    key: tuple[object, ...],
    done: _Event,
    missed: _Event,
    damaged: Sequence[Difference],
) -> Finding:
    a, b = done.request, missed.request
    effects = sorted({_bare(d.table) for d in damaged})
    row = f"{table}[{', '.join(str(k) for k in key)}]"
    facts = [
        f"{label(a)} and {label(b)} each found {row} and deleted it: {label(a)} at "
        f"{c.step(done.position)}, {label(b)} at {c.step(missed.position)}, "
        f"where it matched no row, the row being gone already;",
        f"{label(b)} went on as if it had deleted it, writing {', '.join(effects)}, and "
        f"committed at step {c.commits[b] + 1};",
        "so every request's check passed, and together they deleted one row twice, "
        "with its effects: past the limit of one.",
    ]
    however = (
        f"However, in any serial order only one of them deletes {row}: "
        f"{'; and '.join(_describe(d) for d in damaged[:2])} ({c.closest()}): "
        "a contradiction!"
    )
    return c.finding(
        "limit-overrun",
        (a, b),
        facts,
        however,
        difference=damaged[0],
        conflicts=(done.position, missed.position, c.commits[a], c.commits[b]),
        place=", ".join(sorted({d.table for d in damaged})),
    )
