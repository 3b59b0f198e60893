"""MariaDB and PostgreSQL scratch databases: URLs, the safety guard, create/drop, restore,
and lock waits asked of the server."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from fuzzer.db import Databases
from fuzzer.db.mysql import innodb_lock_waits, state_wait
from fuzzer.db.postgres import lock_reason
from fuzzer.errors import UnsafeDatabase

from .conftest import Cli, Ran, need

# -- without a server --------------------------------------------------------------------


def connect_args(url: str) -> dict[str, Any]:
    parsed = make_url(url)
    return dict(parsed.get_dialect()().create_connect_args(parsed)[1])


def test_target_urls_carry_no_tls_and_the_isolation_level() -> None:
    mysql = Databases.open("mariadb", isolation="serializable")
    backend = mysql.backends["default"]
    backend.configure_isolation("serializable")
    args = connect_args(backend.url)
    assert args["ssl_disabled"] == "true"  # PyMySQL would build an SSL context per connect
    assert args["init_command"] == "SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE"
    assert args["database"].startswith("fuzz_")
    assert "init_command" not in connect_args(str(backend.own_url))  # the fuzzer's own

    postgres = Databases.open("postgres").backends["default"]
    postgres.configure_isolation("repeatable-read")
    args = connect_args(postgres.url)
    assert args["sslmode"] == "disable"
    assert args["options"] == "-c default_transaction_isolation=repeatable\\ read"


def test_a_named_database_gets_one_scratch_database_per_logical_name() -> None:
    databases = Databases.open("mysql+pymysql://root@127.0.0.1/fuzz_shop", ["users", "orders"])
    names = {name: b.database_key for name, b in databases.backends.items()}
    assert names == {"users": "fuzz_shop_users", "orders": "fuzz_shop_orders"}


INNODB_STATUS = """
------------
TRANSACTIONS
------------
Trx id counter 36
LIST OF TRANSACTIONS FOR EACH SESSION:
---TRANSACTION 35, ACTIVE 0 sec starting index read
mysql tables in use 1, locked 1
LOCK WAIT 2 lock struct(s), heap size 1128, 1 row lock(s)
MariaDB thread id 36, OS thread handle 140588372805312, query id 80 127.0.0.1 root Updating
UPDATE t SET v=v+10 WHERE id=1
------- TRX HAS BEEN WAITING 204388 us FOR THIS LOCK TO BE GRANTED:
RECORD LOCKS space id 6 page no 3 n bits 320 index PRIMARY of table `fuzz_x`.`t` trx id 35 \
lock_mode X locks rec but not gap waiting
Record lock, heap no 2 PHYSICAL RECORD: n_fields 4; compact format; info bits 0

------------------
---TRANSACTION 34, ACTIVE 0 sec
2 lock struct(s), heap size 1128, 1 row lock(s), undo log entries 1
MariaDB thread id 35, OS thread handle 140588373112512, query id 79 127.0.0.1 root
---TRANSACTION 40, ACTIVE 1 sec setting auto-inc lock
LOCK WAIT 1 lock struct(s), heap size 1128, 0 row lock(s)
MariaDB thread id 41, OS thread handle 1, query id 90 127.0.0.1 root update
INSERT INTO orders (customer) VALUES ('ada')
------- TRX HAS BEEN WAITING 1 SEC FOR THIS LOCK TO BE GRANTED:
TABLE LOCK table `fuzz_x`.`orders` trx id 40 lock mode AUTO-INC waiting
--------
FILE I/O
--------
""".replace("\\\n", "")


def test_innodb_status_names_each_waiting_thread_and_its_lock() -> None:
    assert innodb_lock_waits(INNODB_STATUS) == {
        36: "row lock on t (index PRIMARY, lock_mode X locks rec but not gap)",
        41: "table lock on orders (lock mode AUTO-INC)",
    }
    assert innodb_lock_waits("no monitor output") == {}


def test_lock_wait_reasons_name_the_lock_and_nothing_that_changes_between_runs() -> None:
    assert state_wait("Waiting for table metadata lock", "ALTER TABLE users ADD x INT") == (
        "metadata lock on users (Waiting for table metadata lock: ALTER TABLE users ADD x INT)"
    )
    assert state_wait("User lock", "SELECT GET_LOCK('a', 10)") == (
        "user lock (GET_LOCK) (User lock: SELECT GET_LOCK('a', 10))"
    )
    assert state_wait("Updating", "UPDATE users SET x = 1") is None
    assert state_wait("Sending data", "") is None
    assert lock_reason("relation", "AccessExclusiveLock", "users", 1) == (
        "table lock on users (AccessExclusiveLock)"
    )
    assert lock_reason("transactionid", "ShareLock", None, 1) == (
        "row lock: waits for another transaction to end (ShareLock)"
    )


# -- on the servers ----------------------------------------------------------------------


@contextlib.contextmanager
def foreign_database(alias: str) -> Iterator[str]:
    """A database whose name does not mark it as scratch, holding one precious row."""
    name = f"keep_{secrets.token_hex(3)}"
    backend = Databases.open(alias).backends["default"]
    with backend.admin() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        with backend.admin(name) as cursor:
            cursor.execute("CREATE TABLE precious (id INT PRIMARY KEY, note VARCHAR(20))")
            cursor.execute("INSERT INTO precious VALUES (1, 'keep me')")
        yield name
    finally:
        with backend.admin() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}")


def precious_rows(alias: str, name: str) -> list[tuple[Any, ...]]:
    with Databases.open(alias).backends["default"].admin(name) as cursor:
        cursor.execute("SELECT id, note FROM precious")
        return [tuple(row) for row in cursor.fetchall()]


@pytest.fixture
def run_fuzzer(cli: Cli, tmp_path: Path) -> Cli:
    """``fuzzer run ARGS --max-examples 1`` in process, in a scratch directory."""

    def run(*args: str) -> Ran:
        return cli("run", *args, "--max-examples", "1", cwd=tmp_path)

    return run  # type: ignore[return-value]


def server_url(alias: str, database: str) -> str:
    url = Databases.open(alias).spec.url.set(database=database)
    return url.render_as_string(hide_password=False)


def test_the_guard_refuses_an_existing_database_and_its_rows_stay(
    run_fuzzer: Cli, server: str
) -> None:
    with foreign_database(server) as name:
        databases = Databases.open(server_url(server, name))
        with pytest.raises(UnsafeDatabase, match=f"Refusing to use existing database '{name}'"):
            databases.create()
        databases.drop()  # what a run does on the way out: it must not touch the database
        result = run_fuzzer("targets.profile:buggy", "--db", server_url(server, name))
        assert result.returncode == 2
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(errors) == 1, result.stderr
        assert "the fuzzer deletes its rows" in errors[0]
        assert "--allow-wipe" in errors[0]
        assert precious_rows(server, name) == [(1, "keep me")]


def test_allow_wipe_empties_a_named_database_but_keeps_the_database(server: str) -> None:
    with foreign_database(server) as name:
        databases = Databases.open(server_url(server, name), allow_wipe=True)
        databases.create()
        backend = databases.backends["default"]
        with backend.admin(name) as cursor:
            cursor.execute("CREATE TABLE scratch (id INT PRIMARY KEY)")
        databases.drop()
        with backend.admin() as cursor:
            assert backend._exists(cursor, name)
        with backend.admin(name) as cursor:
            cursor.execute(
                "SHOW TABLES"
                if server == "mariadb"
                else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
            assert cursor.fetchall() in ((), [])


def test_scratch_databases_are_dropped_even_with_a_connection_left_open(server: str) -> None:
    databases = Databases.open(server)
    databases.create()
    backend = databases.backends["default"]
    name = backend.database_key
    assert name.startswith("fuzz_")
    leftover = create_engine(backend.url).connect()  # a transaction a stuck request left
    leftover.execute(text("CREATE TABLE t (id INT PRIMARY KEY)"))
    leftover.execute(text("SELECT * FROM t")).fetchall()
    try:
        databases.drop()
        with backend.admin() as cursor:
            assert not backend._exists(cursor, name)
    finally:
        with contextlib.suppress(Exception):
            leftover.close()
        leftover.engine.dispose()


def test_keep_db_keeps_the_scratch_database(server: str) -> None:
    databases = Databases.open(server, keep=True)
    databases.create()
    backend = databases.backends["default"]
    databases.drop()
    with backend.admin() as cursor:
        assert backend._exists(cursor, backend.database_key)
        cursor.execute(backend._drop_sql(backend.database_key))


@pytest.fixture
def scratch(server: str) -> Iterator[tuple[Databases, Any]]:
    """A scratch database with a parent and a child table, snapshotted; and an engine as
    the target would make it."""
    databases = Databases.open(server)
    databases.create()
    engine = create_engine(databases.backends["default"].url)
    serial = "INT AUTO_INCREMENT PRIMARY KEY" if server == "mariadb" else "SERIAL PRIMARY KEY"
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE parent (id INT PRIMARY KEY, v INT)"))
        conn.execute(text(f"CREATE TABLE child (id {serial}, parent_id INT REFERENCES parent(id))"))
        conn.execute(text("INSERT INTO parent VALUES (1, 10), (2, 20)"))
        conn.execute(text("INSERT INTO child (parent_id) VALUES (1)"))
    databases.take_snapshot()
    try:
        yield databases, engine
    finally:
        engine.dispose()
        databases.drop()


def test_restore_puts_back_rows_and_generated_keys(scratch: tuple[Databases, Any]) -> None:
    databases, engine = scratch
    initial = databases.read()
    assert initial == {"parent": ((1, 10), (2, 20)), "child": ((1, 1),)}
    for _ in range(2):
        with engine.begin() as conn:
            conn.execute(text("UPDATE parent SET v = 0"))
            conn.execute(text("INSERT INTO child (parent_id) VALUES (2)"))
            new_id = conn.execute(text("SELECT MAX(id) FROM child")).scalar()
        assert new_id == 2  # the same key every time: a replay shows the same statements
        assert databases.read() != initial
        databases.reset()
        assert databases.read() == initial


TRIGGERS = {
    "sqlite": [
        "CREATE TRIGGER audit AFTER UPDATE ON other BEGIN INSERT INTO log VALUES (NEW.v); END"
    ],
    "mariadb": [
        "CREATE TRIGGER audit AFTER UPDATE ON other FOR EACH ROW INSERT INTO log VALUES (NEW.v)"
    ],
    "postgres": [
        "CREATE FUNCTION audit() RETURNS trigger AS $$ BEGIN INSERT INTO log VALUES (NEW.v); "
        "RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER audit AFTER UPDATE ON other FOR EACH ROW EXECUTE FUNCTION audit()",
    ],
}


@pytest.mark.parametrize("db", ["sqlite", "mariadb", "postgres"])
@pytest.mark.parametrize("triggers", [False, True])
def test_a_restore_after_writes_covers_what_they_cascaded_to(db: str, triggers: bool) -> None:
    # only the written tables are restored and read again, and what changed with them:
    # rows a foreign key deleted in cascade, rows a trigger wrote
    if db != "sqlite":
        need(db)
    databases = Databases.open(db)
    databases.create()
    engine = create_engine(databases.backends["default"].url)
    try:
        with engine.begin() as conn:
            if db == "sqlite":
                conn.execute(text("PRAGMA foreign_keys = ON"))
            conn.execute(text("CREATE TABLE parent (id INT PRIMARY KEY)"))
            conn.execute(
                text(
                    "CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, FOREIGN KEY "
                    "(parent_id) REFERENCES parent(id) ON DELETE CASCADE)"
                )
            )
            conn.execute(text("CREATE TABLE other (id INT PRIMARY KEY, v INT)"))
            conn.execute(text("CREATE TABLE log (v INT)"))
            for statement in TRIGGERS[db] if triggers else []:
                conn.exec_driver_sql(statement)
            conn.execute(text("INSERT INTO parent VALUES (1)"))
            conn.execute(text("INSERT INTO child VALUES (1, 1)"))
            conn.execute(text("INSERT INTO other VALUES (1, 10)"))
        databases.take_snapshot()
        initial = databases.read()
        with engine.begin() as conn:
            if db == "sqlite":
                conn.execute(text("PRAGMA foreign_keys = ON"))
            conn.execute(text("DELETE FROM parent"))  # the child goes with it
            conn.execute(text("UPDATE other SET v = 11"))  # a trigger may log it
        written = {"default": {"parent", "other"}}
        changed = databases.read(written)
        assert changed["child"] == ()  # read again, not taken from the snapshot
        assert changed["log"] == (((11,),) if triggers else ())
        assert changed == databases.read()
        databases.reset(written)
        assert databases.read() == initial
    finally:
        engine.dispose()
        databases.drop()


def test_the_read_connection_sees_each_commit(scratch: tuple[Databases, Any]) -> None:
    databases, engine = scratch
    databases.read()
    with engine.begin() as conn:
        conn.execute(text("UPDATE parent SET v = 11 WHERE id = 1"))
    assert databases.read()["parent"][0] == (1, 11)  # no snapshot kept across reads


def wait_for(condition: Any, seconds: float = 3.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    return condition()


def test_the_probe_sees_row_and_metadata_lock_waits_and_breaks_them(
    scratch: tuple[Databases, Any],
) -> None:
    databases, engine = scratch
    probe = databases.lock_probe()
    assert probe is not None
    holder, waiter = engine.connect(), engine.connect()
    outcome: list[str] = []

    def wait_in(statement: str) -> threading.Thread:
        def run() -> None:
            try:
                waiter.execute(text(statement))
                outcome.append("done")
            except Exception as exc:
                outcome.append(type(exc).__name__)
            waiter.rollback()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    dbapi = waiter.connection.dbapi_connection
    try:
        holder.execute(text("UPDATE parent SET v = 1 WHERE id = 1"))
        assert probe.waiting([dbapi]) is None  # idle: not waiting
        thread = wait_in("UPDATE parent SET v = 2 WHERE id = 1")
        why = wait_for(lambda: probe.waiting([dbapi]))
        assert why is not None and "row lock" in why
        if databases.dialect == "mysql":
            assert why == "row lock on parent (index PRIMARY, lock_mode X locks rec but not gap)"
        probe.break_waits([dbapi])
        thread.join(3)
        assert outcome == ["OperationalError"]  # interrupted / canceled, not granted
        holder.rollback()

        holder.execute(text("SELECT * FROM parent")).fetchall()  # an open transaction
        thread = wait_in("ALTER TABLE parent ADD COLUMN w INT")
        why = wait_for(lambda: probe.waiting([dbapi]))
        expected = (
            "metadata lock on parent (Waiting for table metadata lock"
            if databases.dialect == "mysql"
            else "table lock on parent (AccessExclusiveLock)"
        )
        assert why is not None and why.startswith(expected)
        holder.rollback()  # the DDL goes through once the transaction ends
        thread.join(3)
        assert outcome[-1] == "done"
    finally:
        holder.close()
        waiter.close()


def test_every_description_records_version_level_and_settings(server: str) -> None:
    databases = Databases.open(server, isolation="read-committed")
    databases.create()
    try:
        databases.take_snapshot()
        info = databases.describe()
    finally:
        databases.drop()
    assert info["isolation_level"] == "READ COMMITTED"
    assert info["isolation"] == "read-committed"
    if server == "mariadb":
        assert info["server_version"].startswith("MariaDB ")
        assert {"innodb_lock_wait_timeout", "innodb_snapshot_isolation"} <= set(info["settings"])
        assert any("SHOW ENGINE INNODB STATUS" in note for note in info["notes"])
    else:
        assert info["server_version"].startswith("PostgreSQL ")
        assert info["settings"]["default_transaction_isolation"] == "read committed"


def test_an_unreachable_server_is_one_clear_error(run_fuzzer: Cli) -> None:
    # nothing listens on port 1
    result = run_fuzzer(
        "targets.profile:buggy", "--db", "postgresql+psycopg://postgres@127.0.0.1:1"
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("error: Cannot connect to PostgreSQL at 127.0.0.1:1 as postgres")
    assert "start the server or correct --db" in errors[0]


def test_restore_ends_a_transaction_a_stuck_request_left_holding_locks(
    scratch: tuple[Databases, Any],
) -> None:
    databases, engine = scratch
    backend = databases.backends["default"]
    backend.own_lock_timeout = 1
    backend.close()  # the fuzzer's own connections take the new timeout
    stuck = engine.connect()
    stuck.execute(text("UPDATE parent SET v = 0 WHERE id = 1"))  # never committed
    try:
        databases.reset()  # waits 1 s for the row lock, ends that transaction, restores
        assert databases.read()["parent"] == ((1, 10), (2, 20))
    finally:
        with contextlib.suppress(Exception):
            stuck.close()


def test_a_driver_waiting_on_its_socket_is_not_blocked_in_python() -> None:
    # PyMySQL reads replies through socket.SocketIO.readinto: a slow COMMIT waits there,
    # and must not be taken for a request blocked on a Python lock
    import socket

    from fuzzer.execute.scheduler import _in_library

    left, right = socket.socketpair()
    lock = threading.Lock()
    lock.acquire()
    reader = threading.Thread(target=lambda: left.makefile("rb").read(1))
    locked = threading.Thread(target=lambda: lock.acquire(timeout=5))
    reader.start()
    locked.start()
    try:
        time.sleep(0.1)
        assert reader.ident is not None and locked.ident is not None
        assert _in_library(reader.ident)
        assert not _in_library(locked.ident)
    finally:
        right.sendall(b"x")
        lock.release()
        reader.join(5)
        locked.join(5)
        left.close()
        right.close()
