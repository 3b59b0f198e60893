"""Conflict-guided genes: yields land on the steps that touch what others write."""

from __future__ import annotations

from dataclasses import replace

from fuzzer.model import Gene, Request, Scenario, Step
from fuzzer.search.plan.schedules import conflict_points, decisions, locks, resolve


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


def commit(request: int, number: int) -> Step:
    return Step(request=request, number=number, kind="commit")


#: A forum topic page: a stamp, a counter, then a get-or-create after the second COMMIT.
FORUM = [
    Step(0, 1, "start"),
    sql(0, 2, "SELECT * FROM topics WHERE id = ?"),
    sql(0, 3, "UPDATE topics SET views=(topics.views + ?) WHERE topics.id = ?"),
    commit(0, 4),
    sql(0, 5, "SELECT * FROM topic_reads WHERE user_id = ? AND topic_id = ?"),
    sql(0, 6, "INSERT INTO topic_reads (user_id, topic_id) VALUES (?, ?)"),
    commit(0, 7),
    Step(0, 8, "end"),
]


def test_a_moment_of_decision_before_every_write_in_every_transaction() -> None:
    own = conflict_points(FORUM + [replace(s, request=1) for s in FORUM], 2)[0]
    # after the read of topics (before the counter), and after the read of topic_reads in
    # the third transaction (before the insert), not only before the first write
    assert decisions(own, FORUM) == (2, 5)


def test_a_write_with_another_write_after_it_in_its_transaction_holds_locks() -> None:
    notify = [
        Step(0, 1, "start"),
        sql(0, 2, "SELECT count(*) FROM messages WHERE recipient_id = ?"),
        sql(0, 3, "INSERT INTO messages (recipient_id) VALUES (?)"),
        sql(0, 4, "DELETE FROM notifications WHERE user_id = ?"),
        sql(0, 5, "INSERT INTO notifications (user_id, unread) VALUES (?, ?)"),
        commit(0, 6),
        sql(0, 7, "UPDATE audit SET n=? WHERE id = ?"),  # alone in its transaction
        commit(0, 8),
    ]
    own = conflict_points(notify + [replace(s, request=1) for s in notify], 2)[0]
    assert locks(own, notify) == (3, 4)  # both stop holding them before the last INSERT
