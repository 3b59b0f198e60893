"""The races read from rows and responses: ``lost-update``, ``write-skew``,
``limit-overrun`` and ``stale-read`` (``duplicate-insert`` and ``concurrency-error``
live in their own modules), and the order in which they are tried."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from fuzzer.findings.context import (
    _bare,
    _Context,
    _Event,
    _first_difference,
    _is_new_key,
    _same,
    _same_row,
)
from fuzzer.findings.deletes import _double_delete
from fuzzer.findings.duplicates import _duplicate_insert
from fuzzer.findings.errors import _concurrency_error
from fuzzer.findings.explain import _describe, _json, _key_text, _short, _status, label
from fuzzer.findings.finding import Finding
from fuzzer.judge.oracle import Difference

ROWS = ("cell", "extra-row", "missing-row")


def _races(c: _Context) -> list[Finding]:
    """One finding per root cause: the rows of each table are judged on their own (a
    duplicate row and an overdraft of another table are two findings, two fixes), and
    findings of one kind are merged back into one naming every place (an order inserted
    and a stock overrun by the same check are one)."""
    tables = sorted({d.table for d in c.differences if d.where in ROWS})
    if len(tables) <= 1:
        race = _race(c)
        return [race] if race is not None else []
    by_kind: dict[str, Finding] = {}
    for table in tables:
        race = _race(
            c.narrowed([d for d in c.differences if d.where not in ROWS or d.table == table])
        )
        if race is None:
            continue
        kept = by_kind.get(race.kind)
        if kept is None:
            by_kind[race.kind] = race
        elif race.place and race.place not in kept.place.split(", "):
            by_kind[race.kind] = _with_places(kept, race)
    lost = by_kind.get("lost-update")
    overrun = by_kind.get("limit-overrun")
    if lost is not None and overrun is not None and lost.endpoints == overrun.endpoints:
        # the same endpoints lost an update and left rows no serial order makes elsewhere
        # (a history row carrying the stale total): one root cause, one finding
        by_kind["lost-update"] = _with_places(lost, overrun)
        del by_kind["limit-overrun"]
    return list(by_kind.values())


def _with_places(kept: Finding, other: Finding) -> Finding:
    places = sorted({*kept.place.split(", "), *other.place.split(", ")} - {""})
    return kept.with_(place=", ".join(places))


def _place(differences: Sequence[Difference]) -> str:
    """The tables differences are in: one stale copy merged back loses the name in one
    example and the age in another, and that is one bug."""
    return ", ".join(sorted({d.table for d in differences}))


def _race(c: _Context) -> Finding | None:
    differences = c.differences
    if not differences:
        return None  # only 5xx answers that serial runs give too: serial failures
    if _error_path(c):  # the serial run failed where this one did not: a serial failure
        return _concurrency_error(c)
    return (
        _concurrency_error(c)
        or _double_delete(c)
        or _lost_update(c)
        or _duplicate_insert(c)
        or _write_skew(c)
        or _limit_overrun(c)
        or (_stale_read(c) if differences else None)
    )


def _lost_update(c: _Context) -> Finding | None:
    """A cell holds a value a late UPDATE wrote over another request's committed one.

    The writer read the table before the victim committed its UPDATE of that column
    of that row, and after the commit set the column to a value it computed (a
    parameter, not an expression like ``stock - 1`` that builds on the row as it is
    then). The overwrite whose value is the final one is the preferred explanation;
    if a later request built on the damaged value, the first overwrite is named."""
    cells = [d for d in c.differences if d.where == "cell" and not _is_new_key(d.key)]
    for exact in (True, False):
        for cell in cells:
            found = _overwrite(c, cell, exact)
            if found is not None:
                return _lost_update_finding(c, cell, *found)
    return None


def _overwrite(
    c: _Context, cell: Difference, exact: bool
) -> tuple[int, int, int, _Event, _Event, _Event] | None:
    """(victim, the commit that published its write, writer, the writer's read, the
    victim's write, the overwrite). A write counts from the commit that published it,
    and an overwrite needs a commit of its own after it."""
    bare = _bare(cell.table)
    for victim in sorted(c.commits, key=c.commits.__getitem__):
        for lost in c.of(victim):
            visible = c.visible(lost)
            if not (
                visible is not None
                and lost.access.verb == "UPDATE"
                and lost.access.write == bare
                and lost.step.rowcount != 0
                and _same_row(lost.access.key, cell.key)
                and (not lost.access.assigned or cell.column in lost.access.assigned)
            ):
                continue
            for writer in sorted(c.commits):
                if writer == victim:
                    continue
                read = next(
                    (
                        e
                        for e in c.of(writer)
                        if bare in e.access.reads and c.saw_before(e, visible)
                    ),
                    None,
                )
                if read is None:
                    continue
                for e in c.of(writer):
                    sets = dict(e.access.sets)
                    if (
                        e.access.verb == "UPDATE"
                        and e.access.write == bare
                        and c.took_effect_after(e, visible, victim)
                        and c.visible(e) is not None
                        and _same_row(e.access.key, cell.key)
                        and cell.column in sets
                        and (not exact or _same(sets[cell.column], cell.actual))
                        and not _kept(lost, e, cell)
                    ):
                        return victim, visible, writer, read, lost, e
    return None


def _kept(lost: _Event, wrote: _Event, cell: Difference) -> bool:
    """Whether the victim's value is still there: it wrote the final value itself, and
    the overwrite is not known to hit its row (R2 set 0 and it ends as 0: not lost). A
    counter both set to the same stale value from one row is lost (its increment is)."""
    mine = dict(lost.access.sets)
    if cell.column not in mine or not _same(mine[cell.column], cell.actual):
        return False
    return not (
        wrote.access.key is not None
        and lost.access.key is not None
        and wrote.access.key == lost.access.key
    )


def _lost_update_finding(
    c: _Context,
    cell: Difference,
    victim: int,
    victim_commit: int,
    writer: int,
    read: _Event,
    lost: _Event,
    wrote: _Event,
) -> Finding:
    bare = _bare(cell.table)
    where = f"{cell.table}[{_key_text(cell.key)}].{cell.column}"
    value = dict(wrote.access.sets)[cell.column]
    facts = [
        f"{label(writer)} read {bare} {c.when(read, victim_commit)}, "
        f"before {label(victim)} committed at step {victim_commit + 1};",
        f"{label(victim)} had written {cell.column} at {c.step(lost.position)};",
        f"{label(writer)} wrote {bare} at {c.step(wrote.position)}, "
        + (
            "after that commit, "
            if wrote.position > victim_commit
            else f"which waited for {label(victim)}'s lock until that commit, "
        )
        + f"setting {cell.column} = {_json(value)} from its stale read;",
        f"so {label(victim)}'s update of {where} is lost"
        + (f" (it ends as {_json(cell.actual)})." if _same(value, cell.actual) else "."),
    ]
    however = (
        f"However, no serial order loses an update: in the closest one {where} ends as "
        f"{_json(cell.expected)} ({c.closest()}): a contradiction!"
    )
    return c.finding(
        "lost-update",
        {victim, writer},
        facts,
        however,
        place=cell.table,
        difference=cell,
        conflicts=(read.position, lost.position, victim_commit, wrote.position),
    )


def _write_skew(c: _Context) -> Finding | None:
    """Two committed requests that changed different rows, each after reading (before
    the other committed) a set of rows that included the one the other changed, and a
    final row that no serial order reaches is one of theirs."""
    table_diffs = [d for d in c.differences if d.where in ("cell", "extra-row", "missing-row")]
    if not table_diffs:
        return None
    writes: dict[int, list[_Event]] = {}
    for e in c.events:
        commit = c.commits.get(e.request)
        if commit is None or e.position > commit or e.step.error:
            continue
        if e.access.verb in ("UPDATE", "DELETE") and e.access.write and e.step.rowcount != 0:
            writes.setdefault(e.request, []).append(e)
    for a in sorted(writes):
        for b in sorted(writes):
            if b <= a or not _disjoint(writes[a], writes[b]):
                continue
            if not any(_concerns(d, writes[a] + writes[b]) for d in table_diffs):
                continue  # their rows are fine: the anomaly is somewhere else
            reads = []
            for x, y in ((a, b), (b, a)):
                read = next(
                    (
                        (r, w)
                        for r in c.of(x)
                        if not r.access.write and c.saw_before(r, c.commits[y])
                        for w in writes[y]
                        if w.access.write in r.access.reads and _covers(r, w)
                    ),
                    None,
                )
                if read is None:
                    break
                reads.append((x, y, read[0], read[1]))
            else:
                facts = [
                    f"{label(x)} read {w.access.write} {c.when(r, c.commits[y])}, a read that "
                    f"includes the row {label(y)} changes, before {label(y)} committed that "
                    f"change at step {c.commits[y] + 1};"
                    for x, y, r, w in reads
                ]
                facts.append(
                    f"{label(a)} changed {_rows_text(writes[a])} and {label(b)} changed "
                    f"{_rows_text(writes[b])}: different rows, so neither overwrote the other, "
                    f"yet each decided on a state without the other's change."
                )
                first = next(d for d in table_diffs if _concerns(d, writes[a] + writes[b]))
                however = (
                    f"However, no serial order reaches these rows: {_describe(first)} "
                    f"({c.closest()}): a contradiction!"
                )
                return c.finding(
                    "write-skew",
                    (a, b),
                    facts,
                    however,
                    place=_place(table_diffs),
                    difference=first,
                    conflicts=[r.position for _, _, r, _ in reads]
                    + [w.position for _, _, _, w in reads]
                    + [c.commits[a], c.commits[b]],
                )
    return None


def _disjoint(first: Sequence[_Event], second: Sequence[_Event]) -> bool:
    """Whether two requests' UPDATE/DELETEs provably changed different rows."""
    for x in first:
        for y in second:
            if x.access.write != y.access.write:
                continue
            if x.access.key is None or y.access.key is None:
                return False  # rows unknown: cannot tell them apart
            if x.access.key == y.access.key:
                return False
    return True


def _covers(read: _Event, write: _Event) -> bool:
    """Whether a read's WHERE may include the row a write changed: they do not pin a
    common column to different values."""
    return not _differ(read.access.filters, write.access.filters)


def _differ(a: Sequence[tuple[str, Any]], b: Sequence[tuple[str, Any]]) -> bool:
    mine = dict(a)
    return any(column in mine and not _same(mine[column], value) for column, value in b)


def _concerns(difference: Difference, writes: Sequence[_Event]) -> bool:
    """Whether a table difference is about a row one of these writes changed."""
    bare = _bare(difference.table)
    for w in writes:
        if w.access.write != bare:
            continue
        if difference.where != "cell" or _same_row(w.access.key, difference.key):
            return True
    return False


def _limit_overrun(c: _Context) -> Finding | None:
    """Final rows no serial order reaches, written by requests that each passed a check
    made before the others committed."""
    diffs = [d for d in c.differences if d.where in ("cell", "extra-row", "missing-row")]
    if not diffs:
        return None
    lower = _lower_counter(c, diffs)
    if lower is not None:
        return lower
    tables = {_bare(d.table) for d in diffs}
    writers = sorted(w for w in c.commits if c.written(w) & tables)
    responders = {d.request for d in c.differences if d.where == "response"}
    involved = writers or sorted(r for r in responders if r is not None)
    facts: list[str] = []
    cited: list[int] = []
    for r in writers:
        for w in writers:
            if w == r:
                continue
            fact, positions = c.around(r, w, c.written(w) & tables)
            if fact and positions and positions[0] < c.commits[w]:
                facts.append(fact)
                cited += positions
    facts += _store_facts(c, writers, cited)
    for d in c.differences:
        if (
            d.where == "response"
            and d.request in writers
            and _status(d.actual) != _status(d.expected)
        ):
            facts.append(
                f"{label(d.request or 0)} went through ({_status(d.actual)}) where, in the "
                f"closest serial order, it is refused ({_status(d.expected)});"
            )
    facts.append("so every request's check passed, and together they went past the limit.")
    damage = _damage(diffs)
    however = (
        f"However, no serial order lets them all through: "
        f"{'; and '.join(_describe(d) for d in damage)} ({c.closest()}): a contradiction!"
    )
    return c.finding(
        "limit-overrun",
        involved,
        facts,
        however,
        difference=damage[0],
        conflicts=cited,
        place=_place(diffs),
    )


def _damage(diffs: Sequence[Difference]) -> list[Difference]:
    """What an overrun did, as a serial order would not: the first row none makes (the
    extra order), and the first cell of another table that differs (the stock count);
    else the first difference."""
    extra = next((d for d in diffs if d.where == "extra-row"), None)
    cell = next(
        (d for d in diffs if d.where == "cell" and (extra is None or d.table != extra.table)),
        None,
    )
    return [d for d in (extra, cell) if d is not None] or [diffs[0]]


def _store_facts(c: _Context, requests: Sequence[int], cited: list[int]) -> list[str]:
    """A cache or Redis key (caches.py) that one request read before another wrote it, and
    wrote itself after that: such a write is seen at once, no COMMIT publishes it."""
    facts = []
    for r, w in itertools.permutations(requests, 2):
        own = [e for e in c.of(r) if e.step.connection == 0]  # its cache and Redis commands
        for write in (e for e in c.of(w) if e.step.connection == 0 and e.access.write):
            table = write.access.write
            read = [e for e in own if e.position < write.position and table in e.access.reads]
            again = [e for e in own if e.position > write.position and e.access.write == table]
            if read and again:
                facts.append(
                    f"{label(r)} read {table} at {c.step(read[-1].position)}, before {label(w)} "
                    f"wrote it at step {write.position + 1}, and wrote it at step "
                    f"{again[0].position + 1}, after that;"
                )
                cited += [read[-1].position, write.position, again[0].position]
                break
    return facts


def _error_path(c: _Context) -> bool:
    """Whether the closest serial run took an error path this execution did not (a 5xx
    there, an answer here): its rows differ because of that error, which is reported as
    a serial failure, not as a race."""
    reference = c.verdict.reference
    if reference is None:
        return False
    return any(
        expected is not None
        and expected.status >= 500
        and actual is not None
        and actual.status < 500
        for actual, expected in zip(c.execution.responses, reference.responses, strict=False)
    )


def _lower_counter(c: _Context, diffs: Sequence[Difference]) -> Finding | None:
    """A counter that ends lower than every serial order, set by requests that each wrote
    a value they computed (``SET n = ?``, not ``n = n + 1``): increments were lost, a
    lost update, never "past the limit"."""
    if not diffs or any(d.where != "cell" for d in diffs):
        return None
    if not all(_number(d.actual) and _number(d.expected) and d.actual < d.expected for d in diffs):
        return None
    cell = diffs[0]
    bare = _bare(cell.table)
    setters = [
        e
        for e in c.events
        if e.access.verb == "UPDATE"
        and e.access.write == bare
        and e.request in c.commits
        and cell.column in e.access.assigned
        and _same_row(e.access.key, cell.key)
        and not e.step.error
    ]
    if len({e.request for e in setters}) < 2 or any(
        cell.column not in dict(e.access.sets) for e in setters
    ):
        return None
    where = f"{cell.table}[{_key_text(cell.key)}].{cell.column}"
    facts = [
        f"{label(e.request)} set {cell.column} = {_json(dict(e.access.sets)[cell.column])} "
        f"at {c.step(e.position)}, a value it computed from what it had read;"
        for e in setters
    ]
    facts.append(
        f"so {where} ends as {_json(cell.actual)}, lower than any serial order leaves it: "
        f"a request's update was lost."
    )
    however = (
        f"However, no serial order loses an update: in the closest one {where} ends as "
        f"{_json(cell.expected)} ({c.closest()}): a contradiction!"
    )
    return c.finding(
        "lost-update",
        sorted({e.request for e in setters}),
        facts,
        however,
        difference=cell,
        conflicts=[e.position for e in setters],
        place=cell.table,
    )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _stale_read(c: _Context) -> Finding:
    """Only responses differ: an answer no serial order gives."""
    stale = _first_difference(c, ("response",)) or c.differences[0]
    if stale.where == "response" and stale.request is not None:
        readers = [stale.request]
    else:  # an observer: any request may have caused it
        readers = list(range(len(c.scenario.requests)))
    facts: list[str] = []
    cited: list[int] = []
    involved = set(readers)
    for reader in readers:
        read = {t for e in c.of(reader) for t in e.access.reads}
        # what the writers wrote besides the stamps every request makes (a last_seen
        # stamp is read by every request and is not what made the answer stale)
        stamps = not any(
            c.written(w, stamps=False) & read for w in _overlapping_writers(c, reader, read)
        )
        for w in _overlapping_writers(c, reader, read, stamps):
            fact, positions = c.around(reader, w, c.written(w, stamps) & read)
            involved.add(w)
            if fact:
                facts.append(fact)
                cited += positions
    if stale.where == "response":
        who = label(stale.request or 0)
    else:  # the observer by its request: "the observer GET /post/1"
        index = stale.request or 0
        observers = c.scenario.observers
        who = "the observer " + (
            observers[index].describe() if index < len(observers) else str(index + 1)
        )
    facts.append(f"{who} answered {_short(stale.actual)}.")
    however = (
        f"However, no serial order gives that answer; in the closest one it is "
        f"{_short(stale.expected)} ({c.closest()}): a contradiction!"
    )
    return c.finding("stale-read", involved, facts, however, difference=stale, conflicts=cited)


def _overlapping_writers(
    c: _Context, reader: int, tables: set[str], stamps: bool = True
) -> list[int]:
    """Requests that wrote one of ``tables`` and committed while ``reader`` was running
    (without ``stamps``: by a statement other than a stamp every request made)."""
    own = c.of(reader)
    if not own:
        return []
    start, end = own[0].position, own[-1].position
    result = []
    for w in sorted(c.commits):
        if w == reader or not c.written(w, stamps) & tables:
            continue
        commits = [e.position for e in c.of(w) if e.access.verb == "COMMIT"]
        if any(start <= p <= end for p in commits) or (
            c.of(w)[0].position <= start and c.commits[w] >= start
        ):
            result.append(w)
    return result


def _rows_text(writes: Sequence[_Event]) -> str:
    rows = {(w.access.write, tuple(w.access.key or ())) for w in writes}
    return ", ".join(sorted(f"{t}[{', '.join(str(k) for k in key)}]" for t, key in rows))
