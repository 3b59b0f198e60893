"""How likely two requests race, read off the steps each made alone (the survey's).

The opening (fuzzer/search/plan/openings.py) and the pairs' plan (fuzzer/search/plan/pairs.py)
rank endpoint pairs by it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fuzzer.model import Step

__all__ = ["Profile", "likelihood", "likely", "profile", "rows"]


def rows(trace: Sequence[Step]) -> set[tuple[str, str, str]]:
    """The rows a request's writes name: (table, statement, parameters) of each write, and
    of each read of a table it writes."""
    written = {w for s in trace if s.kind == "sql" and (w := s.access.write)}
    result = set()
    for step in trace:
        if step.kind != "sql":
            continue
        a = step.access
        if a.write or set(a.reads) & written:
            result.add((a.write or ",".join(sorted(a.reads)), step.text, step.params))
    return result


@dataclass(frozen=True)
class Profile:
    """What ``likelihood`` reads off one request's steps, read once per endpoint."""

    read_then_written: frozenset[str]  # tables it reads and then writes
    written: frozenset[str]
    rows: frozenset[tuple[str, str, str]]  # rows


def profile(steps: Sequence[Step]) -> Profile:
    read: set[str] = set()
    then_written: set[str] = set()
    written: set[str] = set()
    for step in steps:
        if step.kind != "sql":
            continue
        a = step.access
        if a.write:
            written.add(a.write)
            if a.write in read:
                then_written.add(a.write)
        read |= a.reads
    return Profile(frozenset(then_written), frozenset(written), frozenset(rows(steps)))


def likely(a: Profile, b: Profile, identical: bool = False) -> int:
    """``likelihood`` of two requests' profiles."""
    score = 4 * len(a.read_then_written & b.written) + 4 * len(b.read_then_written & a.written)
    if not identical and a.rows & b.rows:
        score += 2
    if a.written & b.written:
        score += 1
    return score


def likelihood(a: Sequence[Step], b: Sequence[Step], identical: bool = False) -> int:
    """How likely two requests race, from their steps alone: each table one reads and
    then writes that the other writes (check-then-act, read-modify-write) counts most,
    then the same rows under the drawn values (not counted for two ``identical``
    requests: they touch the same rows by construction, and writing the same values
    twice is often harmless), then a table both write."""
    return likely(profile(a), profile(b), identical)
