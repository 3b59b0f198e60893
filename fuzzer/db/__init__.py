"""The target's scratch databases, handled as one: create, snapshot, reset, read, drop.

``Databases.open(spec, names)`` parses and guards ``--db`` (url.py), makes one
backend per database the target declares (one, unnamed, by default), and hands the
app factory either a URL or a mapping of name to URL. ``create`` first removes what
runs that died left behind (owner.py), and collects in ``notices`` what a person should
be told: those removals, and the tables of an existing database it emptied.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from fuzzer.db.base import Backend, Rows, TableInfo
from fuzzer.db.locks import LockModel, LockProbe
from fuzzer.db.url import DatabaseSpec, parse
from fuzzer.errors import DatabaseError

__all__ = ["Backend", "DatabaseSpec", "Databases", "Rows", "TableInfo", "parse"]

DEFAULT = "default"


def _backend_class(dialect: str) -> type[Backend]:
    if dialect == "sqlite":
        from fuzzer.db.sqlite import SQLiteBackend

        return SQLiteBackend
    if dialect == "mysql":
        from fuzzer.db.mysql import MySQLBackend

        return MySQLBackend
    if dialect == "postgresql":
        from fuzzer.db.postgres import PostgresBackend

        return PostgresBackend
    raise DatabaseError(f"Unsupported database dialect {dialect!r}")


class Databases:
    """Every scratch database of one run."""

    def __init__(
        self,
        spec: DatabaseSpec,
        backends: Mapping[str, Backend],
        named: bool,
        isolation: str | None = None,
    ) -> None:
        self.spec = spec
        self.backends = dict(backends)
        self.named = named
        self.isolation = isolation
        self.tables: dict[str, TableInfo] = {}
        self._snapshot: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
        self._initial: dict[str, Rows] = {}
        self.notices: list[str] = []

    @classmethod
    def open(
        cls,
        db: str,
        names: Sequence[str] = (),
        *,
        keep: bool = False,
        allow_wipe: bool = False,
        isolation: str | None = None,
    ) -> Databases:
        """Parse and guard ``db``; nothing is created yet (see ``create``)."""
        spec = parse(db)
        run_id = secrets.token_hex(4)
        backend = _backend_class(spec.dialect)
        logical = list(names) or [DEFAULT]
        backends = {
            name: backend(
                spec,
                name,
                run_id=run_id,
                keep=keep,
                allow_wipe=allow_wipe,
                prefix=f"{name}." if names else "",
            )
            for name in logical
        }
        return cls(spec, backends, named=bool(names), isolation=isolation)

    @property
    def dialect(self) -> str:
        return self.spec.dialect

    def factory_argument(self) -> str | dict[str, str]:
        """What the target's app factory receives: a URL, or {name: URL}."""
        if self.named:
            return {name: b.url for name, b in self.backends.items()}
        return self.backends[DEFAULT].url

    def names_by_key(self) -> dict[str, str]:
        """``engine.url.database`` -> the database's logical name (for traces)."""
        return {b.database_key: name for name, b in self.backends.items()}

    def create(self) -> None:
        self.notices.extend(self.sweep())
        for backend in self.backends.values():
            backend.create()
            self.notices.extend(backend.notices)
            if self.isolation:
                backend.configure_isolation(self.isolation)

    def sweep(self) -> list[str]:
        """Remove the scratch databases of runs that died, on this run's server (or the
        temporary SQLite files); one line per database removed."""
        first = next(iter(self.backends.values()))
        if self.dialect == "sqlite":
            from fuzzer.db.sqlite import sweep

            return sweep()
        from fuzzer.db.scratch import ServerBackend

        return first.sweep() if isinstance(first, ServerBackend) else []

    def take_snapshot(self) -> None:
        """After setup: find the tables and remember every row of them."""
        self.tables = {}
        for backend in self.backends.values():
            self.tables.update(backend.discover())
        self._snapshot = {name: b.snapshot() for name, b in self.backends.items()}
        self._initial = self.read()

    @property
    def initial(self) -> dict[str, Rows]:
        """The snapshot's rows, as ``read`` returns them."""
        return self._initial

    def reset(self, written: Mapping[str, Collection[str]] | None = None) -> None:
        """Put the snapshot back: every table, or only the tables ``written`` names per
        database (with what their foreign keys cascade to)."""
        only = self._only(written)
        for name, backend in self.backends.items():
            tables = None if only is None else only.get(name)
            if only is None or tables:
                backend.restore(self._snapshot[name], tables)

    def read(self, written: Mapping[str, Collection[str]] | None = None) -> dict[str, Rows]:
        """The rows of every table; with ``written``, read only those tables (and what
        their foreign keys cascade to), the others are as in the snapshot."""
        only = self._only(written)
        rows: dict[str, Rows] = {} if only is None else dict(self._initial)
        for name, backend in self.backends.items():
            tables = None if only is None else only.get(name)
            if only is None or tables:
                rows.update(backend.read(tables))
        return rows

    def _only(
        self, written: Mapping[str, Collection[str]] | None
    ) -> Mapping[str, Collection[str]] | None:
        """``written`` if every database it names is one of ours, else None (all)."""
        if written is None or any(name not in self.backends for name in written):
            return None
        return written

    def lock_model(self) -> LockModel | None:
        return next(iter(self.backends.values())).lock_model()

    def lock_probe(self) -> LockProbe | None:
        return next(iter(self.backends.values())).lock_probe()

    def blocked_schema_changes(
        self, tables: Mapping[str, Iterable[str]]
    ) -> dict[tuple[str, str], str]:
        """(database, table) -> the lock a schema change of that table would wait for
        right now, for the given tables of each (logical) database (ddl.py)."""
        from fuzzer.db.ddl import blocked_schema_changes

        blocked: dict[tuple[str, str], str] = {}
        for name, names in tables.items():
            backend = self.backends.get(name)
            if backend is None:
                continue
            for table, why in blocked_schema_changes(backend, names).items():
                blocked[(name, table)] = why
        return blocked

    def describe(self) -> dict[str, Any]:
        first = next(iter(self.backends.values()))
        info = first.describe()
        info["url"] = self.spec.safe_url
        info["databases"] = {name: b.url_for_report for name, b in self.backends.items()}
        return info

    def drop(self) -> None:
        errors = []
        for backend in self.backends.values():
            try:
                backend.drop()
            except Exception as exc:  # keep dropping the others
                errors.append(f"{backend.logical_name}: {exc}")
        if errors:
            raise DatabaseError("Could not drop scratch database(s): " + "; ".join(errors))
