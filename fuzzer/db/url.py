"""Database URLs: the ``--db`` spellings, and the safety guard every URL passes.

The fuzzer deletes rows. It only touches databases on this machine's loopback
interface, and only databases it creates itself or whose name marks them as
scratch (``fuzz_…``, ``test_…``, ``fuzz-…``, or exactly ``fuzz``/``test``), unless the
user says ``--allow-wipe``.

The host is not only the URL's host field: the drivers also take ``host``,
``hostaddr``, ``unix_socket``, ``service``, a database name and more from the query,
and libpq from ``PGHOST``/``PGHOSTADDR``/``PGSERVICE``. So the query may only hold
parameters known to be harmless (an allow-list per driver); the few that choose where
to connect are accepted only when they name loopback or a local socket, and anything
else is refused before a single packet is sent.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from fuzzer import compat
from fuzzer.errors import DatabaseError, UnsafeDatabase

ALIASES = {
    "sqlite": "sqlite://",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306",
    "postgres": "postgresql+psycopg://postgres@127.0.0.1:5432",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432",
}
DIALECTS = {"sqlite": "sqlite", "mysql": "mysql", "mariadb": "mysql", "postgresql": "postgresql"}
DRIVERS = {"sqlite": ("pysqlite", ""), "mysql": ("pymysql",), "postgresql": ("psycopg",)}
# A URL that names no driver gets the one the fuzzer speaks (``postgres://`` is what many
# hosts and .env files write; SQLAlchemy itself no longer reads it)
OUR_DRIVER = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
}
# fuzz_x, test-x, test.db, or exactly fuzz/test; not testimonials, fuzzy
SCRATCH_NAME = re.compile(r"^(fuzz|test)([_\-.]|$)", re.IGNORECASE)

# Query parameters that cannot send a connection anywhere else (PyMySQL / libpq).
SAFE_QUERY = {
    "mysql": frozenset(
        {
            "charset",
            "connect_timeout",
            "read_timeout",
            "write_timeout",
            "init_command",
            "sql_mode",
            "autocommit",
            "binary_prefix",
            "client_flag",
            "program_name",
            "use_unicode",
            "ssl",
            "ssl_disabled",
            "ssl_ca",
            "ssl_capath",
            "ssl_cert",
            "ssl_key",
            "ssl_cipher",
            "ssl_check_hostname",
            "ssl_verify_cert",
            "ssl_verify_identity",
        }
    ),
    "postgresql": frozenset(
        {
            "sslmode",
            "sslcert",
            "sslkey",
            "sslrootcert",
            "sslcrl",
            "sslpassword",
            "sslcompression",
            "gssencmode",
            "channel_binding",
            "connect_timeout",
            "application_name",
            "fallback_application_name",
            "options",
            "client_encoding",
            "keepalives",
            "keepalives_idle",
            "keepalives_interval",
            "keepalives_count",
            "tcp_user_timeout",
            "target_session_attrs",
            "passfile",
        }
    ),
}
# Query parameters that choose where to connect: accepted on loopback only.
WHERE_QUERY = {
    "mysql": frozenset({"host", "port", "unix_socket"}),
    "postgresql": frozenset({"host", "hostaddr", "port"}),
}
# libpq reads these when the URL does not say otherwise.
PG_ENVIRONMENT = ("PGHOST", "PGHOSTADDR", "PGSERVICE", "PGSERVICEFILE")
LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


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


def parse(spec: str, environment: Mapping[str, str] | None = None) -> DatabaseSpec:
    """Parse ``--db``: an alias (sqlite, mysql, mariadb, postgres) or a SQLAlchemy URL.

    Raises ``DatabaseError`` for a URL that cannot be used and ``UnsafeDatabase`` for one
    that may reach a database off this machine; nothing is connected to either way.
    """
    text = ALIASES.get(spec.strip().lower(), spec.strip())
    try:
        url = make_url(text)
        port = url.port  # SQLAlchemy reads "[::1" or ":notaport" as a port, lazily or not
    except (ArgumentError, ValueError) as exc:
        raise DatabaseError(
            f"Cannot parse --db {spec!r} ({' '.join(str(exc).split())}): expected sqlite, "
            f"mysql, mariadb, postgres, or a SQLAlchemy URL like "
            f"mysql+pymysql://root@127.0.0.1:3306/fuzz_app"
        ) from None
    if url.drivername in OUR_DRIVER:  # postgres://, postgresql://, mysql://: no driver named
        url = url.set(drivername=OUR_DRIVER[url.drivername])
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
    if compat.unsupported(dialect):
        raise DatabaseError(f"Cannot use --db {spec!r}: {compat.unsupported(dialect)}")
    shown = url.render_as_string(hide_password=True)
    if url.password == "***":
        raise DatabaseError(
            f"The database URL {shown!r} holds '***', the mask reports write in place of a "
            f"password (they never record one): pass the real URL with --db, or in the "
            f"environment variable FUZZER_DB so it stays out of the command line"
        )
    if dialect == "sqlite":
        return DatabaseSpec("sqlite", url, url.database or None)
    if port is not None and not 0 < port < 65536:
        raise DatabaseError(
            f"Cannot use port {port} in --db {shown!r}: a port is a number from 1 to 65535"
        )
    guard_query(dialect, url, shown)
    guard_host(url.host, shown)
    if dialect == "postgresql":
        guard_environment(url, shown, os.environ if environment is None else environment)
    return DatabaseSpec(dialect, url, url.database or None)


def guard_query(dialect: str, url: URL, spec: str) -> None:
    """Refuse every query parameter that is not known to be harmless, and those that
    choose where to connect unless they name loopback or a local socket."""
    safe, where = SAFE_QUERY[dialect], WHERE_QUERY[dialect]
    for key, given in url.query.items():
        values = [given] if isinstance(given, str) else list(given)
        if key not in safe and key not in where:
            raise UnsafeDatabase(
                f"Refusing query parameter {key!r} in --db {spec!r}: the fuzzer deletes rows, "
                f"and accepts only parameters that cannot send the connection to another "
                f"server or database ({', '.join(sorted(safe | where))}); remove it, and name "
                f"the database in the URL's path"
            )
        for value in values:
            if key == "port":
                for part in value.split(","):
                    if part and not (part.isdigit() and 0 < int(part) < 65536):
                        raise DatabaseError(
                            f"Cannot use port={part!r} in --db {spec!r}: a port is a number "
                            f"from 1 to 65535"
                        )
            elif key == "unix_socket":
                if not os.path.isabs(value):
                    raise UnsafeDatabase(
                        f"Refusing unix_socket={value!r} in --db {spec!r}: a local socket is "
                        f"an absolute path (/run/mysqld/mysqld.sock)"
                    )
            elif key == "hostaddr":
                for part in value.split(","):
                    _loopback_address(part.strip(), f"hostaddr={value!r}", spec)
            elif key == "host":
                for part in value.split(","):
                    host = part.strip()
                    if dialect == "postgresql" and host.startswith("/"):
                        continue  # a directory holding PostgreSQL's local socket
                    if re.fullmatch(r"[^:\[\]]+:\d*", host):
                        host = host.rsplit(":", 1)[0]  # SQLAlchemy's host=h:port form
                    guard_host(host or None, spec, what=f"query parameter host={value!r}")


def guard_host(host: str | None, spec: str, *, what: str = "") -> None:
    """Refuse any database host that is not this machine's loopback interface. Names are
    not looked up (a DNS query may itself leave the machine): only ``localhost`` (and
    ``*.localhost``, ``ip6-localhost``) and loopback addresses pass."""
    if host is None or host == "":
        return  # a local socket
    name = host.lower().rstrip(".")
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return
    what = what or f"database host {host!r}"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise UnsafeDatabase(
            f"Refusing {what} in --db {spec!r}: the fuzzer deletes rows, and does not look "
            f"names up to see whether they are this machine (a lookup may already leave "
            f"it); name the local server 127.0.0.1, ::1 or localhost"
        ) from None
    if not address.is_loopback:
        raise UnsafeDatabase(
            f"Refusing {what} in --db {spec!r}: it is not on loopback, and the "
            f"fuzzer deletes rows; run it against a local scratch server (127.0.0.1)"
        )


def _loopback_address(value: str, what: str, spec: str) -> None:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise DatabaseError(
            f"Cannot use {what} in --db {spec!r}: hostaddr is an IP address (127.0.0.1)"
        ) from None
    if not address.is_loopback:
        raise UnsafeDatabase(
            f"Refusing {what} in --db {spec!r}: it is not on loopback, and the fuzzer "
            f"deletes rows; run it against a local scratch server (127.0.0.1)"
        )


def guard_environment(url: URL, spec: str, environment: Mapping[str, str]) -> None:
    """libpq takes the host from the environment when the URL has none, an address
    from PGHOSTADDR whatever the URL says, and a whole connection from a service."""
    for name in PG_ENVIRONMENT:
        value = environment.get(name, "")
        if not value:
            continue
        if name in ("PGSERVICE", "PGSERVICEFILE"):
            raise UnsafeDatabase(
                f"Refusing to connect with {name}={value!r} set: a service file may point "
                f"--db {spec!r} at another server, and the fuzzer deletes rows; unset {name}"
            )
        if name == "PGHOSTADDR":
            for part in value.split(","):
                _loopback_address(part.strip(), f"{name}={value!r} (from the environment)", spec)
        elif not url.host and "host" not in url.query:
            for part in value.split(","):
                if not part.strip().startswith("/"):
                    guard_host(part.strip(), spec, what=f"{name}={value!r} (from the environment)")


def guard_name(name: str, *, exists: bool, allow_wipe: bool, spec: str, shown: str = "") -> None:
    """Refuse an existing database whose name does not mark it as scratch (``shown``:
    how to name it in the message, when more than its name)."""
    if not exists or allow_wipe or SCRATCH_NAME.match(name):
        return
    raise UnsafeDatabase(
        f"Refusing to use existing database {shown or repr(name)} from --db {spec!r}: its "
        f"name does not "
        f"start with 'fuzz_' or 'test_' (or fuzz-, test-), and the fuzzer deletes its rows; "
        f"leave the database out of the URL (the fuzzer then creates its own), name a "
        f"scratch database, or pass --allow-wipe if its data may be lost"
    )
