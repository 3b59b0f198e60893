"""What the findings read off a recorded statement, on each driver's parameter style."""

from __future__ import annotations

import pytest

from fuzzer.sql import access, read_only, written_table


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
