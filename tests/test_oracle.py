"""The oracle's semantics on hand-built executions: what is serializable, and what is not."""

from __future__ import annotations

from collections.abc import Mapping

from fuzzer.db import TableInfo
from fuzzer.judge.oracle import Normalizer, Oracle
from fuzzer.model import Execution, Gene, Request, Response, Scenario, Step

USERS = TableInfo("users", ("id", "name", "age"), ("id",), "id", ())
JOBS = TableInfo("jobs", ("id", "token", "user_id"), ("id",), "id", (("user_id", "users", "id"),))
INITIAL = {"users": ((1, "ann", 30),), "jobs": ()}


def scenario(n: int = 2) -> Scenario:
    requests = tuple(Request(f"E{i}", "POST", f"/e{i}") for i in range(n))
    return Scenario(requests=requests, schedule=tuple(Gene() for _ in range(n)))


def execution(
    responses: list[tuple[int, object] | None],
    tables: Mapping[str, object],
    commits: tuple[int, ...] = (),
    trace: tuple[Step, ...] | None = None,
) -> Execution:
    """An execution whose requests interleaved: all started, then committed in
    ``commits`` order, then ended."""
    if trace is None:
        ran = [i for i, r in enumerate(responses) if r is not None]
        trace = (
            tuple(Step(request=i, number=1, kind="start") for i in ran)
            + tuple(Step(request=i, number=2, kind="commit") for i in commits)
            + tuple(Step(request=i, number=3, kind="end") for i in ran)
        )
    return Execution(
        mode="controlled",
        responses=tuple(None if r is None else Response(r[0], r[1]) for r in responses),
        tables={"users": INITIAL["users"], "jobs": (), **tables},  # type: ignore[dict-item]
        trace=trace,
    )


class Serial:
    """Serial references from a table of outcomes per order (runs counted)."""

    def __init__(self, outcomes: Mapping[tuple[int, ...], Execution]) -> None:
        self.outcomes = dict(outcomes)
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, scenario: Scenario, order: tuple[int, ...]) -> Execution:
        self.calls.append(order)
        return self.outcomes[order]


def oracle(serial: Serial, **kwargs: object) -> Oracle:
    return Oracle(Normalizer({"users": USERS, "jobs": JOBS}, INITIAL), serial, **kwargs)  # type: ignore[arg-type]


def test_the_commit_order_is_tried_first_and_matches() -> None:
    serial = Serial({(1, 0): execution([(200, "a"), (200, "b")], {"users": ((1, "bob", 31),)})})
    verdict = oracle(serial).judge(
        scenario(),
        execution([(200, "a"), (200, "b")], {"users": ((1, "bob", 31),)}, commits=(1, 0)),
    )
    assert verdict.status == "serializable"
    assert verdict.order == (1, 0)
    assert serial.calls == [(1, 0)]


def test_another_order_can_explain_it() -> None:
    serial = Serial(
        {
            (0, 1): execution([(200, 1), (200, 2)], {"users": ((1, "ann", 32),)}),
            (1, 0): execution([(200, 2), (200, 1)], {"users": ((1, "ann", 32),)}),
        }
    )
    verdict = oracle(serial).judge(
        scenario(), execution([(200, 2), (200, 1)], {"users": ((1, "ann", 32),)}, commits=(0, 1))
    )
    assert verdict.status == "serializable"
    assert verdict.order == (1, 0)


def test_no_order_explains_a_lost_write() -> None:
    both = {"users": ((1, "bob", 31),)}
    serial = Serial(
        {
            (0, 1): execution([(200, 0), (200, 0)], both),
            (1, 0): execution([(200, 0), (200, 0)], both),
        }
    )
    verdict = oracle(serial).judge(
        scenario(), execution([(200, 0), (200, 0)], {"users": ((1, "ann", 31),)}, commits=(0, 1))
    )
    assert verdict.status == "violation"
    assert [(d.where, d.table, d.column, d.actual, d.expected) for d in verdict.differences] == [
        ("cell", "users", "name", "ann", "bob")
    ]
    assert len(serial.calls) == 5  # both orders, and the closest one 3 times more (does it vary?)


def test_references_are_memoized_by_the_requests() -> None:
    serial = Serial({(0, 1): execution([(200, 0), (200, 0)], {})})
    judge = oracle(serial)
    for _ in range(5):
        assert (
            judge.judge(scenario(), execution([(200, 0), (200, 0)], {}, commits=(0, 1))).status
            == "serializable"
        )
    assert serial.calls == [(0, 1)]
    assert judge.stats.memo_hits == 4


def test_an_aborted_request_must_leave_no_effect() -> None:
    serial = Serial(
        {
            (0,): execution([(200, "ok"), None], {"users": ((1, "bob", 30),)}),
            # taken as committed (a 409 may be what it answers serially too): not here
            (0, 1): execution([(200, "ok"), (200, "ok")], {"users": ((1, "bob", 31),)}),
            (1, 0): execution([(200, "ok"), (200, "ok")], {"users": ((1, "bob", 31),)}),
        }
    )
    clean = oracle(serial).judge(
        scenario(), execution([(200, "ok"), (409, "conflict")], {"users": ((1, "bob", 30),)})
    )
    assert clean.status == "serializable"
    assert clean.aborted == (1,)
    dirty = oracle(serial).judge(
        scenario(), execution([(200, "ok"), (409, "conflict")], {"users": ((1, "bob", 99),)})
    )
    assert dirty.status == "violation"


def test_generated_keys_are_compared_up_to_renaming() -> None:
    # serially request 0 inserts first and gets id 1; here the ids came out the other way
    serial = Serial(
        {
            (0, 1): execution(
                [(201, {"id": 1}), (201, {"id": 2})], {"jobs": ((1, "t0", 1), (2, "t1", 1))}
            ),
        }
    )
    swapped = execution(
        [(201, {"id": 2}), (201, {"id": 1})], {"jobs": ((1, "t1", 1), (2, "t0", 1))}, commits=(0, 1)
    )
    verdict = oracle(serial).judge(scenario(), swapped)
    assert verdict.status == "serializable"


def test_a_key_new_in_two_tables_at_once_may_name_either_row() -> None:
    # R1 adds the user bob and the job t1. Serially bob and t1 both get 2, so R1's
    # "id": 2 could name either; here the jobs came out the other way round.
    bob = ((1, "ann", 30), (2, "bob", 20))
    r0_first = execution(
        [(201, {"id": 1}), (201, {"id": 2})],
        {"users": bob, "jobs": ((1, "t0", 1), (2, "t1", 2))},
    )
    r1_first = execution(
        [(201, {"id": 2}), (201, {"id": 1})],
        {"users": bob, "jobs": ((1, "t1", 2), (2, "t0", 1))},
    )
    swapped = execution(
        [(201, {"id": 2}), (201, {"id": 1})],
        {"users": bob, "jobs": ((1, "t1", 2), (2, "t0", 1))},
        commits=(0, 1),
    )
    only_r0_first = Serial({(0, 1): r0_first})  # explained by the commit order alone
    assert oracle(only_r0_first).judge(scenario(), swapped).status == "serializable"
    # but a key that can name none of the rows a serial run's key names still differs:
    # here R0 answers with t1's id
    wrong = execution(
        [(201, {"id": 1}), (201, {"id": 1})],
        {"users": bob, "jobs": ((1, "t1", 2), (2, "t0", 1))},
        commits=(0, 1),
    )
    both = Serial({(0, 1): r0_first, (1, 0): r1_first})
    assert oracle(both).judge(scenario(), wrong).status == "violation"


def test_a_duplicate_row_is_an_extra_row() -> None:
    one = execution([(201, {"id": 1}), (200, {"id": 1})], {"jobs": ((1, "t", 1),)})
    serial = Serial({(0, 1): one, (1, 0): one})
    two = execution(
        [(201, {"id": 1}), (201, {"id": 2})], {"jobs": ((1, "t", 1), (2, "t", 1))}, commits=(0, 1)
    )
    verdict = oracle(serial).judge(scenario(), two)
    assert verdict.status == "violation"
    assert any(d.where == "extra-row" and d.table == "jobs" for d in verdict.differences)


def test_a_reference_that_varies_in_its_status_gives_unknown_naming_it() -> None:
    outcomes = iter(
        [
            execution([(200, "x1"), (200, "y")], {}),
            execution([(200, "y"), (200, "x2")], {}),
            execution([(500, "x3"), (200, "y")], {}),
        ]
    )

    class Drifting(Serial):
        def __call__(self, scenario: Scenario, order: tuple[int, ...]) -> Execution:
            self.calls.append(order)
            return next(outcomes)

    verdict = oracle(Drifting({})).judge(
        scenario(), execution([(200, "x0"), (200, "y")], {}, commits=(0, 1))
    )
    assert verdict.status == "unknown"
    assert verdict.judged == "not"
    assert "E0 answered 200 once and 500 once" in verdict.reason.split(";")[0]


def test_a_reference_whose_text_varies_is_judged_on_the_rest() -> None:
    outcomes = iter(
        [
            execution([(200, "x1"), (200, "y")], {}),
            execution([(200, "y"), (200, "x2")], {}),
            execution([(200, "x3"), (200, "y")], {}),
        ]
    )

    class Drifting(Serial):
        def __call__(self, scenario: Scenario, order: tuple[int, ...]) -> Execution:
            self.calls.append(order)
            return next(outcomes)

    verdict = oracle(Drifting({})).judge(
        scenario(), execution([(200, "x0"), (200, "y")], {}, commits=(0, 1))
    )
    assert verdict.status == "serializable"
    assert verdict.judged == "partly"
    assert verdict.masked == ("E0: spans of its page",)


def test_ignored_columns_and_fields_do_not_count() -> None:
    serial = Serial(
        {
            (0, 1): execution(
                [(200, {"at": 1, "v": 1}), (200, {"v": 2})], {"users": ((1, "ann", 30),)}
            )
        }
    )
    o = Oracle(
        Normalizer(
            {"users": USERS, "jobs": JOBS},
            INITIAL,
            ignore_columns=frozenset({"age"}),
            ignore_fields=frozenset({"at"}),
        ),
        serial,
    )
    verdict = o.judge(
        scenario(),
        execution(
            [(200, {"at": 9, "v": 1}), (200, {"v": 2})],
            {"users": ((1, "ann", 99),)},
            commits=(0, 1),
        ),
    )
    assert verdict.status == "serializable"


def test_requests_that_ran_one_after_another_need_no_reference() -> None:
    serial = Serial({})
    trace = tuple(
        Step(request=i, number=n, kind=k)  # type: ignore[arg-type]
        for i in (1, 0)
        for n, k in ((1, "start"), (2, "commit"), (3, "end"))
    )
    verdict = oracle(serial).judge(
        scenario(), execution([(200, "a"), (500, "boom")], {}, trace=trace)
    )
    assert verdict.status == "serializable"
    assert verdict.order == (1, 0)
    assert serial.calls == []  # the execution is its own serial reference
    assert [i for i, _ in verdict.serial_failures] == [1]  # a 500 while running alone


def test_a_serial_run_is_shared_by_every_list_order_that_runs_the_same_sequence() -> None:
    a, b = (Request(f"E{i}", "POST", f"/e{i}") for i in range(2))
    outcome = execution([(200, "b"), (200, "a")], {})  # as run: b first, then a
    serial = Serial({(0, 1): outcome})
    judge = oracle(serial)
    listed_ba = Scenario((b, a), (Gene(), Gene()))
    listed_ab = Scenario((a, b), (Gene(), Gene()))
    first, _ = judge.reference(listed_ba, (0, 1))
    again, _ = judge.reference(listed_ab, (1, 0))  # the same sequence: b, then a
    assert serial.calls == [(0, 1)]
    assert [r.body for r in first.responses] == ["b", "a"]  # type: ignore[union-attr]
    assert [r.body for r in again.responses] == ["a", "b"]  # type: ignore[union-attr]


def test_requests_that_all_answer_a_conflict_are_no_race() -> None:
    # two withdrawals over the balance, interleaved: both refused, nothing changed; the
    # serial run of no request at all explains it (no answer of it compared)
    serial = Serial({(): execution([None, None], {})})
    refused = (409, {"error": "insufficient funds"})
    verdict = oracle(serial).judge(scenario(), execution([refused, refused], {}))
    assert verdict.status == "serializable", [d.describe() for d in verdict.differences]
    assert verdict.aborted == (0, 1)
    assert serial.calls == [()]


def test_a_conflict_answer_with_an_effect_is_judged_like_any_answer() -> None:
    # a refusal that logs the attempt (a row) is no abort; when the serial runs refuse
    # it too, and log it too, the execution is explained with the 409 compared
    logged = {"jobs": ((1, "refused", 1),)}
    serial = Serial(
        {
            (1,): execution([None, (200, "ok")], {}),
            (0, 1): execution([(200, "ok"), (409, "no")], logged),
            (1, 0): execution([(409, "no"), (200, "ok")], logged),
        }
    )
    verdict = oracle(serial).judge(
        scenario(), execution([(409, "no"), (200, "ok")], logged, commits=(1, 0))
    )
    assert verdict.status == "serializable", [d.describe() for d in verdict.differences]
    assert verdict.aborted == ()
    assert verdict.order == (1, 0)
    # and a 409 that the serial runs do not give is a difference, not an abort
    verdict = oracle(serial).judge(
        scenario(), execution([(409, "other"), (200, "ok")], logged, commits=(1, 0))
    )
    assert verdict.status == "violation"


# -- generated keys named by who made them ------------------------------------------------

TRANSACTIONS = TableInfo("transaction", ("id", "kind"), ("id",), "id", ())
# a history extension's version rows: keyed by the transaction that wrote them, no
# foreign key declared (SQLAlchemy-Continuum's shape)
VERSIONS = TableInfo(
    "person_version",
    ("id", "transaction_id", "end_transaction_id", "name"),
    ("id", "transaction_id"),
    None,
    (),
)
HISTORY = {"transaction": TRANSACTIONS, "person_version": VERSIONS}


def commits_of(request: int, inserts: list[str], start: int = 1) -> tuple[Step, ...]:
    """A request's steps: each INSERT (one row) in its own transaction."""
    steps = []
    number = start
    for text in inserts:
        steps.append(Step(request=request, number=number, kind="sql", text=text, rowcount=1))
        steps.append(Step(request=request, number=number + 1, kind="commit"))
        number += 2
    return tuple(steps)


def history(trace: tuple[Step, ...], order: list[int]) -> dict[str, object]:
    """The final rows when transactions got ids in the order ``order`` names requests
    (the k-th transaction row is ``order[k]``'s): R1 saves person 1 three times, R2
    person 2 once, each save a transaction and a version row ended by the next one."""
    ids: dict[int, list[int]] = {}
    for number, request in enumerate(order, 1):
        ids.setdefault(request, []).append(number)
    versions = []
    for person, request in ((1, 0), (2, 1)):
        mine = ids[request]
        for k, t in enumerate(mine):
            end = mine[k + 1] if k + 1 < len(mine) else None
            versions.append((person, t, end, f"p{person}v{k}"))
    return {
        "transaction": tuple((n, "save") for n in range(1, len(order) + 1)),
        "person_version": tuple(sorted(versions)),
    }


def test_keys_numbered_by_a_sequence_across_commits_are_named_by_who_made_them() -> None:
    insert = "INSERT INTO transaction (kind) VALUES (?)"
    r1 = commits_of(0, [insert] * 3, start=2)
    r2 = commits_of(1, [insert], start=2)
    start = tuple(Step(request=i, number=1, kind="start") for i in (0, 1))

    def serial_run(order: tuple[int, ...]) -> Execution:
        steps = {0: r1, 1: r2}
        trace = tuple(s for i in order for s in steps[i])
        numbering = [i for i in order for _ in steps[i] if _.kind == "sql"]
        return Execution(
            mode="serial",
            responses=(Response(200, "saved"), Response(200, "saved")),
            tables=history(trace, numbering),  # type: ignore[arg-type]
            trace=trace,
        )

    serial = Serial({order: serial_run(order) for order in ((0, 1), (1, 0))})
    # R2's commit ran between R1's second and third: it got transaction 3
    trace = start + r1[:4] + r2 + r1[4:]
    actual = Execution(
        mode="controlled",
        responses=(Response(200, "saved"), Response(200, "saved")),
        tables=history(trace, [0, 0, 1, 0]),  # type: ignore[arg-type]
        trace=trace,
    )
    judge = Oracle(Normalizer(HISTORY, {"transaction": (), "person_version": ()}), serial)
    verdict = judge.judge(scenario(), actual)
    assert verdict.status == "serializable", [d.describe() for d in verdict.differences]
    # a version row pointing at another request's transaction is still a difference
    wrong = dict(actual.tables)
    rows = list(wrong["person_version"])
    rows[0] = (1, 3, 2, "p1v0")  # R1's first save recorded under R2's transaction
    broken = Execution(
        mode="controlled",
        responses=actual.responses,
        tables=wrong | {"person_version": tuple(rows)},
        trace=trace,  # type: ignore[arg-type]
    )
    verdict = Oracle(Normalizer(HISTORY, {"transaction": (), "person_version": ()}), serial).judge(
        scenario(), broken
    )
    assert verdict.status == "violation"
