"""Database servers for the tests that need them: skip, saying why, when one is down."""

from __future__ import annotations

import functools

import pytest

from fuzzer.db import Databases
from fuzzer.errors import DatabaseError

SERVERS = {"mariadb": "MariaDB at 127.0.0.1:3306", "postgres": "PostgreSQL at 127.0.0.1:5432"}


@functools.cache
def unavailable(alias: str) -> str:
    """Why the local server behind ``alias`` cannot be used ("" when it can)."""
    backend = Databases.open(alias).backends["default"]
    try:
        with backend.admin() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return str(exc)
    return ""


def need(alias: str) -> str:
    """Skip the calling test, with the reason, unless the server behind ``alias`` is up."""
    why = unavailable(alias)
    if why:
        pytest.skip(f"{SERVERS[alias]} is not available ({why}); .ci/run starts it")
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
