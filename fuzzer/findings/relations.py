"""How a finding's requests relate: the same user or different ones, the same thing done
twice or different things.

A double click (one user, two requests) and two users racing for one resource are
different bugs with different fixes, though they may share kind and endpoints: the
fingerprint keeps them apart (fuzzer/findings/finding.py), so shrinking toward the first
identity cannot trade an oversell between two users for one user's double submit.

So are one hint unlocked twice (the extra rows are copies of rows the other request
made: a double unlock, fixed by a unique unlock) and two different hints unlocked past
the score (the extra rows are different rows: an overdraft, fixed by a locked check),
though both go past the limit through one endpoint and one table: ``repeated`` tells
them apart, so one is never hidden behind the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fuzzer.db import Rows
from fuzzer.judge.verdict import Difference, is_new_label
from fuzzer.model import Request

__all__ = ["copies", "relation", "repeated"]


def relation(requests: Sequence[Request], involved: Iterable[int]) -> str:
    """``"same"`` when the involved requests all act as one declared identity,
    ``"different"`` when they act as several, ``""`` when it cannot matter: fewer than
    two requests involved, or a request acting as nobody (a target without identities)."""
    chosen = [requests[i] for i in sorted(set(involved)) if 0 <= i < len(requests)]
    if len(chosen) < 2 or any(r.identity is None for r in chosen):
        return ""
    return "same" if len({r.identity for r in chosen}) == 1 else "different"


def repeated(differences: Iterable[Difference], tables: Mapping[str, Rows], place: str) -> str:
    """``"repeat"`` when every row no serial order makes, in the tables of ``place``, is
    a copy of another final row (generated keys aside): the same thing done twice.
    ``"distinct"`` when one is not: different things that together went too far. ``""``
    when no row is extra (only cells differ: nothing tells them apart)."""
    where = set(place.split(", "))
    extra = [d for d in differences if d.where == "extra-row" and d.table in where and d.actual]
    if not extra:
        return ""
    if all(
        isinstance(d.actual, dict) and copies(d.actual, tables.get(d.table, ())) >= 2 for d in extra
    ):
        return "repeat"
    return "distinct"


def copies(row: Mapping[str, Any], rows: Sequence[Sequence[Any]]) -> int:
    """How many of ``rows`` (raw, in column order) equal ``row`` (normalized, by column),
    generated keys (``NewKey``, the oracle's names for them) aside."""
    values = list(row.values())
    keep = [i for i, v in enumerate(values) if not _generated(v)]
    return sum(
        1
        for other in rows
        if len(other) == len(values) and all(_same(other[i], values[i]) for i in keep)
    )


def _generated(value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(is_new_label(v) for v in values)


def _same(a: Any, b: Any) -> bool:
    return a == b or str(a) == str(b)
