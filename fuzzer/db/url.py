"""Database URLs: the ``--db`` spellings, and the safety guard every URL passes.

The fuzzer deletes rows. It only touches databases on this machine's loopback
interface, and only databases it creates itself or whose name marks them as
scratch (``fuzz…``, ``test…``), unless the user says ``--allow-wipe``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ..errors import DatabaseError, UnsafeDatabase

ALIASES = {
    "sqlite": "sqlite://",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306",
    "postgres": "postgresql+psycopg://postgres@127.0.0.1:5432",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432",
}
DIALECTS = {"sqlite": "sqlite", "mysql": "mysql", "mariadb": "mysql", "postgresql": "postgresql"}
DRIVERS = {"sqlite": ("pysqlite", ""), "mysql": ("pymysql",), "postgresql": ("psycopg",)}
SCRATCH_NAME = re.compile(r"^(fuzz|test)", re.IGNORECASE)


@dataclass(frozen=True)
class DatabaseSpec:
    """A parsed ``--db`` value."""

    dialect: str  # "sqlite" | "mysql" | "postgresql"
    url: URL  # the server (or file) URL, database part as given
    database: str | None  # the database (or SQLite file) the user named, if any

    @property
    def safe_url(self) -> str:
        """The URL without its password, for reports."""
        return self.url.render_as_string(hide_password=True)


def parse(spec: str) -> DatabaseSpec:
    """Parse ``--db``: an alias (sqlite, mysql, mariadb, postgres) or a SQLAlchemy URL."""
    text = ALIASES.get(spec.strip().lower(), spec.strip())
    try:
        url = make_url(text)
    except ArgumentError:
        raise DatabaseError(
            f"Cannot parse --db {spec!r}: expected sqlite, mysql, mariadb, postgres, or a "
            f"SQLAlchemy URL like mysql+pymysql://root@127.0.0.1:3306/fuzz_app"
        ) from None
    backend = url.get_backend_name()
    dialect = DIALECTS.get(backend)
    if dialect is None:
        raise DatabaseError(
            f"Unsupported database {backend!r} in --db {spec!r}: use sqlite, "
            f"mysql+pymysql://… (MariaDB/MySQL) or postgresql+psycopg://…"
        )
    driver = url.get_driver_name()
    if dialect != "sqlite" and driver not in DRIVERS[dialect]:
        wanted = f"{backend}+{DRIVERS[dialect][0]}"
        raise DatabaseError(
            f"Unsupported driver {driver!r} in --db {spec!r}: the fuzzer speaks {wanted}://…"
        )
    if dialect == "sqlite":
        return DatabaseSpec("sqlite", url, url.database or None)
    guard_host(url.host, spec)
    return DatabaseSpec(dialect, url, url.database or None)


def guard_host(host: str | None, spec: str) -> None:
    """Refuse any database host that is not this machine's loopback interface."""
    if host is None or host == "":
        return  # a local socket
    if host == "localhost":
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            address = ipaddress.ip_address(socket.gethostbyname(host))
        except OSError:
            raise DatabaseError(
                f"Cannot resolve database host {host!r} in --db {spec!r}; "
                f"use 127.0.0.1 for a local server"
            ) from None
    if not address.is_loopback:
        raise UnsafeDatabase(
            f"Refusing database host {host!r} in --db {spec!r}: it is not on loopback, and the "
            f"fuzzer deletes rows; run it against a local scratch server (127.0.0.1)"
        )


def guard_name(name: str, *, exists: bool, allow_wipe: bool, spec: str) -> None:
    """Refuse an existing database whose name does not mark it as scratch."""
    if not exists or allow_wipe or SCRATCH_NAME.match(name):
        return
    raise UnsafeDatabase(
        f"Refusing to use existing database {name!r} from --db {spec!r}: its name does not "
        f"start with 'fuzz' or 'test', and the fuzzer deletes its rows; leave the database "
        f"out of the URL (the fuzzer then creates its own), name a scratch database, or "
        f"pass --allow-wipe if its data may be lost"
    )
