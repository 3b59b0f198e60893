"""Classification from evidence, on hand-built executions and verdicts (no database).

Each test gives the trace, the responses and the differences the oracle would have
found, and checks the kind, the requests involved (which make the fingerprint), and
that the explanation cites what proves it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fuzzer.findings import classify, fingerprint
from fuzzer.judge.oracle import Difference, Verdict
from fuzzer.judge.verdict import NewKey
from fuzzer.model import EngineUse, Execution, Gene, Hang, Leak, Request, Response, Scenario, Step


class Trace:
    """Steps in granted order; each request numbers its own from 1."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self._numbers: dict[int, int] = {}

    def add(self, request: int, kind: str, text: str = "", params: str = "", **more: Any) -> Trace:
        number = self._numbers.get(request, 0) + 1
        self._numbers[request] = number
        self.steps.append(
            Step(
                request=request,
                number=number,
                kind=kind,  # type: ignore[arg-type]
                text=text,
                params=params,
                database="default" if kind != "start" and kind != "end" else "",
                connection=1 if kind not in ("start", "end") else 0,
                **more,
            )
        )
        return self

    def sql(self, request: int, text: str, params: str = "", **more: Any) -> Trace:
        return self.add(request, "sql", text, params, **more)


def scenario(*endpoints: str) -> Scenario:
    requests = tuple(Request(e, e.split()[0], e.split()[1]) for e in endpoints)
    return Scenario(requests=requests, schedule=tuple(Gene() for _ in requests))


def execution(
    trace: Trace,
    statuses: Sequence[int | tuple[int, str]],
    tables: Mapping[str, Any] | None = None,
    **more: Any,
) -> Execution:
    responses = tuple(
        Response(s[0], "", s[1]) if isinstance(s, tuple) else Response(s, {}) for s in statuses
    )
    return Execution(
        mode="controlled",
        responses=responses,
        tables=dict(tables or {}),
        trace=tuple(trace.steps),
        **more,
    )


def violation(
    order: tuple[int, ...],
    differences: Sequence[Difference],
    reference_statuses: Sequence[int],
    *,
    serial_failures: Sequence[tuple[int, Response]] = (),
    consulted_tables: Mapping[str, Any] | None = None,
) -> Verdict:
    reference = Execution(
        mode="serial",
        responses=tuple(Response(s, {}) for s in reference_statuses),
        tables=dict(consulted_tables or {}),
        order=order,
    )
    return Verdict(
        "violation",
        order,
        (),
        tuple(differences),
        reference,
        tuple(serial_failures),
        orders_tried=2,
        consulted=(reference,),
    )


def cell(table: str, key: Any, column: str, actual: Any, expected: Any) -> Difference:
    return Difference("cell", actual, expected, table=table, key=key, column=column)


def response(request: int, actual: int, expected: int) -> Difference:
    return Difference(
        "response", {"status": actual, "body": {}}, {"status": expected, "body": {}}, request
    )


def kinds(findings: Sequence[Any]) -> list[str]:
    return [f.kind for f in findings]


# -- lost update and what only looks like one -------------------------------------------


def stale_overwrite(value_written_last: str) -> tuple[Scenario, Execution]:
    """R2 reads, R1 updates the name and commits, R2 writes back the name it read."""
    t = Trace()
    t.add(0, "start").add(1, "start")
    t.sql(1, "SELECT users.id, users.name, users.age FROM users WHERE users.id = ?", "(1,)")
    t.sql(0, "SELECT users.id, users.name, users.age FROM users WHERE users.id = ?", "(1,)")
    t.sql(0, "UPDATE users SET name=? WHERE users.id = ?", "('Li', 1)", rowcount=1)
    t.add(0, "commit").add(0, "end")
    t.sql(
        1,
        "UPDATE users SET name=?, age=? WHERE users.id = ?",
        f"('{value_written_last}', 19, 1)",
        rowcount=1,
    )
    t.add(1, "commit").add(1, "end")
    return scenario("PUT /user/name", "PUT /user/age"), execution(t, [200, 200])


def test_a_committed_update_overwritten_from_a_stale_read_is_a_lost_update() -> None:
    s, e = stale_overwrite("Zhang")
    verdict = violation((0, 1), [cell("users", 1, "name", "Zhang", "Li")], [200, 200])
    (finding,) = classify(s, e, verdict)
    assert finding.kind == "lost-update"
    assert finding.involved == (0, 1)
    assert finding.endpoints == ("PUT /user/age", "PUT /user/name")
    text = finding.explanation.text()
    assert "R2 read users at step 3" in text
    assert "before R1 committed at step 6" in text
    assert 'setting name = "Zhang" from its stale read' in text
    assert text.endswith("a contradiction!")
    assert set(finding.explanation.conflicts) == {2, 4, 5, 7}


def test_an_overwrite_that_waited_for_the_victims_row_lock_is_a_lost_update() -> None:
    # MariaDB: both read 0 views; R2's UPDATE is granted first but waits for R1's row
    # lock, so it takes effect after R1's COMMIT, which comes later in the trace
    t = Trace()
    t.add(0, "start").sql(0, "SELECT posts.id, posts.views FROM posts WHERE posts.id = %s", "(1,)")
    t.add(1, "start").sql(1, "SELECT posts.id, posts.views FROM posts WHERE posts.id = %s", "(1,)")
    update = "UPDATE posts SET views=%(views)s WHERE posts.id = %(posts_id)s"
    t.sql(1, update, "{'views': 1, 'posts_id': 1}", rowcount=1)
    t.sql(0, update, "{'views': 1, 'posts_id': 1}", rowcount=1, waited="row lock on posts")
    t.add(1, "commit").add(0, "commit").add(0, "end").add(1, "end")
    s = scenario("GET /post/1", "GET /post/1")
    verdict = violation((1, 0), [cell("posts", 1, "views", 1, 2)], [200, 200])
    (finding,) = classify(s, execution(t, [200, 200]), verdict)
    assert finding.kind == "lost-update"
    text = finding.explanation.text()
    assert "which waited for R2's lock until that commit" in text
    assert "R1 read posts at step 2" in text


def test_an_atomic_decrement_after_a_check_is_an_overrun_not_a_lost_update() -> None:
    t = Trace()
    t.add(0, "start").add(1, "start")
    t.sql(0, "SELECT items.sku, items.stock FROM items WHERE items.sku = ?", "('mug',)")
    t.sql(1, "SELECT items.sku, items.stock FROM items WHERE items.sku = ?", "('mug',)")
    t.sql(
        0, "UPDATE items SET stock=(items.stock - ?) WHERE items.sku = ?", "(1, 'mug')", rowcount=1
    )
    t.sql(0, "INSERT INTO orders (sku, quantity) VALUES (?, ?)", "('mug', 1)", rowcount=1)
    t.add(0, "commit").add(0, "end")
    t.sql(
        1, "UPDATE items SET stock=(items.stock - ?) WHERE items.sku = ?", "(1, 'mug')", rowcount=1
    )
    t.sql(1, "INSERT INTO orders (sku, quantity) VALUES (?, ?)", "('mug', 1)", rowcount=1)
    t.add(1, "commit").add(1, "end")
    e = execution(t, [201, 201], {"orders": ((1, "mug", 1), (2, "mug", 1))})
    extra = Difference(
        "extra-row",
        {"id": NewKey("orders", number=2), "sku": "mug", "quantity": 1},
        None,
        table="orders",
    )
    verdict = violation(
        (0, 1),
        [response(1, 201, 422), cell("items", "mug", "stock", -1, 0), extra],
        [201, 422],
        consulted_tables={"orders": ((1, "mug", 1),)},
    )
    (finding,) = classify(scenario("POST /orders", "POST /orders"), e, verdict)
    assert finding.kind == "limit-overrun"
    assert finding.involved == (0, 1)
    assert "R2 went through (201) where, in the closest serial order, it is refused (422)" in (
        finding.explanation.text()
    )


# -- duplicates ------------------------------------------------------------------------


def double_submission(serial_rows: tuple[tuple[Any, ...], ...]) -> list[Any]:
    t = Trace()
    t.add(0, "start").add(1, "start")
    lookup = "SELECT jobs.id, jobs.token, jobs.report FROM jobs WHERE jobs.token = ?"
    t.sql(0, lookup, "('t-1',)")
    t.sql(1, lookup, "('t-1',)")
    t.sql(1, "INSERT INTO jobs (token, report) VALUES (?, ?)", "('t-1', 'stock')", rowcount=1)
    t.add(1, "commit").add(1, "end")
    t.sql(0, "INSERT INTO jobs (token, report) VALUES (?, ?)", "('t-1', 'sales')", rowcount=1)
    t.add(0, "commit").add(0, "end")
    final = ((1, "t-1", "stock"), (2, "t-1", "sales"))
    e = execution(t, [201, 201], {"jobs": final})
    extra = Difference(
        "extra-row",
        {"id": NewKey("jobs", number=2), "token": "t-1", "report": "sales"},
        None,
        table="jobs",
    )
    verdict = violation(
        (1, 0), [response(0, 201, 200), extra], [200, 201], consulted_tables={"jobs": serial_rows}
    )
    return classify(scenario("POST /jobs", "POST /jobs"), e, verdict)


def test_two_rows_for_the_key_both_lookups_asked_for_are_a_duplicate_insert() -> None:
    (finding,) = double_submission(serial_rows=((1, "t-1", "stock"),))
    assert finding.kind == "duplicate-insert"
    assert finding.involved == (0, 1)
    text = finding.explanation.text()
    assert 'inserted a row with token = "t-1" into jobs' in text
    assert "R1 looked for it in jobs at step 3" in text


def test_repeats_the_app_allows_serially_are_not_a_duplicate_insert() -> None:
    (finding,) = double_submission(serial_rows=((1, "t-1", "stock"), (2, "t-1", "sales")))
    assert finding.kind == "limit-overrun"


# -- write skew ------------------------------------------------------------------------


def sign_offs(second_reads_own_row_only: bool) -> list[Any]:
    t = Trace()
    t.add(0, "start").add(1, "start")
    count = "SELECT count(*) AS n FROM doctors WHERE doctors.shift_id = ? AND doctors.on_call = 1"
    own = "SELECT doctors.on_call FROM doctors WHERE doctors.id = ?"
    t.sql(0, count, "(1,)")
    t.sql(
        1,
        own if second_reads_own_row_only else count,
        "(2,)" if second_reads_own_row_only else "(1,)",
    )
    t.sql(0, "UPDATE doctors SET on_call=? WHERE doctors.id = ?", "(0, 1)", rowcount=1)
    t.add(0, "commit").add(0, "end")
    t.sql(1, "UPDATE doctors SET on_call=? WHERE doctors.id = ?", "(0, 2)", rowcount=1)
    t.add(1, "commit").add(1, "end")
    e = execution(t, [200, 200])
    verdict = violation(
        (0, 1), [response(1, 200, 422), cell("doctors", 2, "on_call", 0, 1)], [200, 422]
    )
    return classify(scenario("POST /off", "POST /off"), e, verdict)


def test_disjoint_writes_each_after_a_read_covering_the_others_row_are_write_skew() -> None:
    (finding,) = sign_offs(second_reads_own_row_only=False)
    assert finding.kind == "write-skew"
    assert "R1 changed doctors[1] and R2 changed doctors[2]" in finding.explanation.text()


def test_a_read_pinned_to_another_row_does_not_make_write_skew() -> None:
    (finding,) = sign_offs(second_reads_own_row_only=True)
    assert finding.kind == "limit-overrun"


# -- errors ----------------------------------------------------------------------------


def stale_version(serial_failures: Sequence[tuple[int, Response]]) -> list[Any]:
    t = Trace()
    t.add(0, "start").add(1, "start").add(2, "start")
    t.sql(1, "SELECT pages.id, pages.version FROM pages WHERE pages.slug = ?", "('home',)")
    t.sql(0, "SELECT pages.id, pages.version FROM pages WHERE pages.slug = ?", "('home',)")
    update = "UPDATE pages SET body=?, version=? WHERE pages.id = ? AND pages.version = ?"
    t.sql(0, update, "('Hi', 2, 1, 1)", rowcount=1)
    t.add(0, "commit").add(0, "end")
    t.sql(2, "SELECT tags.name FROM tags", "()")
    t.add(2, "rollback").add(2, "end")
    t.sql(1, update, "('Yo', 2, 1, 1)", rowcount=0)
    t.add(1, "rollback").add(1, "end")
    error = (
        "sqlalchemy.orm.exc.StaleDataError: UPDATE statement on table 'pages' expected to "
        "update 1 row(s); 0 were matched."
    )
    e = execution(t, [200, (500, error), 200])
    verdict = violation(
        (0, 1, 2), [response(1, 500, 200)], [200, 200, 200], serial_failures=serial_failures
    )
    s = scenario("PUT /pages/<slug>", "PUT /pages/<slug>", "GET /tags")
    return classify(s, e, verdict)


def test_a_5xx_no_serial_run_gives_is_a_concurrency_error_of_the_requests_involved() -> None:
    (finding,) = stale_version(serial_failures=())
    assert finding.kind == "concurrency-error"
    assert finding.exception == "sqlalchemy.orm.exc.StaleDataError"
    assert finding.involved == (0, 1)  # the reader of tags only stood by
    assert finding.endpoints == ("PUT /pages/<slug>",)
    text = finding.explanation.text()
    assert "R2's statement at step 12 (UPDATE pages SET" in text and "matched 0 rows" in text


def test_a_5xx_a_serial_run_gives_too_is_a_serial_failure_never_a_race() -> None:
    error = Response(500, "", "sqlalchemy.orm.exc.StaleDataError: UPDATE statement …")
    findings = stale_version(serial_failures=((1, error),))
    assert kinds(findings) == ["serial-failure"]
    assert findings[0].involved == (1,)


# -- stale read ------------------------------------------------------------------------


def test_an_answer_no_serial_order_gives_is_a_stale_read_of_the_overlapping_writer() -> None:
    t = Trace()
    t.add(0, "start").add(1, "start").add(2, "start")
    t.sql(0, "SELECT products.sku, products.price FROM products WHERE products.sku = ?", "('mug',)")
    t.sql(1, "UPDATE products SET price=? WHERE products.sku = ?", "('15.00', 'mug')", rowcount=1)
    t.add(1, "commit").add(1, "end")
    t.sql(2, "UPDATE tags SET name=? WHERE tags.id = ?", "('x', 1)", rowcount=1)
    t.add(2, "commit").add(2, "end")
    t.sql(
        0, "SELECT (products.price * ?) AS total FROM products WHERE products.sku = ?", "(3, 'mug')"
    )
    t.add(0, "rollback").add(0, "end")
    e = execution(t, [200, 200, 200])
    diff = Difference(
        "response",
        {"status": 200, "body": {"unit": "12.00", "total": "45.00"}},
        {"status": 200, "body": {"unit": "15.00", "total": "45.00"}},
        request=0,
    )
    verdict = violation((1, 0, 2), [diff], [200, 200, 200])
    s = scenario("GET /quote/<sku>", "PUT /products/<sku>/price", "PUT /tags/<id>")
    (finding,) = classify(s, e, verdict)
    assert finding.kind == "stale-read"
    assert finding.involved == (0, 1)  # the tags writer touched nothing R1 read
    assert "R1 read products at step 4, before R2 committed at step 6, and read products" in (
        finding.explanation.text()
    )
    assert finding.response_only  # the rows match a serial order: labelled so, listed last


def test_two_idempotent_requests_answering_alike_are_a_response_only_finding() -> None:
    # two "unfollow" both answer "unfollowed"; serially the second answers "not following";
    # the rows are identical
    t = Trace()
    t.add(0, "start").add(1, "start")
    find = "SELECT follows.id FROM follows WHERE follows.user_id = ? AND follows.target = ?"
    drop = "DELETE FROM follows WHERE follows.id = ?"
    t.sql(0, find, "(1, 2)").sql(1, find, "(1, 2)")
    t.sql(0, drop, "(5,)", rowcount=1).add(0, "commit").add(0, "end")
    t.sql(1, drop, "(5,)", rowcount=0).add(1, "commit").add(1, "end")
    diff = Difference(
        "response",
        {"status": 200, "body": {"status": "unfollowed"}},
        {"status": 200, "body": {"status": "not following"}},
        request=1,
    )
    (finding,) = classify(
        scenario("POST /unfollow", "POST /unfollow"),
        execution(t, [200, 200]),
        violation((0, 1), [diff], [200, 200]),
    )
    assert finding.response_only


# -- hygiene ---------------------------------------------------------------------------


def serializable() -> Verdict:
    return Verdict("serializable", (0,), reference=None)


def test_leaks_wrong_engines_and_a_blocked_schema_change_each_name_their_request() -> None:
    t = Trace()
    t.add(0, "start").add(1, "start")
    t.sql(0, "SELECT customers.id FROM customers")
    t.sql(1, "SELECT products.id FROM products WHERE products.id = ?", "(1,)")
    t.add(0, "end").add(1, "end")
    e = execution(
        t,
        [200, 200],
        leaks=(Leak(0, 1, "default", True, "SELECT customers.id FROM customers"),),
        wrong_engine=(EngineUse(1, 2, "blog", ("shop",), "shop"),),
        schema_change=Hang(
            0.0,
            {},
            {},
            lock="ALTER TABLE customers waits for the metadata lock on customers",
            holders={0: "an open transaction that used customers"},
        ),
    )
    findings = classify(scenario("GET /stats", "GET /shop/products/<id>"), e, serializable())
    assert kinds(findings) == ["hang", "leaked-transaction", "wrong-engine"]
    hang, leak, wrong = findings
    assert hang.involved == (0,) and leak.involved == (0,) and wrong.involved == (1,)
    assert "metadata lock on customers" in hang.explanation.text()
    assert "R1 answered, and left an open transaction that used customers" in (
        hang.explanation.text()
    )
    assert "inside an open transaction" in leak.explanation.text()
    assert "ran on database 'blog'" in wrong.explanation.text()


def test_the_fingerprint_is_kind_endpoints_and_exception_and_ignores_order() -> None:
    a = fingerprint("lost-update", ["PUT /a", "PUT /b"])
    assert a == fingerprint("lost-update", ["PUT /b", "PUT /a", "PUT /a"])
    assert a != fingerprint("lost-update", ["PUT /a"])
    assert a != fingerprint("stale-read", ["PUT /a", "PUT /b"])
    assert fingerprint("concurrency-error", ["PUT /a"], "X") != fingerprint(
        "concurrency-error", ["PUT /a"], "Y"
    )


def test_a_read_after_the_commit_inside_an_older_transaction_may_be_stale() -> None:
    """REPEATABLE READ: R1's count runs after R2 committed, but in the snapshot R1 took
    with its first read, before that commit."""
    t = Trace()
    t.add(0, "start").add(1, "start")
    t.sql(0, "SELECT doctors.shift_id FROM doctors WHERE doctors.id = ?", "(1,)")
    t.sql(1, "SELECT count(*) AS n FROM doctors WHERE doctors.shift_id = ?", "(1,)")
    t.sql(1, "UPDATE doctors SET on_call=? WHERE doctors.id = ?", "(0, 2)", rowcount=1)
    t.add(1, "commit").add(1, "end")
    t.sql(0, "SELECT count(*) AS n FROM doctors WHERE doctors.shift_id = ?", "(1,)")
    t.sql(0, "UPDATE doctors SET on_call=? WHERE doctors.id = ?", "(0, 1)", rowcount=1)
    t.add(0, "commit").add(0, "end")
    verdict = violation(
        (1, 0), [response(0, 200, 422), cell("doctors", 1, "on_call", 0, 1)], [422, 200]
    )
    (finding,) = classify(scenario("POST /off", "POST /off"), execution(t, [200, 200]), verdict)
    assert finding.kind == "write-skew"
    assert "R1 read doctors at step 8 (SELECT count(*)" in finding.explanation.text()
    assert "in a transaction begun at step 3, a read that includes the row R2 changes" in (
        finding.explanation.text()
    )


# -- one root cause, one finding, the right kind (issue 11) ------------------------------


def test_a_victim_whose_value_is_the_final_one_is_not_a_lost_update() -> None:
    # R1 takes Alice off call, R2 takes Bob off call; R2's WHERE starts with the shift, so
    # its key (1, 2) looks like Alice's row (1): before, "R1's update … is lost (it ends as
    # 0)" although R1 wrote 0. It is the write skew it is.
    t = Trace()
    t.add(0, "start").add(1, "start")
    count = "SELECT count(*) AS n FROM doctors WHERE doctors.shift_id = ? AND doctors.on_call = 1"
    off = "UPDATE doctors SET on_call=? WHERE doctors.shift_id = ? AND doctors.id = ?"
    t.sql(0, count, "(1,)").sql(1, count, "(1,)")
    t.sql(0, off, "(0, 1, 1)", rowcount=1).add(0, "commit").add(0, "end")
    t.sql(1, off, "(0, 1, 2)", rowcount=1).add(1, "commit").add(1, "end")
    verdict = violation(
        (1, 0), [response(0, 200, 422), cell("doctors", 1, "on_call", 0, 1)], [422, 200]
    )
    (finding,) = classify(scenario("POST /off", "POST /off"), execution(t, [200, 200]), verdict)
    assert finding.kind == "write-skew"
    assert "is lost" not in finding.explanation.text()


def test_a_counter_that_ends_lower_is_a_lost_update_not_an_overrun() -> None:
    # both computed n + 1 from a value the database never saw them read (a cache)
    t = Trace()
    t.add(0, "start").add(1, "start")
    t.add(0, "checkpoint", "cache read").add(1, "checkpoint", "cache read")
    t.sql(0, "UPDATE counter SET n=? WHERE counter.id = ?", "(1, 1)", rowcount=1)
    t.add(0, "commit").add(0, "end")
    t.sql(1, "UPDATE counter SET n=? WHERE counter.id = ?", "(1, 1)", rowcount=1)
    t.add(1, "commit").add(1, "end")
    verdict = violation((0, 1), [cell("counter", 1, "n", 1, 2)], [200, 200])
    (finding,) = classify(scenario("POST /hit", "POST /hit"), execution(t, [200, 200]), verdict)
    assert finding.kind == "lost-update"
    text = finding.explanation.text()
    assert "went past the limit" not in text
    assert "counter[1].n ends as 1, lower than any serial order leaves it" in text


def test_rows_that_differ_because_a_serial_run_took_an_error_path_are_that_error() -> None:
    # serially the second sign-up renders a 500 page after its first insert was rolled
    # back; concurrently both went through: the rows differ because of the error path
    t = Trace()
    t.add(0, "start").add(1, "start")
    insert = "INSERT INTO users (name) VALUES (?)"
    t.sql(0, insert, "('a',)", rowcount=1).sql(1, insert, "('b',)", rowcount=1)
    t.add(0, "commit").add(0, "end").add(1, "commit").add(1, "end")
    e = execution(t, [200, 200], {"users": ((1, "a"), (2, "b"))})
    extra = Difference(
        "extra-row", {"id": NewKey("users", number=2), "name": "b"}, None, table="users"
    )
    failed = Response(500, "", "KeyError: 'theme'")
    verdict = violation(
        (0, 1),
        [response(1, 200, 500), extra],
        [200, 500],
        serial_failures=[(1, failed)],
        consulted_tables={"users": ((1, "a"),)},
    )
    assert kinds(classify(scenario("POST /signup", "POST /signup"), e, verdict)) == [
        "serial-failure"
    ]


def test_a_duplicate_row_and_an_overdraft_of_another_table_are_two_findings() -> None:
    t = Trace()
    t.add(0, "start").add(1, "start")
    lookup = "SELECT unlocks.id FROM unlocks WHERE unlocks.hint_id = ?"
    charge = "UPDATE users SET score=(users.score - ?) WHERE users.id = ?"
    insert = "INSERT INTO unlocks (hint_id) VALUES (?)"
    t.sql(0, lookup, "(7,)").sql(1, lookup, "(7,)")
    t.sql(1, insert, "(7,)", rowcount=1).sql(1, charge, "(5, 1)", rowcount=1)
    t.add(1, "commit").add(1, "end")
    t.sql(0, insert, "(7,)", rowcount=1).sql(0, charge, "(5, 1)", rowcount=1)
    t.add(0, "commit").add(0, "end")
    e = execution(t, [200, 200], {"unlocks": ((1, 7), (2, 7))})
    extra = Difference(
        "extra-row", {"id": NewKey("unlocks", number=2), "hint_id": 7}, None, table="unlocks"
    )
    verdict = violation(
        (1, 0),
        [response(0, 200, 200), extra, cell("users", 1, "score", -5, 0)],
        [200, 200],
        consulted_tables={"unlocks": ((1, 7),)},
    )
    found = classify(scenario("POST /unlock", "POST /unlock"), e, verdict)
    assert sorted(kinds(found)) == ["duplicate-insert", "limit-overrun"]
    assert {f.place for f in found} == {"unlocks", "users"}
    assert len({f.fingerprint for f in found}) == 2


def unlocks_past_the_score(first: int, second: int) -> list[Any]:
    """Two unlocks that each read the score, then insert an unlock of a hint and charge
    it: the score goes below zero. No unlock lookup (the app allows a hint twice)."""
    t = Trace()
    t.add(0, "start").add(1, "start")
    score = "SELECT users.score FROM users WHERE users.id = ?"
    charge = "UPDATE users SET score=(users.score - ?) WHERE users.id = ?"
    insert = "INSERT INTO unlocks (hint_id) VALUES (?)"
    t.sql(0, score, "(1,)").sql(1, score, "(1,)")
    t.sql(1, insert, f"({second},)", rowcount=1).sql(1, charge, "(60, 1)", rowcount=1)
    t.add(1, "commit").add(1, "end")
    t.sql(0, insert, f"({first},)", rowcount=1).sql(0, charge, "(60, 1)", rowcount=1)
    t.add(0, "commit").add(0, "end")
    e = execution(t, [200, 200], {"unlocks": ((1, second), (2, first))})
    extra = Difference(
        "extra-row",
        {"id": NewKey("unlocks", maker=(0, 1)), "hint_id": first},
        None,
        table="unlocks",
    )
    verdict = violation(
        (1, 0),
        [response(0, 200, 409), extra, cell("users", 1, "score", -20, 40)],
        [200, 409],
        consulted_tables={"unlocks": ((1, second),)},
    )
    return classify(scenario("POST /unlock", "POST /unlock"), e, verdict)


def test_one_hint_twice_and_two_hints_past_the_score_are_two_findings() -> None:
    """Issue 19 item 8: a double unlock (the extra row repeats the other request's) and an
    overdraft (two different hints) go past one limit through one endpoint and one table,
    but they are two races on different rows, with two fixes: two fingerprints."""
    (twice,) = unlocks_past_the_score(7, 7)
    (both,) = unlocks_past_the_score(7, 8)
    assert twice.kind == both.kind == "limit-overrun"
    assert twice.place == both.place == "unlocks, users"
    assert twice.fingerprint != both.fingerprint
    # and each is stable: another pair of different hints is the same overdraft
    (again,) = unlocks_past_the_score(8, 9)
    assert again.fingerprint == both.fingerprint


def test_the_same_race_through_two_routes_is_one_finding() -> None:
    verdict = violation((0, 1), [cell("users", 1, "name", "Zhang", "Li")], [200, 200])
    s, e = stale_overwrite("Zhang")
    (one,) = classify(s, e, verdict)
    other = Scenario(
        requests=(s.requests[0], Request("PUT /user/bio", "PUT", "/user/bio")),
        schedule=s.schedule,
    )
    (two,) = classify(other, e, verdict)
    assert one.endpoints != two.endpoints
    assert one.place == two.place == "users"
    assert one.fingerprint == two.fingerprint


def test_an_overrun_names_the_damage_and_an_explanation_no_empty_step_list() -> None:
    from fuzzer.findings.explain import Explanation
    from fuzzer.findings.races import _damage

    cart = Difference("missing-row", None, {"id": 3, "user": "bo"}, table="carts")
    order = Difference(
        "extra-row", {"id": NewKey("orders", maker=(1, 1)), "sku": "mug"}, None, table="orders"
    )
    stock = Difference("cell", -1, 0, table="items", key="mug", column="stock")
    # the loser's cart came first; the damage is the extra order and the stock count
    assert _damage([cart, order, stock]) == [order, stock]
    assert _damage([cart]) == [cart]
    text = Explanation(let=(("R1", "POST /buy"),), facts=("", " "), however="However, …").text()
    assert "Then:" not in text


# -- a double delete is one kind, whatever the order of its statements (issue 19) --------

BOOKING = "SELECT bookings.id, bookings.price FROM bookings WHERE bookings.id = ?"
UNBOOK = "DELETE FROM bookings WHERE bookings.id = ?"
SEAT = "SELECT events.id, events.booked FROM events WHERE events.id = ?"
REFUND = "UPDATE wallets SET credit=(wallets.credit + ?) WHERE wallets.id = ?"


def cancel(t: Trace, request: int, deleted: int, booked: int, *, read_seat: bool = True) -> None:
    """The rest of a cancel after its check: delete, give the seat back, refund."""
    t.sql(request, UNBOOK, "(1,)", rowcount=deleted)
    if read_seat:
        t.sql(request, SEAT, "(1,)")
    t.sql(request, "UPDATE events SET booked=? WHERE events.id = ?", f"({booked}, 1)", rowcount=1)
    t.sql(request, REFUND, "(30, 1)", rowcount=1)
    t.add(request, "commit").add(request, "end")


def double_cancel(order: str) -> Trace:
    t = Trace()
    t.add(0, "start").add(1, "start")
    if order == "checks first":  # both checks, then one cancel after the other
        t.sql(0, BOOKING, "(1,)").sql(1, BOOKING, "(1,)")
        cancel(t, 0, 1, 1)
        cancel(t, 1, 0, 0)
    elif order == "stale seat":  # R2 read the seat before R1 committed, wrote after
        t.sql(0, BOOKING, "(1,)").sql(1, BOOKING, "(1,)")
        t.sql(1, SEAT, "(1,)")
        cancel(t, 0, 1, 1)
        cancel(t, 1, 0, 1, read_seat=False)
    else:  # R2's check after R1's DELETE, before R1's commit
        t.sql(0, BOOKING, "(1,)")
        t.sql(0, UNBOOK, "(1,)", rowcount=1)
        t.sql(1, BOOKING, "(1,)")
        t.sql(0, SEAT, "(1,)")
        t.sql(0, "UPDATE events SET booked=? WHERE events.id = ?", "(1, 1)", rowcount=1)
        t.sql(0, REFUND, "(30, 1)", rowcount=1)
        t.add(0, "commit").add(0, "end")
        cancel(t, 1, 0, 0)
    return t


def test_a_double_delete_is_one_overrun_whatever_the_order_of_its_statements() -> None:
    # before: the same double cancel was a lost-update (a seat count both set) or a
    # limit-overrun, by the order of its statements
    for order in ("checks first", "stale seat", "check after the delete"):
        # a seat given back twice, unless R2 wrote back the count it read before R1's
        lower = [] if order == "stale seat" else [cell("events", 1, "booked", 0, 1)]
        differences = [response(1, 200, 404), *lower, cell("wallets", 1, "credit", 60, 30)]
        verdict = violation((0, 1), differences, [200, 404])
        findings = classify(
            scenario("POST /cancel", "POST /cancel"),
            execution(double_cancel(order), [200, 200]),
            verdict,
        )
        assert kinds(findings) == ["limit-overrun"], order
        (finding,) = findings
        assert finding.involved == (0, 1)
        assert finding.place == ("events, wallets" if order != "stale seat" else "wallets")
        text = finding.explanation.text()
        assert "R1 and R2 each found bookings[1] and deleted it" in text, order
        assert "where it matched no row" in text


def test_a_delete_that_matched_nothing_and_wrote_nothing_else_is_no_double_delete() -> None:
    # R2 deleted nothing and committed nothing else: the lost seat is R1's and R3's race
    t = Trace()
    t.add(0, "start").add(1, "start").add(2, "start")
    t.sql(0, SEAT, "(1,)").sql(2, SEAT, "(1,)")
    t.sql(0, UNBOOK, "(1,)", rowcount=1)
    t.sql(0, "UPDATE events SET booked=? WHERE events.id = ?", "(1, 1)", rowcount=1)
    t.add(0, "commit").add(0, "end")
    t.sql(1, UNBOOK, "(1,)", rowcount=0).add(1, "commit").add(1, "end")
    t.sql(2, "UPDATE events SET booked=? WHERE events.id = ?", "(3, 1)", rowcount=1)
    t.add(2, "commit").add(2, "end")
    verdict = violation((0, 1, 2), [cell("events", 1, "booked", 3, 2)], [200, 404, 200])
    findings = classify(
        scenario("POST /cancel", "POST /cancel", "POST /book"),
        execution(t, [200, 404, 200]),
        verdict,
    )
    assert kinds(findings) == ["lost-update"]


STAMP = "UPDATE users SET last_seen=? WHERE users.id = ?"
ME = "SELECT users.id, users.name FROM users WHERE users.id = ?"


def test_a_stale_read_cites_what_conflicts_not_the_stamp_every_request_makes() -> None:
    # issue 19 items 8 and 10: a double cancel's stale answer cited the last_seen stamp
    # both requests make first (a before_request hook that commits); the booking R1
    # deleted is what R2 read too early
    t = Trace()
    t.add(0, "start").add(1, "start")
    for r in (0, 1):
        t.sql(r, STAMP, "('12:00', 1)", rowcount=1).add(r, "commit")
    t.sql(0, ME, "(1,)").sql(1, ME, "(1,)")
    t.sql(0, BOOKING, "(1,)").sql(1, BOOKING, "(1,)")
    t.sql(0, UNBOOK, "(1,)", rowcount=1).sql(0, REFUND, "(30, 1)", rowcount=1)
    t.add(0, "commit").add(0, "end")
    t.sql(1, UNBOOK, "(1,)", rowcount=0).add(1, "commit").add(1, "end")
    verdict = violation((0, 1), [response(1, 200, 404)], [200, 404])
    (found,) = classify(scenario("POST /cancel", "POST /cancel"), execution(t, [200, 200]), verdict)
    assert found.kind == "stale-read"
    facts = " ".join(found.explanation.facts)
    assert "bookings" in facts
    assert "users" not in facts and "last_seen" not in facts, facts
    cited = {t.steps[p].text for p in found.explanation.conflicts}
    assert STAMP not in cited and ME not in cited


def test_an_error_cites_the_row_deleted_under_it_not_the_stamp_every_request_makes() -> None:
    # R1 loaded the task, R2 deleted it and committed, R1's reload found nothing (a 500
    # without a failing statement): the task is the evidence, not the last_seen stamps
    task = "SELECT tasks.id, tasks.title FROM tasks WHERE tasks.id = ?"
    t = Trace()
    t.add(0, "start").add(1, "start")
    for r in (0, 1):
        t.sql(r, STAMP, "('12:00', 1)", rowcount=1).add(r, "commit")
    t.sql(0, task, "(1,)").sql(1, task, "(1,)")
    t.sql(1, "DELETE FROM tasks WHERE tasks.id = ?", "(1,)", rowcount=1)
    t.add(1, "commit").add(1, "end")
    t.sql(0, task, "(1,)").add(0, "end")
    verdict = violation((0, 1), [response(0, 500, 200)], [200, 200])
    e = execution(t, [(500, "sqlalchemy.orm.exc.ObjectDeletedError"), 200])
    (found,) = classify(scenario("PUT /tasks/1", "DELETE /tasks/1"), e, verdict)
    assert found.kind == "concurrency-error" and found.involved == (0, 1)
    facts = " ".join(found.explanation.facts)
    assert "tasks" in facts and "users" not in facts, facts
