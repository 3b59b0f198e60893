"""Stamps: the writes a request makes before its own work, the same way in every request
(a ``before_request`` hook that stamps ``user.last_seen`` and commits). The search
leaves them out of what an endpoint writes (``routine``); explanations leave them out
of what conflicts (``shared``): a stamp is never the damage, nor the read that saw it."""

from __future__ import annotations

from collections.abc import Sequence

from fuzzer.model import Step
from fuzzer.sql import Access, shape

__all__ = ["own_row", "routine", "shared"]


def routine(
    traces: Sequence[Sequence[Step]], signed_in: Sequence[bool] | None = None
) -> frozenset[str]:
    """The stamps of the signed-in identity: the same row UPDATEd the same way by (almost)
    every endpoint before its own work. A stamp is an UPDATE of one row named by its key
    (the same statement and the same key in each), the only write of its transaction,
    followed by more SQL after that transaction; routine when at least two endpoints make
    it and at most one in ten of those that ran SQL as a signed-in identity does not
    (``signed_in``: whether each trace's request had an identity; None: all did).
    Flask-Login apps stamp ``user.last_seen`` in a ``before_request`` hook and commit, on
    every request; a yield at that stamp is far from the race. An INSERT is never
    routine, nor is a DELETE, nor a read followed by an insert (issue 19 item 5): a
    get-or-create of site settings in a context processor makes the same single-insert
    transactions on every page, and its race is there."""
    flags = list(signed_in) if signed_in is not None else [True] * len(traces)
    counts: dict[tuple[str, str], int] = {}
    with_sql = 0
    for trace, signed in zip(traces, flags, strict=True):
        if not signed:
            continue  # an anonymous request stamps nobody's row
        if any(step.kind == "sql" for step in trace):
            with_sql += 1
        for stamp in _stamps(trace):
            counts[stamp] = counts.get(stamp, 0) + 1
    return frozenset(
        text for (text, _), n in counts.items() if n >= 2 and n >= with_sql - with_sql // 10
    )


def own_row(common: frozenset[str], trace: Sequence[Step], other: Sequence[Step]) -> frozenset[str]:
    """The routine stamps that are the signed-in identity's own row: ``trace`` made as one
    identity, ``other`` the same request made as another; a stamp the other makes on
    the same row (a site-wide counter every page bumps) is no identity's stamp, and
    neither is one the other does not make."""
    mine = {s.text: _key(s) for s in trace if s.kind == "sql" and s.text in common}
    theirs = {s.text: _key(s) for s in other if s.kind == "sql" and s.text in common}
    return frozenset(t for t, key in mine.items() if t in theirs and theirs[t] != key)


def _key(step: Step) -> str:
    return repr(step.access.key)


def _stamps(trace: Sequence[Step]) -> set[tuple[str, str]]:
    """The stamps of ``trace`` (statement, the row's key): UPDATEs of one row by its key
    that are alone in their transaction, with SQL after it."""
    found: set[tuple[str, str]] = set()
    writes: list[tuple[str, str] | None] = []  # None: a write that is no stamp
    ended: list[tuple[str, str]] = []  # the single stamp of a transaction committed
    for step in trace:
        if step.kind == "sql":
            found.update(ended)  # SQL after a committed single write
            ended = []
            seen = step.access
            if seen.write:
                writes.append(_stamp(step, seen))
        elif step.kind in ("commit", "rollback"):
            if len(writes) == 1 and writes[0] is not None:
                ended = [writes[0]]
            writes = []
    return found


def _stamp(step: Step, seen: Access) -> tuple[str, str] | None:
    """A write that may be a stamp: an UPDATE whose WHERE names its row by a key."""
    if seen.verb != "UPDATE" or not shape(step.text).where:
        return None
    return (step.text, repr(seen.key))


def shared(traces: Sequence[Sequence[Step]]) -> frozenset[str]:
    """The stamps every one of ``traces`` (the requests of one example, at least two)
    made: the same statement, alone in its transaction, with SQL after it."""
    if len(traces) < 2:
        return frozenset()
    made = [{text for text, _ in _stamps(trace)} for trace in traces]
    return frozenset.intersection(*map(frozenset, made))
