"""The fuzzer deletes rows: what keeps it off data that is not its own, and what it leaves
behind when it is killed (issue 14). Real databases, real files, the real command line."""

from __future__ import annotations

import ast
import contextlib
import os
import secrets
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, cast

import pytest

from fuzzer.db import Databases
from fuzzer.db.clean import _server, clean
from fuzzer.db.owner import Owner
from fuzzer.db.url import guard_name, parse
from fuzzer.errors import DatabaseError, UnsafeDatabase
from fuzzer.findings import Finding
from fuzzer.model import Gene, Request, Scenario
from fuzzer.report.regression import regression_test
from fuzzer.report.text import curl_chain
from fuzzer.report.writer import reproduce_lines, shown

from .conftest import Cli, Ran, need

ROOT = Path(__file__).resolve().parent.parent
FUZZER = [sys.executable, "-m", "fuzzer"]
# tests that sweep or keep marked databases run one after another (on one xdist worker):
# a sweep in one would remove what another is looking at
SWEEPS = pytest.mark.xdist_group("sweeps")


@pytest.fixture
def fuzzer(cli: Cli, tmp_path: Path) -> Cli:
    """The command line in process, in a scratch directory."""

    def run(*args: str, env: dict[str, str] | None = None) -> Ran:
        return cli(*args, cwd=tmp_path, env=env)

    return run  # type: ignore[return-value]


def real_process(tmp_path: Path) -> dict[str, Any]:
    """Where a real ``python -m fuzzer`` runs: a scratch directory, this checkout importable."""
    return {"cwd": tmp_path, "env": {**os.environ, "PYTHONPATH": str(ROOT)}}


def one_error(result: Ran) -> str:
    """The single error line of a run that exited 2, without a traceback."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return " ".join(result.stderr.split())


# -- the loopback guard reads the whole URL (item 2) -------------------------------------
# 192.0.2.x is TEST-NET-1: nothing answers there; the guard must refuse before connecting.

REDIRECTING = [
    "postgresql+psycopg://postgres@/?host=192.0.2.1",
    "postgresql+psycopg://postgres@/fuzz_x?host=192.0.2.1",
    "postgresql+psycopg://postgres@127.0.0.1/fuzz_x?host=192.0.2.1",
    "postgresql+psycopg://postgres@127.0.0.1/fuzz_x?host=127.0.0.1,192.0.2.1",
    "postgresql+psycopg://postgres@/fuzz_x?host=127.0.0.1:5432&host=192.0.2.1:5432",
    "postgresql+psycopg://postgres@127.0.0.1/fuzz_x?hostaddr=192.0.2.1",
    "postgresql+psycopg://postgres@127.0.0.1/fuzz_x?service=production",
    "postgresql+psycopg://postgres@127.0.0.1/fuzz_x?dbname=production",
    "mysql+pymysql://root@/?host=192.0.2.1",
    "mysql+pymysql://root@127.0.0.1/fuzz_x?host=192.0.2.1",
    "mysql+pymysql://root@127.0.0.1/fuzz_x?read_default_file=/etc/prod.cnf",
    "mysql+pymysql://root@127.0.0.1/fuzz_x?database=production",
    "mysql+pymysql://root@127.0.0.1/fuzz_x?unix_socket=relative.sock",
    "mysql+pymysql://root@db.example.invalid/fuzz_x",  # a name: refused, never looked up
    "postgresql+psycopg://postgres@127.0.0.1/fuzz_x?host=db.example.invalid",
]


@pytest.mark.parametrize("url", REDIRECTING)
def test_a_query_that_may_send_the_connection_elsewhere_is_refused(url: str) -> None:
    with pytest.raises(UnsafeDatabase, match="Refusing"):
        parse(url, environment={})


@pytest.mark.parametrize(
    "url",
    [
        "mysql+pymysql://root@127.0.0.1:3306/fuzz_x?charset=utf8mb4&connect_timeout=3",
        "mysql+pymysql://root@/fuzz_x?unix_socket=/run/mysqld/mysqld.sock",
        "mysql+pymysql://root@localhost/fuzz_x?host=127.0.0.1&port=3306",
        "postgresql+psycopg://postgres@/fuzz_x?host=/var/run/postgresql",
        "postgresql+psycopg://postgres@127.0.0.1/fuzz_x?sslmode=disable&application_name=a",
        "postgresql+psycopg://postgres@/fuzz_x?host=127.0.0.1:5432&host=localhost:5433",
        "postgresql+psycopg://postgres@127.0.0.1/fuzz_x?hostaddr=127.0.0.1",
    ],
)
def test_harmless_and_loopback_query_parameters_pass(url: str) -> None:
    parse(url, environment={})


@pytest.mark.parametrize(
    ("url", "environment"),
    [
        ("postgresql+psycopg://postgres@/fuzz_x", {"PGHOST": "192.0.2.1"}),
        ("postgresql+psycopg://postgres@127.0.0.1/fuzz_x", {"PGHOSTADDR": "192.0.2.1"}),
        ("postgresql+psycopg://postgres@127.0.0.1/fuzz_x", {"PGSERVICE": "production"}),
    ],
)
def test_libpq_environment_that_may_send_the_connection_elsewhere_is_refused(
    url: str, environment: dict[str, str]
) -> None:
    parse(url, environment={})  # the URL alone is fine
    with pytest.raises(UnsafeDatabase, match=r"environment|unset"):
        parse(url, environment=environment)


def test_a_redirecting_query_is_one_line_and_exit_2_before_any_connection(fuzzer: Cli) -> None:
    result = fuzzer(
        "run", "targets.profile:buggy", "--db", "mysql+pymysql://root@127.0.0.1/?host=192.0.2.1"
    )
    assert "Refusing query parameter host='192.0.2.1'" in one_error(result)


# -- SQLite files are judged by what they are (item 10) ----------------------------------


def shop(directory: Path) -> Path:
    path = directory / "shop.db"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, note TEXT)")
        conn.execute("INSERT INTO orders VALUES (1, 'keep me')")
    return path


def orders(path: Path) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT * FROM orders").fetchall()


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_a_scratch_name_pointing_at_a_real_database_is_refused(
    fuzzer: Cli, tmp_path: Path, link: str
) -> None:
    real = shop(tmp_path)
    alias = tmp_path / "fuzz_alias.db"
    (os.symlink if link == "symlink" else os.link)(real, alias)
    databases = Databases.open(f"sqlite:///{alias}")
    with pytest.raises(UnsafeDatabase, match="shop.db" if link == "symlink" else "hard links"):
        databases.create()
    databases.drop()
    result = fuzzer("run", "tests.fixtures.hostile:quiet", "--db", f"sqlite:///{alias}")
    assert "Refusing to use existing" in one_error(result)
    assert orders(real) == [(1, "keep me")]


# -- a database in use by another run is refused (item 12) -------------------------------


def named(db: str) -> str:
    """A database (or file) name of its own for one test."""
    name = f"fuzz_lock_{secrets.token_hex(3)}"
    if db == "sqlite":
        return f"sqlite:///{Path(os.environ.get('TMPDIR', '/tmp')) / name}.db"
    url = Databases.open(db).spec.url.set(database=name)
    return url.render_as_string(hide_password=False)


@pytest.mark.parametrize("db", ["sqlite", "mariadb", "postgres"])
def test_a_second_run_on_the_same_database_is_refused(fuzzer: Cli, db: str) -> None:
    if db != "sqlite":
        need(db)
    url = named(db)
    first = Databases.open(url)
    first.create()
    try:
        second = Databases.open(url)
        with pytest.raises(DatabaseError, match="in use by another fuzzer run"):
            second.create()
        second.drop()  # what a refused run does on its way out: nothing to the first's
        result = fuzzer("run", "tests.fixtures.hostile:quiet", "--db", url, "-n", "1")
        assert "is in use by another fuzzer run" in one_error(result)
        backend = first.backends["default"]
        with backend.engine.begin() as conn:  # the first run's database is still its own
            conn.exec_driver_sql("CREATE TABLE mine (id INT PRIMARY KEY)")
        first.take_snapshot()
        assert first.read() == {"mine": ()}
    finally:
        first.drop()
    again = Databases.open(url)
    again.create()  # free once the first run ended
    again.drop()


@pytest.mark.parametrize("db", ["mariadb", "postgres"])
def test_a_run_s_lock_is_released_before_its_connection_closes(db: str) -> None:
    # the server ends a closed connection's locks when it gets to it, not when the
    # client closes: a run started right after another on the same database was refused
    # under load. Its connection's close deferred, the lock must already be free.
    need(db)
    url = named(db)
    first = Databases.open(url)
    first.create()
    holder = first.backends["default"]._lock
    close, holder.close = holder.close, lambda: None  # the server has not got to it yet
    try:
        first.drop()
        again = Databases.open(url)
        again.create()  # refused before: "in use by another fuzzer run"
        again.drop()
    finally:
        close()


# -- what a dead run leaves, and fuzzer clean (items 7, 11) ------------------------------


def left_by(db: str, pid: int) -> list[tuple[str, Owner]]:
    return [(place, owner) for place, owner in _server(db, False)[1] if owner.pid == pid]


@pytest.mark.slow
@SWEEPS
@pytest.mark.parametrize("db", ["sqlite", "mariadb", "postgres"])
def test_a_run_ended_by_os_exit_leaves_marked_databases_that_clean_removes(
    fuzzer: Cli, db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if db != "sqlite":
        need(db)
    where = real_process(tmp_path)
    if db == "sqlite":  # a temporary directory of its own: no other run sweeps it first
        scratch = tmp_path / "tmp"
        scratch.mkdir()
        where["env"]["TMPDIR"] = str(scratch)
        monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    command = [sys.executable, "-m", "fuzzer", "run", "tests.fixtures.hostile:exits"]
    process = subprocess.Popen(  # a real process: the target ends it with os._exit
        [*command, "--db", db, "-n", "1", "--no-progress"],
        **where,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.communicate(timeout=120)
    assert process.returncode == 7  # the target's exit status: nothing could run after it
    ((place, owner),) = left_by(db, process.pid)
    assert owner.alive() is False and not owner.kept
    listed = list(clean([db], dry_run=True))
    assert any(line.startswith(f"Would remove {place} ") for line in listed), listed
    assert left_by(db, process.pid)  # a dry run removes nothing
    if db == "sqlite":  # the command itself, once
        result = fuzzer("clean", "--db", db)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
    else:
        lines = list(clean([db]))
    (removed,) = [line for line in lines if line.startswith(f"Removed {place} ")]
    assert f"its run is gone (pid {process.pid} on " in removed
    assert left_by(db, process.pid) == []
    if db == "sqlite":
        assert not os.path.exists(place)


@SWEEPS
def test_the_next_run_sweeps_what_a_dead_run_left(
    fuzzer: Cli, mariadb: str, tmp_path: Path
) -> None:
    process = subprocess.Popen(  # a real process: the target ends it with os._exit
        [sys.executable, "-m", "fuzzer", "run", "tests.fixtures.hostile:exits", "--db", mariadb],
        **real_process(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert process.wait(timeout=120) == 7
    ((name, _),) = left_by(mariadb, process.pid)
    result = fuzzer("run", "tests.fixtures.hostile:quiet", "--db", mariadb, "-n", "1")
    assert result.returncode == 0, result.stderr
    removed = (
        f"Removed scratch database '{name}' on MariaDB/MySQL at 127.0.0.1:3306, left by a "
        f"run that died (pid {process.pid} on "
    )
    # every run on the server sweeps at its start: a run of a test on another xdist
    # worker may have swept it a moment before this one did (then it is gone all the
    # same; without any sweep it would still be there)
    places = [place for place, _ in _server(mariadb, False)[1]]
    assert removed in result.stdout or name not in places
    assert left_by(mariadb, process.pid) == []


def test_a_named_database_that_does_not_exist_yet_is_created(server: str) -> None:
    url = named(server)  # fuzz_lock_…: no such database yet
    databases = Databases.open(url)
    databases.create()  # connects to the server without the database, then creates it
    backend = databases.backends["default"]
    assert backend.created
    databases.drop()
    with backend.admin() as cursor:
        assert not backend._exists(cursor, backend.database_key)


@pytest.mark.slow
@SWEEPS
@pytest.mark.parametrize("db", ["sqlite", "mariadb", "postgres"])
def test_keep_db_names_what_it_kept_and_clean_leaves_it_unless_asked(
    db: str, tmp_path: Path
) -> None:
    if db != "sqlite":
        need(db)
    result = subprocess.run(  # a real process: what it kept is owned by a run that ended
        [*FUZZER, "run", "tests.fixtures.hostile:quiet", "--db", db, "-n", "1", "--keep-db"],
        **real_process(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    kept = [line for line in result.stdout.splitlines() if line.startswith("Kept the scratch")]
    assert len(kept) == 1, result.stdout
    mine = [(place, owner) for place, owner in _server(db, False)[1] if owner.kept]
    places = [place for place, _ in mine if os.path.basename(place) in kept[0]]
    assert len(places) == 1, (kept, mine)
    if db == "sqlite":
        assert os.path.exists(kept[0].split()[4])  # the file it names
    left = list(clean([db]))
    assert any(
        line.startswith(f"Left {places[0]} ") and "kept with --keep-db" in line for line in left
    )
    removed = list(clean([db], include_kept=True))
    assert any(line.startswith(f"Removed {places[0]} ") for line in removed), removed


# -- scratch names need a separator; emptied tables are named (item 8) --------------------


@pytest.mark.parametrize(
    ("name", "scratch"),
    [
        ("testimonials_rel", False),
        ("fuzzy", False),
        ("tests", False),
        ("test", True),
        ("fuzz_shop", True),
        ("test-shop", True),
        ("test_shop.db", True),
        ("fuzz.sqlite", True),
    ],
)
def test_only_names_with_a_separator_mark_a_database_as_scratch(name: str, scratch: bool) -> None:
    if scratch:
        guard_name(name, exists=True, allow_wipe=False, spec="x")
    else:
        with pytest.raises(UnsafeDatabase, match=f"Refusing to use existing database '{name}'"):
            guard_name(name, exists=True, allow_wipe=False, spec="x")


def test_an_emptied_database_is_named_with_its_tables(fuzzer: Cli, tmp_path: Path) -> None:
    path = tmp_path / "test_shop.db"
    os.rename(shop(tmp_path), path)
    result = fuzzer("run", "tests.fixtures.hostile:quiet", "--db", f"sqlite:///{path}", "-n", "1")
    assert result.returncode == 0, result.stderr
    assert f"Emptied existing SQLite database {path}: dropped orders" in result.stdout
    assert "--allow-wipe" not in result.stdout


def test_allow_wipe_says_which_tables_the_target_never_knew(server: str) -> None:
    name = f"keep_{secrets.token_hex(3)}"
    admin = Databases.open(server).backends["default"]
    with admin.admin() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        with admin.admin(name) as cursor:
            cursor.execute("CREATE TABLE precious (id INT PRIMARY KEY)")
            cursor.execute("CREATE TABLE ledger (id INT PRIMARY KEY)")
        url = Databases.open(server).spec.url.set(database=name)
        databases = Databases.open(url.render_as_string(hide_password=False), allow_wipe=True)
        databases.create()
        databases.drop()
        (notice,) = databases.notices
        assert f"Emptied existing database '{name}'" in notice
        assert "dropped ledger, precious (--allow-wipe:" in notice
        assert "not the target's" in notice or "before the target's setup" in notice
    finally:
        with admin.admin() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}")


def test_allow_wipe_never_empties_the_server_s_own_databases(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --allow-wipe on mysql (its accounts) or template1 (every new database's tables) would
    # break the server for everyone on it: refused whatever the flag says
    system = "mysql" if server == "mariadb" else "template1"
    url = Databases.open(server).spec.url.set(database=system)
    databases = Databases.open(url.render_as_string(hide_password=False), allow_wipe=True)
    backend = databases.backends["default"]
    emptied: list[str] = []
    monkeypatch.setattr(backend, "_drop_tables", lambda: emptied.append(system) or [])
    try:
        with pytest.raises(UnsafeDatabase, match=f"'{system}' is the server's own"):
            databases.create()
    finally:
        databases.drop()
    assert emptied == []


def test_an_unknown_database_is_not_told_to_start_the_server(server: str) -> None:
    backend = Databases.open(server).backends["default"]
    missing = f"fuzz_missing_{secrets.token_hex(3)}"
    with pytest.raises(DatabaseError) as error:
        backend.connect(missing)
    message = str(error.value)
    assert f"database '{missing}' does not exist there" in message
    assert "start the server" not in message


# -- passwords: reports mask them, so say how to give them (item 8) ----------------------


def test_a_masked_password_says_to_pass_the_url() -> None:
    with pytest.raises(DatabaseError, match="FUZZER_DB"):
        parse("mysql+pymysql://root:***@127.0.0.1:3306/fuzz_x")


def test_the_database_url_may_come_from_the_environment(fuzzer: Cli) -> None:
    result = fuzzer(
        "run",
        "tests.fixtures.hostile:quiet",
        "-n",
        "1",
        env={"FUZZER_DB": "mysql+pymysql://root@192.0.2.7:3306/fuzz_x"},
    )
    assert "Refusing database host '192.0.2.7'" in one_error(result)


def crafted_finding(endpoint: str) -> Finding:
    request = Request(endpoint=endpoint, method="GET", path="/")
    scenario = Scenario(init=(), requests=(request,), schedule=(Gene(),), observers=())
    none = cast(Any, None)
    return Finding("lost-update", (endpoint,), "", scenario, none, None, none)


def test_reproduce_lines_say_how_to_give_a_password_reports_do_not_keep() -> None:
    finding = crafted_finding("GET /")
    lines = reproduce_lines(finding, "r/01.json", "r/test_01.py", password=True)
    assert "FUZZER_DB" in lines[0] and lines[1] == "fuzzer replay r/01.json"
    assert not any("FUZZER_DB" in line for line in reproduce_lines(finding, "r/01.json", None))


def test_report_paths_are_relative_from_a_symlinked_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "real"
    (real / "reports").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(real)
    monkeypatch.chdir(link)
    # "$PWD/reports" as a shell spells it: through the symlink
    assert shown(str(link / "reports" / "r1")) == os.path.join("reports", "r1")


# -- curl lines send what each identity sends (item 8) -----------------------------------


def test_curl_lines_send_each_identity_what_it_sends() -> None:
    requests = [
        Request("GET /", "GET", "/", identity="alice"),
        Request("GET /", "GET", "/", identity="service"),
        Request("GET /", "GET", "/", identity="visitor"),
    ]
    identities = {"alice": ("Cookie",), "service": ("Authorization",), "visitor": ()}
    alice, service, visitor = curl_chain(requests, identities=identities).split(" && ")
    assert "-H 'Cookie: <alice'\"'\"'s session>'" in alice
    assert "Authorization: <service" in service and "Cookie" not in service
    assert visitor == "curl -sS -X GET http://127.0.0.1:5000/"


# -- the generated regression test is source that runs nothing it was given (item 9) -----


@pytest.mark.slow
def test_a_crafted_endpoint_name_cannot_run_code_in_the_regression_test(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    crafted = (
        f'GET /x"""\nimport pathlib; pathlib.Path({str(marker)!r}).write_text("x")\n"""' + "\\"
    )
    source = regression_test(
        crafted_finding(crafted), target="targets.profile:buggy", db="sqlite", isolation=None
    )
    module = ast.parse(source)
    docstring = ast.get_docstring(module) or ""
    assert crafted in docstring  # the name is shown as it is, as text
    assert [type(node).__name__ for node in module.body] == [
        "Expr",
        "Import",
        "ImportFrom",
        "Assign",
        "Assign",
        "Assign",
        "FunctionDef",
    ]
    path = tmp_path / "test_crafted.py"
    path.write_text(source, encoding="utf-8")
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", path],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert "1 test collected" in collected.stdout
    assert not marker.exists()


def test_the_regression_test_reads_the_database_from_the_environment(tmp_path: Path) -> None:
    source = regression_test(
        crafted_finding("GET /"), target="t:x", db="postgres", isolation="serializable"
    )
    namespace: dict[str, Any] = {}
    os.environ["FUZZER_DB"] = "postgresql+psycopg://postgres:secret@127.0.0.1/fuzz_x"
    try:
        exec(compile(source, "test_generated.py", "exec"), namespace)
    finally:
        del os.environ["FUZZER_DB"]
    assert namespace["DB"] == "postgresql+psycopg://postgres:secret@127.0.0.1/fuzz_x"
    exec(compile(source, "test_generated.py", "exec"), namespace)
    assert namespace["DB"] == "postgres"


# -- clean and the sweep: a scratch NAME and a dead marker of this host (issue 21, 7) -----


def dead_owner(host: str | None = None) -> Owner:
    """The marker of a run whose process has ended (on this host unless ``host``)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"], cwd=os.path.dirname(ROOT))
    process.wait(timeout=60)
    from fuzzer.db.owner import this_host

    return Owner(host or this_host(), process.pid, 1.0)


def marked_database(db: str, name: str, owner: Owner) -> Any:
    """Create ``name`` on the server of ``db`` carrying ``owner``'s marker; its backend."""
    from fuzzer.db.scratch import ServerBackend

    backend = Databases.open(db).backends["default"]
    assert isinstance(backend, ServerBackend)
    with backend.admin() as cursor:
        backend.server_version = backend._version(cursor)
        cursor.execute(backend._drop_sql(name))
        cursor.execute(backend._create_sql(name))
        backend._mark(cursor, name, owner)
    return backend


def exists(backend: Any, name: str) -> bool:
    with backend.admin() as cursor:
        return bool(backend._exists(cursor, name))


@SWEEPS
def test_a_marked_database_whose_name_is_not_a_scratch_name_is_left_by_clean_and_sweep(
    server: str,
) -> None:
    if server == "mariadb":
        pytest.importorskip("pymysql")
    names = {
        "shop": f"shop_{secrets.token_hex(4)}",  # a user's database with a copied comment
        "renamed": f"bug42_{secrets.token_hex(4)}",  # a kept one, renamed by its user
        "elsewhere": f"fuzz_{secrets.token_hex(4)}",  # another host's run
        "dead": f"fuzz_{secrets.token_hex(4)}",  # the one that goes
    }
    owners = {
        "shop": dead_owner(),
        "renamed": dead_owner().as_kept(),
        "elsewhere": dead_owner(host="build-agent-7.example"),
        "dead": dead_owner(),
    }
    backend = None
    try:
        for key, name in names.items():
            backend = marked_database(server, name, owners[key])
        assert backend is not None
        lines = list(clean([server], include_kept=True))
        left = {key: [line for line in lines if f" {name} " in line] for key, name in names.items()}
        assert left["shop"][0].startswith(f"Left {names['shop']} "), lines
        assert "its name is not one the fuzzer gives" in left["shop"][0]
        assert left["renamed"][0].startswith(f"Left {names['renamed']} "), lines
        assert left["elsewhere"][0].startswith(f"Left {names['elsewhere']} "), lines
        assert "on build-agent-7.example" in left["elsewhere"][0]
        assert "its run is on another host" in left["elsewhere"][0]
        assert left["dead"][0].startswith(f"Removed {names['dead']} "), lines
        assert exists(backend, names["shop"]) and exists(backend, names["renamed"])
        assert exists(backend, names["elsewhere"]) and not exists(backend, names["dead"])
        # the sweep a run does at its start leaves them too
        assert not any(names["shop"] in line for line in backend.sweep())
        assert exists(backend, names["shop"]) and exists(backend, names["elsewhere"])
    finally:
        if backend is not None:
            with backend.admin() as cursor:
                for name in names.values():
                    cursor.execute(backend._drop_sql(name))


def test_an_sqlite_directory_renamed_or_of_another_host_is_left(tmp_path: Path) -> None:
    from fuzzer.db import sqlite as sqlite_db

    places = {}
    for key, name, owner in [
        ("renamed", "fuzz-kept_for_bug_42", dead_owner().as_kept()),
        ("elsewhere", "fuzz-abcd1234", dead_owner(host="build-agent-7.example")),
        ("dead", "fuzz-efgh5678", dead_owner()),
    ]:
        directory = tmp_path / name
        directory.mkdir()
        (directory / f"fuzz_default.sqlite{sqlite_db.LOCK_SUFFIX}").write_text(owner.text())
        places[key] = (str(directory), owner)
    outcomes = {
        key: sqlite_db.remove_if_dead(place, owner, include_kept=True)
        for key, (place, owner) in places.items()
    }
    assert outcomes == {"renamed": "not scratch", "elsewhere": "elsewhere", "dead": "removed"}
    assert os.path.isdir(places["renamed"][0]) and os.path.isdir(places["elsewhere"][0])
    assert not os.path.exists(places["dead"][0])


@pytest.mark.parametrize(
    ("given", "dialect", "driver"),
    [
        ("postgres://postgres@127.0.0.1:5432/fuzz_x", "postgresql", "postgresql+psycopg"),
        ("postgresql://postgres@127.0.0.1/fuzz_x", "postgresql", "postgresql+psycopg"),
        ("mysql://root@127.0.0.1:3306/fuzz_x", "mysql", "mysql+pymysql"),
        ("mariadb://root@127.0.0.1:3306/fuzz_x", "mysql", "mysql+pymysql"),
    ],
)
def test_a_url_that_names_no_driver_gets_the_one_the_fuzzer_speaks(
    given: str, dialect: str, driver: str
) -> None:
    # postgres:// is what many hosts and .env files write; it was "Unsupported database"
    spec = parse(given, environment={})
    assert (spec.dialect, spec.url.drivername, spec.database) == (dialect, driver, "fuzz_x")
