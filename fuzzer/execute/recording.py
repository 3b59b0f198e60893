"""The live record of one execution (``Recording``) and of one request bound to the
thread that handles it (``RequestContext``): the steps in the order they were granted,
their results, leaked connections, engines used by the wrong app, and the tables
written. gates.py calls into them at every yield point.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy.engine import Engine

from fuzzer import compat, sql
from fuzzer.db.locks import Pending
from fuzzer.execute import faults as injected
from fuzzer.execute.scheduler import Scheduler
from fuzzer.model import EngineUse, Fault, Hang, Leak, Phase, Step, StepKind

# the executions in progress, by token (the first part of a request's header)
recordings: dict[str, Recording] = {}


class Recording:
    """The live record of one execution: its requests' contexts, steps, leaks, errors."""

    _tokens = itertools.count(1)

    def __init__(
        self,
        *,
        scheduler: Scheduler | None = None,
        databases: Mapping[str, str] | None = None,
        free_running: bool = False,
        faults: Mapping[int, tuple[Fault, ...]] | None = None,
    ) -> None:
        self.token = f"x{next(self._tokens)}"
        # request -> the errors to inject into its statements (``--faults``), and what
        # was injected: (request, step number) -> the error's code
        self.faults = dict(faults or {})
        self.injected: dict[tuple[int, int], str] = {}
        self.scheduler = scheduler
        self.free_running = free_running  # real timing: sleeps sleep, steps ordered as they finish
        self._databases = dict(databases or {})  # engine URL database -> logical name
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._steps: list[tuple[int, Step]] = []
        self._results: dict[tuple[int, int], tuple[int | None, str]] = {}
        self.errors: dict[tuple[Phase, int], str] = {}
        self.leaks: list[Leak] = []
        self.leaked_connections: list[Any] = []
        self.wrong_engine: list[EngineUse] = []
        self.wrote = False
        # (phase, index) -> (thread ident, native id) of the thread handling it
        self.threads: dict[tuple[Phase, int], tuple[int, int]] = {}
        self.sleeping: set[tuple[Phase, int]] = set()  # free-running, inside time.sleep
        self.finished: set[tuple[Phase, int]] = set()  # requests whose app call returned
        self.slow = False  # requests given up while their threads still ran (watch.py)
        self.hang: Hang | None = None  # free-running: the runner's watch saw nothing move
        self.cut = ""  # why requests were given up that were still running (a deadline)
        # database -> tables its statements wrote; None once a write named no table it
        # could read (DDL, a CTE): then every table must be restored
        self.written: dict[str, set[str]] | None = {}

    def wrote_to(self, database: str, shape: sql.Shape) -> None:
        """A statement that writes, or may (a CALL, a MERGE): what to restore after it."""
        self.wrote = True
        table = shape.write if shape.plain else None
        if table is None:
            self.written = None
        elif self.written is not None:
            self.written.setdefault(database, set()).add(table)

    def header(self, phase: Phase, index: int) -> str:
        return f"{self.token}/{phase}/{index}"

    def __enter__(self) -> Recording:
        recordings[self.token] = self
        return self

    def __exit__(self, *exc: object) -> None:
        recordings.pop(self.token, None)

    def database_of(self, engine: Engine) -> str:
        key = str(engine.url.database or "")
        return self._databases.get(key, key)

    def add(self, seq: int, step: Step) -> None:
        with self._lock:
            self._steps.append((seq, step))

    def next_seq(self) -> int:
        return next(self._seq)

    def result(self, request: int, number: int, rowcount: int | None, error: str) -> None:
        self._results[(request, number)] = (rowcount, error)

    def trace(self) -> tuple[Step, ...]:
        """The concurrent phase's steps in the order they were granted."""
        waits = self.scheduler.waits if self.scheduler is not None else {}
        steps = []
        for seq, step in sorted(self._steps, key=lambda item: item[0]):
            rowcount, error = self._results.get((step.request, step.number), (None, ""))
            waited = waits.get(seq, "")
            fault = self.injected.get((step.request, step.number), "")
            if rowcount is not None or error or waited or fault:
                step = replace(step, rowcount=rowcount, error=error, waited=waited, injected=fault)
            steps.append(step)
        return tuple(steps)


class RequestContext:
    """One request bound to the thread that handles it."""

    def __init__(self, recording: Recording, phase: Phase, index: int) -> None:
        self.recording = recording
        self.phase = phase
        self.index = index
        self.number = 0
        self.gated = phase == "concurrent" and recording.scheduler is not None
        self.traced = phase == "concurrent"
        self.handle = recording.scheduler.handle(index) if self.gated else None  # type: ignore[union-attr]
        self.connections: dict[int, tuple[int, str]] = {}  # id(dbapi) -> (ordinal, database)
        self.checked_out: dict[int, Any] = {}  # id(dbapi) -> dbapi connection
        self.last_statement: dict[int, str] = {}
        self.used_since_end: dict[int, bool] = {}  # a statement since its last COMMIT/ROLLBACK
        self.app_databases: tuple[str, ...] | None = None  # of the app serving the request
        self.app_name = ""
        self._app_known = False
        self._pending: Step | None = None
        self.in_command = False  # inside a cache or Redis command (gates.command)
        # the faults still to inject, earliest first, and the one armed for the
        # statement about to run (``_do_execute`` raises it)
        self.faults = sorted(recording.faults.get(index, ()), key=lambda f: f.step)
        if phase != "concurrent" or not self.gated:
            self.faults = []
        self.armed: Fault | None = None

    def step(
        self,
        kind: StepKind,
        text: str = "",
        params: Any = None,
        conn: Any = None,
        command: bool = False,
        context: Any = None,
    ) -> None:
        """``context``: a statement's execution context, whose compiled statement (when
        SQLAlchemy compiled one) says what it reads and writes without parsing it."""
        recording = self.recording
        database, ordinal, key = self._connection(conn)
        shape = sql.shape_of(text, context) if kind == "sql" and not command else None
        write = shape is not None and shape.writes
        if shape is not None and (write or not shape.read_only):
            recording.wrote_to(database, shape)
        if self.gated:
            assert recording.scheduler is not None and self.handle is not None
            seq = recording.scheduler.wait_turn(
                self.index, Pending(kind, text, key, write, database)
            )
            if command:
                self.handle.in_db = False  # it waits on Redis or a Python lock, if at all
        else:
            self._finish_pending()
            seq = 0 if recording.free_running else recording.next_seq()
        self.number += 1
        if self.faults and kind == "sql" and not command:
            self._arm(text)
        if key is not None:
            self.used_since_end[key] = kind == "sql"  # until its COMMIT or ROLLBACK
        if kind == "sql" and key is not None:
            self.last_statement[key] = text
            if not self._app_known:
                self._app_known = True
                self.app_name, self.app_databases = _serving_app(recording)
            if self.app_databases is not None and database not in self.app_databases:
                # like leaks, only the concurrent requests' own: an init or observer
                # request shares their indices but not their trace
                request = self.index if self.phase == "concurrent" else -1
                recording.wrong_engine.append(
                    EngineUse(request, self.number, database, self.app_databases, self.app_name)
                )
        if self.traced:
            params_text = _params_text(params) if params is not None else ""
            step = Step(
                request=self.index,
                number=self.number,
                kind=kind,
                text=text,
                params=params_text,
                database=database,
                connection=ordinal,
                seen=sql.recorded(text, params_text, shape) if shape is not None else None,
            )
            if seq or kind == "end":
                recording.add(seq or recording.next_seq(), step)
            else:
                self._pending = step  # free-running: ordered when it has finished

    def _connection(self, conn: Any) -> tuple[str, int, int | None]:
        """(database, the request's own number for the connection, its key) of a
        SQLAlchemy connection; ("", 0, None) without one."""
        if conn is None:
            return "", 0, None
        if conn.invalidated:
            # a lost connection (--faults disconnect, or a real one): SQLAlchemy refuses to
            # hand out its DBAPI connection until the rollback this step is about
            return self.recording.database_of(conn.engine), 0, None
        dbapi = conn.connection.dbapi_connection
        key = id(dbapi)
        known = self.connections.get(key)
        if known is None:
            known = (len(self.connections) + 1, self.recording.database_of(conn.engine))
            self.connections[key] = known
            if self.handle is not None:
                self.handle.connections.append(dbapi)
        ordinal, database = known
        return database, ordinal, key

    def _arm(self, text: str) -> None:
        """Arm the next fault (``--faults``) if this statement, the request's step
        ``number``, is at or past its step and is one its error can strike."""
        fault = self.faults[0]
        if fault.step <= self.number and injected.strikes(fault.kind, text):
            self.armed = self.faults.pop(0)  # this statement fails (``_do_execute``)

    def _finish_pending(self) -> None:
        """Free-running requests really overlap: a step takes effect when it finishes, not
        when it passes its gate, so that is when it takes its place in the trace."""
        if self._pending is not None:
            self.recording.add(self.recording.next_seq(), self._pending)
            self._pending = None

    def statement_done(self, rowcount: int | None, error: str = "") -> None:
        if self.handle is not None:
            self.handle.in_db = False
        if self.traced and (rowcount is not None or error):
            self.recording.result(self.index, self.number, rowcount, error)
        if self._pending is not None and self._pending.kind == "sql":
            self._finish_pending()

    def check_leaks(self) -> None:
        """Before the response is sent: every connection the request checked out must be
        back in its pool."""
        for key, dbapi in self.checked_out.items():
            ordinal, database = self.connections.get(key, (0, "?"))
            self.recording.leaks.append(
                Leak(
                    request=self.index if self.phase == "concurrent" else -1,
                    connection=ordinal,
                    database=database,
                    in_transaction=_in_transaction(dbapi, self.used_since_end.get(key, False)),
                    last_statement=" ".join(self.last_statement.get(key, "").split())[:200],
                )
            )
            self.recording.leaked_connections.append(dbapi)


def _serving_app(recording: Recording) -> tuple[str, tuple[str, ...] | None]:
    """The Flask app handling the current request and the databases its Flask-SQLAlchemy
    engines point at (None when that cannot be told)."""
    try:
        from flask import current_app, has_app_context
    except ImportError:  # pragma: no cover
        return "", None
    if not has_app_context():
        return "", None
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if compat.flask_sqlalchemy(app) is None:
        return app.name, None
    try:
        engines = compat.sqlalchemy_engines(app).values()
    except Exception:
        return app.name, None
    return app.name, tuple(sorted({recording.database_of(e) for e in engines}))


def _params_text(params: Any) -> str:
    text = repr(params if not isinstance(params, list) or len(params) != 1 else params[0])
    return text if len(text) <= 240 else text[:237] + "..."


def _in_transaction(dbapi: Any, used: bool) -> bool:
    """Whether a DBAPI connection has an open transaction (sqlite3, PyMySQL, psycopg).
    ``used``: a statement ran on it since its last COMMIT or ROLLBACK."""
    value = getattr(dbapi, "in_transaction", None)
    if isinstance(value, bool):
        return value  # sqlite3: what SQLite says (a read begins no transaction there)
    info = getattr(dbapi, "info", None)  # psycopg
    status = getattr(info, "transaction_status", None)
    if status is not None:
        return int(status) != 0
    server_status = getattr(dbapi, "server_status", None)  # PyMySQL
    if isinstance(server_status, int):
        # MariaDB flags a transaction only once it writes; a read with autocommit off
        # has begun one all the same, and holds its metadata locks until it ends
        autocommit = getattr(dbapi, "get_autocommit", lambda: False)()
        return bool(server_status & 1) or (used and not autocommit)
    return True
