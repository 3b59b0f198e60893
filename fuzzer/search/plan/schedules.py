"""How drawn scheduling genes become a concrete schedule (DESIGN.md §4, §7).

A gene is a priority and a few small numbers. How the numbers are read is the
search strategy; the schedule a scenario carries (and a report replays) is always
concrete — the request's own step numbers after which it yields:

* ``random``: the numbers are step numbers, as drawn.
* ``conflict`` (default): the numbers pick among the request's *conflicting* steps (0 is
  the first) —
  the statements that touch a table another request of the scenario writes (or that
  write a table another one touches) and the steps just before them. They are read
  off the serial run of the same requests, which the oracle needs anyway. Yields
  then land where a switch can change the outcome, and shrinking a number moves the
  yield to an earlier conflict.
* ``pct``: probabilistic concurrency testing: distinct random priorities and d − 1
  change points drawn among all steps.

Within a request's steps, ``decisions`` are its moments of decision (after the last
conflicting read before each write: it has decided and not yet acted) and ``locks``
the points where it holds a write's locks and has another write to make (two
requests both there deadlock on what they hold).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from fuzzer.model import Fault, Gene, Scenario, Step
from fuzzer.sql import STORES, overlap, takes_locks, touch

Mode = Literal["conflict", "random", "pct"]
MODES: tuple[Mode, ...] = ("conflict", "random", "pct")


def needs_trace(mode: Mode) -> bool:
    return mode == "conflict"


def resolve(scenario: Scenario, mode: Mode, trace: Sequence[Step] = ()) -> Scenario:
    """The scenario with concrete yields (step numbers) for its drawn genes. ``trace``
    holds the requests' steps when run one at a time (request indices as in the
    scenario): a serial execution of them, or each endpoint's surveyed steps."""
    if mode != "conflict":
        return scenario
    candidates = conflict_points(trace, len(scenario.requests))
    statements = fault_points(trace, len(scenario.requests), candidates)
    return at_points(scenario, candidates, statements)


def at_points(
    scenario: Scenario,
    candidates: Mapping[int, Sequence[int]],
    statements: Mapping[int, Sequence[int]] | None = None,
) -> Scenario:
    """The scenario with concrete yields, its genes' numbers read as indices into each
    request's conflict points (``candidates``); and with ``statements`` (each request's
    fault points), its faults' numbers too (``--faults``), else its faults as they are."""
    schedule = []
    for index, gene in enumerate(scenario.schedule):
        points = candidates.get(index, ())
        faults = gene.faults
        if statements is not None:
            faults = _faults_at(gene.faults, statements.get(index, ()))
        if not points:
            schedule.append(Gene(gene.priority, (), faults))
            continue
        steps = sorted({points[k % len(points)] for k in gene.yields})
        schedule.append(Gene(gene.priority, tuple(steps), faults))
    return replace(scenario, schedule=tuple(schedule))


def fault_points(
    trace: Sequence[Step], requests: int, conflicts: Mapping[int, Sequence[int]]
) -> dict[int, tuple[int, ...]]:
    """Per request, the statements a drawn fault picks among (``--faults``): those that
    take locks (where a real deadlock, lock wait timeout or serialization failure can
    strike, execute/faults.py) and conflict with another request's first, then the
    others that take locks, then every other statement (a lost connection strikes
    anywhere)."""
    points: dict[int, tuple[int, ...]] = {}
    for i in range(requests):
        sql = [
            s for s in trace if s.request == i and s.kind == "sql" and not s.text.startswith(STORES)
        ]
        locking = [s.number for s in sql if takes_locks(s.text)]
        first = [n for n in conflicts.get(i, ()) if n in locking]
        rest = [n for n in locking if n not in first]
        points[i] = (*first, *rest, *(s.number for s in sql if s.number not in locking))
    return points


def _faults_at(faults: Sequence[Fault], points: Sequence[int]) -> tuple[Fault, ...]:
    """Drawn faults (indices into ``points``) as step numbers, one fault per statement;
    without points (no trace of the request) the index counts statements from 1."""
    placed: dict[int, Fault] = {}
    for fault in faults:
        step = points[fault.step % len(points)] if points else fault.step + 1
        placed.setdefault(step, Fault(step, fault.kind))
    return tuple(placed[k] for k in sorted(placed))


def surveyed_trace(scenario: Scenario, traces: Mapping[str, Sequence[Step]]) -> list[Step]:
    """Each request's steps as its endpoint's survey recorded them, renumbered to the
    request's index: the cheap stand-in for a serial run of the scenario."""
    return [
        replace(step, request=index)
        for index, request in enumerate(scenario.requests)
        for step in traces.get(request.endpoint, ())
    ]


def conflict_points(trace: Sequence[Step], requests: int) -> dict[int, tuple[int, ...]]:
    """Per request, the step numbers after which a yield can matter, most promising first:
    just after each step that conflicts with another request's accesses (a read that
    another request's write can make stale), then just before such steps and around
    every checkpoint and sleep (shared state the database does not see). A cache or
    Redis command conflicts by its keys: a read of a key no other request writes is
    not a conflict, whatever the keys' common prefix."""
    steps: dict[int, list[Step]] = {i: [] for i in range(requests)}
    for step in trace:
        if step.request < requests:
            steps[step.request].append(step)
    prints = [footprint(steps[i]) for i in range(requests)]
    return {
        i: points_between(prints[i], [p for j, p in enumerate(prints) if j != i])
        for i in range(requests)
    }


@dataclass(frozen=True)
class Footprint:
    """One request's steps, parsed once: what each statement touches (``sql.touch``),
    the union of it, and the steps around checkpoints and sleeps. A plan compares every
    pair of endpoints' footprints; each endpoint's is made once."""

    touched: tuple[tuple[int, frozenset[str], bool], ...]  # (step, tables/keys, writes)
    touches: frozenset[str]  # every table and key read or written
    writes: frozenset[str]
    shared: frozenset[int]  # just before and after each checkpoint and sleep
    every_key: bool = False  # a command that names no key (CLEAR): every key of a store


def footprint(steps: Sequence[Step]) -> Footprint:
    """The footprint of one request's steps (any request index)."""
    touched: list[tuple[int, frozenset[str], bool]] = []
    touches: set[str] = set()
    writes: set[str] = set()
    shared: set[int] = set()
    for step in steps:
        if step.kind in ("checkpoint", "sleep"):
            # state the database does not see: the user marked it, so it is a conflict
            shared.update({step.number, step.number - 1} - {0})
            continue
        if step.kind != "sql":
            continue
        t = touch(step.text, f"{step.database}." if step.database else "")
        tables = t.reads | t.writes
        touches |= tables
        writes |= t.writes
        touched.append((step.number, tables, bool(t.writes)))
    every_key = any(t.endswith(":*") for t in touches)
    return Footprint(
        tuple(touched), frozenset(touches), frozenset(writes), frozenset(shared), every_key
    )


def points_between(own: Footprint, others: Sequence[Footprint]) -> tuple[int, ...]:
    """The conflict points of a request (``own``) against the other requests of its
    scenario: after each step that reads what another writes or writes what another
    touches, then just before each such step and around checkpoints and sleeps."""
    others_write = frozenset().union(*(o.writes for o in others))
    others_touch = frozenset().union(*(o.touches for o in others))
    meets = overlap if own.every_key or any(o.every_key for o in others) else _meets
    after: set[int] = set()
    before: set[int] = set(own.shared)
    for number, tables, is_write in own.touched:
        if meets(tables, others_write) or (is_write and meets(tables, others_touch)):
            after.add(number)  # after the conflicting step: stale state forms here
            if number > 2:
                before.add(number - 1)  # just before it (after start: priorities do)
    return tuple(sorted(after)) + tuple(sorted(before - after))


def _meets(a: frozenset[str], b: frozenset[str]) -> bool:
    return not a.isdisjoint(b)


def from_trace(trace: Sequence[Step], requests: int) -> tuple[Gene, ...]:
    """A schedule that replays an observed order of steps as closely as the genes can:
    requests start in the order they were first seen, and each yields after every step
    that another request's step followed. Exact for two requests."""
    first_seen: dict[int, int] = {}
    yields: dict[int, list[int]] = {i: [] for i in range(requests)}
    for position, step in enumerate(trace):
        first_seen.setdefault(step.request, position)
        following = trace[position + 1] if position + 1 < len(trace) else None
        if following is not None and following.request != step.request and step.kind != "end":
            yields[step.request].append(step.number)
    rank = {r: k for k, r in enumerate(sorted(first_seen, key=first_seen.__getitem__))}
    return tuple(
        Gene(priority=rank.get(i, requests), yields=tuple(yields[i])) for i in range(requests)
    )


def decisions(own: Sequence[int], steps: Sequence[Step]) -> tuple[int, ...]:
    """A request's moments of decision: for each of its writes, the last conflicting
    read (a step in ``own``, its conflict points) after its previous write and before
    this one. Every transaction counts (a get-or-create after the second COMMIT has
    one), and so does every write, not only the first: a check-then-insert seven
    statements after a first write is decided there. Those before a write to the
    database come first, in order, then those before a write to a cache or Redis: a
    page that fills fifteen memoized values (a cache read, then a write of what it
    computed) decides fifteen times before the check that races."""
    database: list[int] = []
    stores: list[int] = []
    read: int | None = None
    for step in steps:
        if step.kind != "sql":
            continue
        if step.access.write:
            chosen = stores if step.text.startswith(STORES) else database
            if read is not None and read not in database + stores:
                chosen.append(read)
            read = None
        elif step.number in own:
            read = step.number
    return (*database, *stores)


def locks(own: Sequence[int], steps: Sequence[Step]) -> tuple[int, ...]:
    """The points where a request holds a write's locks and has another write to make in
    the same transaction (a DELETE before its INSERT): two requests that both stop there
    hold compatible locks (gap locks, a shared lock each) and deadlock on each other's
    when they go on, as the database then says (MariaDB 1213, PostgreSQL 40P01)."""
    result: list[int] = []
    pending: list[int] = []
    for step in steps:
        if step.kind in ("commit", "rollback", "end"):
            pending = []
        elif step.kind == "sql" and step.access.write:
            result += [n for n in pending if n not in result]
            pending = [step.number] if step.number in own else []
    return tuple(result)
