"""What the tests share: the database servers and Redis (skip, saying why, when one is
down; fail instead under ``FUZZER_REQUIRE_SERVERS=1``, as CI runs), a Redis database
claimed per test, the command line run in process, and ``--update-golden``."""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from fuzzer.db import Databases
from fuzzer.errors import DatabaseError

from .catalog import CatalogRuns

SERVERS = {
    "mariadb": "MariaDB at 127.0.0.1:3306",
    "postgres": "PostgreSQL at 127.0.0.1:5432",
    "redis": "Redis at 127.0.0.1:6379",
}
REQUIRE_SERVERS = "FUZZER_REQUIRE_SERVERS"  # "1": a server that is down fails the test


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden from what the code prints now (make golden), then review "
        "the diff",
    )


def servers_required() -> bool:
    return os.environ.get(REQUIRE_SERVERS, "") not in ("", "0")


def down(server: str, why: str) -> None:
    """Skip the calling test because ``server`` is down, saying why; fail it instead when
    the servers are required (CI must not be green having tested no server)."""
    message = f"{SERVERS.get(server, server)} is not available ({why}); .ci/run starts it"
    if servers_required():
        pytest.fail(f"{message} [{REQUIRE_SERVERS}=1]", pytrace=False)
    pytest.skip(message)


@functools.cache
def unavailable(alias: str) -> str:
    """Why the local server behind ``alias`` cannot be used ("" when it can)."""
    if alias == "redis":
        return _redis_down()
    backend = Databases.open(alias).backends["default"]
    try:
        with backend.admin() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return str(exc)
    return ""


def _redis_down() -> str:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        return str(exc)
    finally:
        client.close()
    return ""


def need(alias: str) -> str:
    """Skip the calling test, with the reason, unless the server behind ``alias`` is up."""
    why = unavailable(alias)
    if why:
        down(alias, why)
    return alias


@pytest.fixture(params=["mariadb", "postgres"])
def server(request: pytest.FixtureRequest) -> str:
    """Each database server in turn."""
    return need(request.param)


@pytest.fixture
def mariadb() -> str:
    return need("mariadb")


@pytest.fixture
def postgres() -> str:
    return need("postgres")


@pytest.fixture
def redis_db() -> Iterator[str]:
    """A Redis database of its own, as ``redis://127.0.0.1:6379/N``: claimed the way the
    fuzzer claims its scratch database (a marker key set only in an empty database, or in
    one whose claimant process is gone), so tests running in parallel, and anyone else's
    data, are never flushed. Released (flushed, if still ours) afterwards."""
    need("redis")
    from fuzzer.execute.stores.scratch import RedisScratch

    scratch = RedisScratch.open()
    try:
        yield scratch.url
    finally:
        scratch.release()


@pytest.fixture(scope="session")
def catalog_runs(tmp_path_factory: pytest.TempPathFactory) -> CatalogRuns:
    """Each catalog story's buggy run on each database, made once per test session."""
    return CatalogRuns(tmp_path_factory.mktemp("catalog"))


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


# -- the command line, in process -------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    """What a command printed and its exit code (the fields of ``CompletedProcess``)."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class Cli:
    """``fuzzer ARGS`` run in this process with click's CliRunner: the same exit codes and
    output as ``python -m fuzzer ARGS`` without starting Python (a real process only where
    one is the point: signals, a closed stdout, a target that exits)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch

    def __call__(
        self, *args: str, cwd: Path | str | None = None, env: Mapping[str, str] | None = None
    ) -> Ran:
        from click.testing import CliRunner

        from fuzzer.cli.commands import main
        from fuzzer.search import interrupt

        if cwd is not None:
            self._monkeypatch.chdir(cwd)
        terminate = signal.getsignal(signal.SIGTERM)
        try:
            result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        finally:
            signal.signal(signal.SIGTERM, terminate)  # the command installs its own
            interrupt.clear()
        return Ran(tuple(args), result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(monkeypatch)
