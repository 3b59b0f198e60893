"""Conflict-guided genes: yields land on the steps that touch what others write."""

from __future__ import annotations

from fuzzer.model import Gene, Request, Scenario, Step
from fuzzer.schedules import conflict_points, resolve


def sql(request: int, number: int, text: str) -> Step:
    return Step(request=request, number=number, kind="sql", text=text)


TRACE = (
    Step(0, 1, "start"),
    sql(0, 2, "SELECT * FROM audit"),  # nobody else touches audit
    sql(0, 3, "SELECT * FROM users WHERE id = ?"),
    sql(0, 4, "UPDATE users SET name=? WHERE id = ?"),
    Step(0, 5, "commit"),
    Step(0, 6, "end"),
    Step(1, 1, "start"),
    sql(1, 2, "UPDATE users SET age=? WHERE id = ?"),
    Step(1, 3, "commit"),
    Step(1, 4, "end"),
    Step(2, 1, "start"),
    sql(2, 2, "SELECT * FROM products"),
    Step(2, 3, "end"),
)


def test_conflict_points_are_around_the_conflicting_statements() -> None:
    points = conflict_points(TRACE, 3)
    assert points[0] == (3, 4, 2)  # after the users statements first, then before; not audit
    assert points[1] == (2,)  # after its write (before it is the start step: priorities do)
    assert points[2] == ()  # products: no conflict with anyone


def test_genes_resolve_to_conflict_points() -> None:
    serial = TRACE
    requests = tuple(Request(f"E{i}", "GET", "/") for i in range(3))
    drawn = Scenario(requests, (Gene(0, (0, 2)), Gene(1, ()), Gene(0, (0,))))
    resolved = resolve(drawn, "conflict", serial)
    assert resolved.schedule == (Gene(0, (2, 3)), Gene(1, ()), Gene(0, ()))


def test_random_mode_keeps_step_numbers() -> None:
    requests = (Request("E", "GET", "/"),)
    drawn = Scenario(requests, (Gene(2, (3, 7)),))
    assert resolve(drawn, "random") == drawn
