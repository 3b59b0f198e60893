"""What the findings read off a recorded statement, on each driver's parameter style."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite

from fuzzer import sql
from fuzzer.sql import (
    access,
    compiled,
    read_only,
    recorded,
    takes_locks,
    verb,
    writes,
    written_table,
)
from fuzzer.sql import text as sqltext
from fuzzer.sql.text import shape as parse


def test_an_update_names_its_row_its_values_and_every_column_it_sets() -> None:
    seen = access("UPDATE users SET name=?, age=? WHERE users.id = ?", "('Li', 30, 1)")
    assert seen.write == "users" and seen.verb == "UPDATE"
    assert seen.key == (1,)
    assert seen.sets == (("name", "Li"), ("age", 30))
    assert seen.assigned == ("name", "age")
    assert seen.filters == (("id", 1),)


def test_postgresql_casts_do_not_hide_the_values() -> None:
    seen = access(
        "UPDATE users SET name=%(name)s::VARCHAR, age=%(age)s::INTEGER "
        "WHERE users.id = %(users_id)s::INTEGER",
        "{'name': 'Li', 'age': 30, 'users_id': 1}",
    )
    assert seen.sets == (("name", "Li"), ("age", 30))
    assert seen.key == (1,)


def test_an_expression_has_no_known_value_and_keeps_the_positions_after_it() -> None:
    seen = access(
        "UPDATE items SET stock=(items.stock - ?), name=? WHERE items.sku = ?",
        "(1, 'mugs', 'mug')",
    )
    assert seen.sets == (("name", "mugs"),)  # stock's value is not a parameter
    assert seen.assigned == ("stock", "name")
    assert seen.key == ("mug",)


def test_a_lookup_names_the_columns_it_filters_on() -> None:
    seen = access(
        "SELECT `jobs`.id FROM `jobs` WHERE `jobs`.client_token = %(client_token_1)s "
        "LIMIT %(param_1)s",
        "{'client_token_1': 't-1', 'param_1': 1}",
    )
    assert seen.reads == {"jobs"} and seen.write is None
    assert seen.filters == (("client_token", "t-1"),)


@pytest.mark.parametrize(
    ("statement", "table"),
    [
        ("UPDATE users SET name=? WHERE users.id = ?", "users"),
        ("INSERT INTO `posts` (title) VALUES (%s)", "posts"),
        ("INSERT OR IGNORE INTO tags (name) VALUES (?)", "tags"),
        ('DELETE FROM "jobs" WHERE jobs.id = %(id)s', "jobs"),
        ('UPDATE "my table" SET x = 1', "my table"),  # a quoted name, read whole
        # what may write more tables, or elsewhere: restore everything
        ("UPDATE a, b SET b.y=%s WHERE a.id = b.a_id", None),
        ("UPDATE a JOIN b ON a.id = b.a_id SET b.y = 1", None),
        ("DELETE FROM a USING b WHERE a.x = b.x", None),
        ("UPDATE shard2.accounts SET balance = 0", None),
        ("INSERT INTO t VALUES (1); DELETE FROM u", None),
        ("CREATE TABLE t (id INT)", None),
    ],
)
def test_a_restore_covers_only_the_one_table_a_plain_write_names(
    statement: str, table: str | None
) -> None:
    assert written_table(statement) == table


def test_only_plain_reads_count_as_writing_nothing() -> None:
    assert read_only("SELECT * FROM t FOR UPDATE")
    assert read_only("/* a comment */ SELECT 1")
    assert not read_only("CALL refresh_totals()")
    assert not read_only("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE")


@pytest.mark.parametrize(
    "params",
    [
        "[{'amount': 5, 'id_1': 1}, {'amount': 7, 'id_1': 2}]",  # pyformat/named
        "[(5, 1), (7, 2)]",  # qmark/format
    ],
)
def test_an_executemany_names_no_single_row(params: str) -> None:
    # one statement, a set of parameters per row: the rows are not one key (a key built
    # of the sets was a tuple of dicts, unhashable where findings group rows)
    seen = access("UPDATE accounts SET amount=%(amount)s WHERE accounts.id = %(id_1)s", params)
    assert seen.write == "accounts" and seen.verb == "UPDATE"
    assert seen.key is None
    assert seen.filters == () and seen.sets == ()
    hash(seen)


@pytest.mark.parametrize(
    ("params", "key", "sets"),
    [
        # PyMySQL and psycopg are given Python values: their repr is no literal
        (
            "{'last_seen': datetime.datetime(2026, 1, 1, 12, 0), 'users_id': 2}",
            (2,),
            (("last_seen", "datetime.datetime(2026, 1, 1, 12, 0)"),),
        ),
        ("{'last_seen': Decimal('1.5'), 'users_id': UUID('0f')}", ("UUID('0f')",), None),
    ],
)
def test_values_no_literal_writes_keep_the_row_a_statement_names(
    params: str, key: tuple[Any, ...], sets: Any
) -> None:
    # a stamp on MariaDB or PostgreSQL (`last_seen` a datetime) named no row: the user's
    # stamp was not recognised, and every pair of a 67-endpoint app conflicted on it
    text = "UPDATE users SET last_seen=%(last_seen)s WHERE users.id = %(users_id)s"
    table = sa.table("users", sa.column("id"), sa.column("last_seen"))
    statement = sa.update(table).where(table.c.id == sa.bindparam("users_id"))
    dialect = mysql.dialect(paramstyle="pyformat")  # as PyMySQL is used by SQLAlchemy
    made = statement.compile(dialect=dialect, column_keys=["last_seen"])
    found = compiled.shape(SimpleNamespace(compiled=made))
    assert found is not None
    for seen in (access(text, params), recorded(text, params, found)):
        assert seen.key == key
        if sets is not None:
            assert seen.sets == sets


# -- text() and raw SQL: read by the parser ------------------------------------------------


def test_a_text_statement_is_left_to_the_parser_and_read_whole() -> None:
    statement = sa.text("UPDATE accounts SET balance = balance - :amount WHERE id = :id")
    text = str(statement.compile(dialect=sqlite.dialect()))
    assert compiled.shape(SimpleNamespace(compiled=statement.compile())) is None
    seen = access(text, "(5, 7)")
    assert (seen.verb, seen.write, seen.key) == ("UPDATE", "accounts", (7,))
    assert seen.assigned == ("balance",) and seen.sets == ()  # an expression: no value
    assert seen.filters == (("id", 7),)
    assert written_table(text) == "accounts"


def test_a_compiled_executemany_names_no_single_row() -> None:
    table = sa.table("accounts", sa.column("id"), sa.column("amount"))
    statement = sa.update(table).where(table.c.id == sa.bindparam("b_id"))
    made = statement.compile(dialect=sqlite.dialect(), column_keys=["amount"])
    found = compiled.shape(SimpleNamespace(compiled=made))
    assert found is not None and found.sets == (("amount", 0),) and found.where == (1,)
    seen = recorded("UPDATE accounts SET amount=? WHERE accounts.id = ?", "[(5, 1), (7, 2)]", found)
    assert seen.write == "accounts" and seen.key is None and seen.filters == ()


def test_a_cte_is_no_table_and_a_writing_cte_writes() -> None:
    reading = (
        "WITH totals AS (SELECT owner, sum(qty) AS n FROM items GROUP BY owner) "
        "SELECT * FROM totals WHERE totals.owner = ?"
    )
    seen = access(reading, "('ann',)")
    assert seen.reads == {"items"} and seen.write is None
    assert seen.filters == (("owner", "ann"),)
    assert not writes(reading) and read_only(reading)
    moving = (
        "WITH moved AS (DELETE FROM queue WHERE queue.id = %(id)s RETURNING *) "
        "INSERT INTO done SELECT * FROM moved"
    )
    assert writes(moving) and not read_only(moving)
    assert verb(moving) == "INSERT" and access(moving).write == "done"
    assert written_table(moving) is None  # it writes two tables: restore everything


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO likes (post_id, user_id) VALUES (%(post_id)s, %(user_id)s) "
        "ON CONFLICT (post_id, user_id) DO UPDATE SET n = likes.n + 1 RETURNING likes.id",
        "INSERT INTO likes (post_id, user_id) VALUES (%s, %s) ON DUPLICATE KEY UPDATE n = n + 1",
        "INSERT OR REPLACE INTO likes (post_id, user_id) VALUES (?, ?)",
    ],
)
def test_an_upsert_writes_its_one_table(statement: str) -> None:
    seen = access(statement)
    assert (seen.verb, seen.write, seen.reads) == ("INSERT", "likes", frozenset())
    assert writes(statement) and written_table(statement) == "likes"


def test_mysql_replace_is_read_as_the_insert_it_is() -> None:
    seen = access("REPLACE INTO `tags` (name) VALUES (%s)", "('x',)")
    assert (seen.verb, seen.write) == ("REPLACE", "tags")
    assert written_table("REPLACE INTO `tags` (name) VALUES (%s)") == "tags"


def test_an_update_join_writes_the_table_its_set_names() -> None:
    # MariaDB's multi-table UPDATE: orders is only read; items is written
    statement = (
        "UPDATE orders JOIN items ON items.order_id = orders.id "
        "SET items.status = %s WHERE orders.id = %s"
    )
    seen = access(statement, "('shipped', 3)")
    assert (seen.verb, seen.write) == ("UPDATE", "items")
    assert seen.reads == {"orders", "items"}
    assert seen.sets == (("status", "shipped"),) and seen.key == (3,)
    assert written_table(statement) is None  # a join: restore everything


@pytest.mark.parametrize(
    ("statement", "params", "expected"),
    [
        (
            "UPDATE users SET name=%(name)s WHERE users.id = %(id_1)s RETURNING users.version",
            "{'name': 'Li', 'id_1': 1}",
            ("UPDATE", "users", (1,)),
        ),
        ("DELETE FROM jobs WHERE jobs.id = ? RETURNING jobs.id", "(4,)", ("DELETE", "jobs", (4,))),
        ("INSERT INTO jobs (name) VALUES (?) RETURNING id", "('a',)", ("INSERT", "jobs", None)),
    ],
)
def test_returning_changes_nothing_a_write_touches(
    statement: str, params: str, expected: tuple[str, str, Any]
) -> None:
    seen = access(statement, params)
    assert (seen.verb, seen.write, seen.key) == expected
    assert seen.reads == frozenset()


@pytest.mark.parametrize(
    ("statement", "locks"),
    [
        ("SELECT * FROM seats WHERE seats.id = ? FOR UPDATE", True),
        ("SELECT * FROM seats FOR NO KEY UPDATE", True),
        ("SELECT * FROM seats LOCK IN SHARE MODE", True),
        ("SELECT * FROM seats", False),
        ("/* a comment */ UPDATE seats SET n = 1", True),
    ],
)
def test_row_locks_are_taken_by_writes_and_locking_reads(statement: str, locks: bool) -> None:
    assert takes_locks(statement) == locks


def test_the_verb_is_read_past_comments_and_whatever_the_parser_cannot_read() -> None:
    assert verb("-- why\n/* who */ select 1") == "SELECT"
    assert verb("CALL refresh_totals()") == "CALL" and not read_only("CALL refresh_totals()")
    assert verb("SAVEPOINT sa_savepoint_1") == "SAVEPOINT"
    assert writes("BEGIN IMMEDIATE") and not writes("BEGIN")


# -- the gate: the access read when the statement runs, kept on the step -------------------


def test_the_gate_reads_the_orm_from_its_compiled_statement_and_text_by_parsing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sqlalchemy.orm import Session, declarative_base

    from fuzzer.execute import gates, instrument
    from fuzzer.execute.recording import Recording, RequestContext

    Base: Any = declarative_base()

    class Seat(Base):
        __tablename__ = "seats"
        id = sa.Column(sa.Integer, primary_key=True)
        holder = sa.Column(sa.String, default="")

    engine = sa.create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(Seat(id=1))
        session.commit()
    parsed: list[str] = []
    monkeypatch.setattr(sqltext, "shape", lambda text: parsed.append(text) or parse(text))
    sql.shape.cache_clear()
    with instrument.instrumented(), Recording() as recording, Session(engine) as session:
        gates._state.ctx = RequestContext(recording, "concurrent", 0)
        try:
            seat = session.get(Seat, 1)
            assert seat is not None
            seat.holder = "ann"
            session.flush()
            session.execute(
                sa.text("UPDATE seats SET holder = :h WHERE id = :i"), {"h": "bo", "i": 1}
            )
            session.commit()
        finally:
            gates._state.ctx = None
    steps = [s for s in recording.trace() if s.kind == "sql"]
    assert parsed == [steps[2].text]  # the ORM's two statements were not parsed
    assert [s.access.verb for s in steps] == ["SELECT", "UPDATE", "UPDATE"]
    orm, flush, text = steps
    assert orm.seen is not None and orm.access.filters == (("id", 1),)
    assert flush.seen is not None and flush.access.sets == (("holder", "ann"),)
    assert flush.access.key == (1,) and flush.access.write == "seats"
    assert text.seen == access(text.text, text.params)  # no compiled statement: parsed
    assert text.access.sets == (("holder", "bo"),) and text.access.key == (1,)
    assert "seen" not in text.to_json()
    assert recording.written == {"": {"seats"}}  # what a restore must cover


def test_a_core_update_of_two_tables_is_left_to_the_parser_which_reads_the_one_it_sets() -> None:
    from sqlalchemy.dialects import mysql

    metadata = sa.MetaData()
    orders = sa.Table("orders", metadata, sa.Column("id", sa.Integer, primary_key=True))
    items = sa.Table(
        "items",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("order_id", sa.Integer),
        sa.Column("status", sa.String(20)),
    )
    statement = (
        sa.update(orders)
        .where(orders.c.id == items.c.order_id, orders.c.id == 3)
        .values({items.c.status: "shipped"})
    )
    made = statement.compile(dialect=mysql.dialect())
    assert compiled.shape(SimpleNamespace(compiled=made)) is None  # UPDATE orders, items
    seen = access(str(made), "('shipped', 3)")
    assert (seen.write, seen.reads, seen.sets) == (
        "items",
        {"orders", "items"},
        (("status", "shipped"),),
    )
    assert seen.key == (3,) and written_table(str(made)) is None
