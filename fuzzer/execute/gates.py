"""Instrumentation: every request the fuzzer sends becomes a sequence of yield points.

A WSGI wrapper (``GatedApp``) reads the request-identity header and binds the request
to the worker thread that handles it, for the request's lifetime. While bound, the
thread stops at a yield point

* when the request starts and before it ends,
* before every SQL statement (a listener on SQLAlchemy's ``Engine`` class, so every
  engine counts, including ones the target creates itself),
* before every COMMIT and ROLLBACK,
* at ``fuzzer.checkpoint(label)``, for shared state the database does not see,
* before every call to a cache or to Redis (caches.py patches Flask-Caching's
  backends and redis-py to come through ``command``), recorded as a statement
  (``cache GET attempts:1``) so the conflict analysis reads it like one,
* at ``time.sleep(...)``, which then does not really sleep.

At a yield point the thread asks the execution's scheduler for its turn (controlled
mode) or just records the step (serial and free modes). The steps, in the order they
were granted, are the trace. Statements of threads that are not bound (setup, reset,
the app's own background threads) pass through untouched.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

from fuzzer import compat
from fuzzer.db.locks import Pending
from fuzzer.execute import faults as injected
from fuzzer.execute.scheduler import Scheduler
from fuzzer.model import EngineUse, Fault, Hang, Leak, Phase, Step, StepKind
from fuzzer.sql import read_only, writes, written_table

HEADER = "X-Fuzz-Request"
_ENVIRON_KEY = "HTTP_X_FUZZ_REQUEST"

_state = threading.local()
_real_sleep = time.sleep
_installed = False
_install_lock = threading.Lock()
_recordings: dict[str, Recording] = {}
# writes by the target's engines that no fuzzed request made (the app's own background
# threads), since the last ``take_stray()``; the fuzzer's own engines are not watched
_stray: list[str] = []
_stray_connections: dict[int, str] = {}  # id(dbapi) -> its stray write
_own_engines: weakref.WeakSet[Engine] = weakref.WeakSet()
_watching = False
T = TypeVar("T")


def checkpoint(label: str = "") -> None:
    """A yield point for shared state the database does not see (a cache, a file, an
    outside call, a Python lock). Outside a fuzzed request it does nothing."""
    ctx: RequestContext | None = getattr(_state, "ctx", None)
    if ctx is not None:
        ctx.step("checkpoint", label)


def in_request() -> bool:
    """Whether this thread serves a fuzzed request, outside any cache or Redis command."""
    ctx: RequestContext | None = getattr(_state, "ctx", None)
    return ctx is not None and not ctx.in_command


def command(text: str, params: Any, call: Callable[[], T]) -> T:
    """Run ``call``, a cache or Redis command recorded as ``text`` (sql.command_text),
    behind a yield point of its own. Outside a fuzzed request, and inside another
    command (a cache backend that talks to Redis), it just runs."""
    ctx: RequestContext | None = getattr(_state, "ctx", None)
    if ctx is None or ctx.in_command:
        return call()
    ctx.step("sql", text, params, command=True)
    ctx.in_command = True
    try:
        result = call()
    except Exception as exc:
        ctx.statement_done(None, f"{type(exc).__name__}: {_message(exc)[:200]}")
        raise
    finally:
        ctx.in_command = False
    ctx.statement_done(None)
    return result


def _sleep(seconds: float) -> None:
    ctx: RequestContext | None = getattr(_state, "ctx", None)
    if ctx is None:
        _real_sleep(seconds)
        return
    ctx.step("sleep", f"{seconds:g}")
    if ctx.recording.free_running:
        # a sleep ends by itself: the runner's watch counts the request as progressing
        ctx.recording.sleeping.add((ctx.phase, ctx.index))
        try:
            _real_sleep(seconds)
        finally:
            ctx.recording.sleeping.discard((ctx.phase, ctx.index))


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
        self.hang: Hang | None = None  # free-running: the runner's watch saw nothing move
        self.cut = ""  # why requests were given up that were still running (a deadline)
        # database -> tables its statements wrote; None once a write named no table it
        # could read (DDL, a CTE): then every table must be restored
        self.written: dict[str, set[str]] | None = {}

    def wrote_to(self, database: str, statement: str) -> None:
        """A statement that writes, or may (a CALL, a MERGE): what to restore after it."""
        self.wrote = True
        table = written_table(statement)
        if table is None:
            self.written = None
        elif self.written is not None:
            self.written.setdefault(database, set()).add(table)

    def header(self, phase: Phase, index: int) -> str:
        return f"{self.token}/{phase}/{index}"

    def __enter__(self) -> Recording:
        _recordings[self.token] = self
        return self

    def __exit__(self, *exc: object) -> None:
        _recordings.pop(self.token, None)

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
    ) -> None:
        recording = self.recording
        database, ordinal, key = self._connection(conn)
        write = kind == "sql" and not command and writes(text)
        if write or (kind == "sql" and not command and not read_only(text)):
            recording.wrote_to(database, text)
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
            step = Step(
                request=self.index,
                number=self.number,
                kind=kind,
                text=text,
                params=_params_text(params) if params is not None else "",
                database=database,
                connection=ordinal,
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


class GatedApp:
    """WSGI wrapper: binds each fuzzer request to its worker thread, gates its start
    and end, records the exception the app raised, and checks for leaked connections."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        ctx = _context_for(environ.get(_ENVIRON_KEY))
        if ctx is None:
            return self.app(environ, start_response)
        _state.ctx = ctx
        ctx.recording.threads[(ctx.phase, ctx.index)] = (
            threading.get_ident(),
            threading.get_native_id(),
        )
        # the app's error log (Flask logs a traceback per 500 to wsgi.errors): the
        # exception is recorded with the response; the terminal stays readable
        environ["wsgi.errors"] = errors_stream or _DISCARD
        started: list[Any] = []
        chunks: list[bytes] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return chunks.append

        try:
            ctx.step("start")
            try:
                result = self.app(environ, capture)
                try:
                    chunks.extend(result)
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
            except Exception as exc:  # the app let an exception out of WSGI
                _record_error(ctx, exc)
                started[:] = ["500 Internal Server Error", [("Content-Type", "text/plain")]]
                chunks[:] = [f"{type(exc).__name__}: {exc}".encode()]
            ctx.check_leaks()
            ctx.step("end")
        finally:
            _state.ctx = None
        start_response(*started)
        return chunks


class _Discard:
    """A ``wsgi.errors`` stream that keeps nothing."""

    def write(self, text: str) -> int:
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        pass

    def flush(self) -> None:
        pass


_DISCARD = _Discard()
# where a fuzzed request's wsgi.errors go while the app's output is logged to a file
# (modes/applog.py); None: nowhere
errors_stream: Any = None


def _context_for(header: str | None) -> RequestContext | None:
    if not header:
        return None
    token, _, rest = header.partition("/")
    recording = _recordings.get(token)
    if recording is None:
        return None
    phase, _, index = rest.partition("/")
    if phase not in ("init", "concurrent", "observe"):
        return None
    return RequestContext(recording, phase, int(index))  # type: ignore[arg-type]


def _record_error(ctx: RequestContext, exc: BaseException) -> None:
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    message = _message(exc)
    if len(message) > 300:
        message = message[:297] + "..."
    ctx.recording.errors.setdefault((ctx.phase, ctx.index), f"{name}: {message}")


def _message(exc: BaseException) -> str:
    """An exception's message on one line. PostgreSQL's DETAIL and CONTEXT lines name
    process ids, transaction ids and tuples, which differ from run to run: a replay
    must record the same text, so only psycopg's primary message is kept."""
    text = str(exc)
    original = getattr(exc, "orig", None) or exc
    primary = getattr(getattr(original, "diag", None), "message_primary", None)
    if primary:
        text = text.replace(str(original), primary)
    return " ".join(text.split())


# -- SQLAlchemy and Flask hooks ---------------------------------------------------------


def watch_stray(own: Iterable[Engine]) -> None:
    """From now on, record every write the target's engines make outside a fuzzed
    request; ``own`` are the fuzzer's engines (restores, reads), never recorded."""
    global _watching
    for engine in own:
        _own_engines.add(engine)
    _watching = True


def take_stray() -> list[str]:
    """The writes no fuzzed request made since the last call ("thread: statement")."""
    taken = list(_stray)
    del _stray[: len(taken)]
    return taken


def _note_stray(conn: Any, what: str) -> None:
    if not _watching or conn.engine in _own_engines:
        return
    thread = re.sub(r"-\d+", "", threading.current_thread().name)  # "Thread-7 (later)"
    _stray.append(f"{what} (thread {thread!r})")


def _before_cursor_execute(conn, cursor, statement, parameters, context, executemany):
    ctx: RequestContext | None = getattr(_state, "ctx", None)
    if ctx is not None:
        ctx.step("sql", statement, parameters, conn)
    elif _watching and writes(statement):
        text = " ".join(statement.split())[:120]
        _note_stray(conn, text)
        _stray_connections[id(conn.connection.dbapi_connection)] = text


def _after_cursor_execute(conn, cursor, statement, parameters, context, executemany):
    ctx: RequestContext | None = getattr(_state, "ctx", None)
    if ctx is not None:
        rowcount = cursor.rowcount if writes(statement) else None
        ctx.statement_done(rowcount if rowcount is None or rowcount >= 0 else None)


def _do_execute(cursor, statement, parameters, context):
    """Instead of running the statement, raise the fault armed for it (execute/faults.py),
    inside SQLAlchemy's execution so it wraps the driver's error as production sees it."""
    ctx: RequestContext | None = getattr(_state, "ctx", None)
    if ctx is None or ctx.armed is None:
        return None
    fault, ctx.armed = ctx.armed, None
    dialect = context.dialect.name if context is not None else ""
    code = injected.code(dialect, fault.kind)
    if not code:
        return None  # this database cannot raise it: the statement runs
    ctx.recording.injected[(ctx.index, ctx.number)] = code
    injected.inject(dialect, cursor, fault.kind)


def _do_executemany(cursor, statement, parameters, context):
    return _do_execute(cursor, statement, parameters, context)


def _do_execute_no_params(cursor, statement, context):
    return _do_execute(cursor, statement, None, context)


def _handle_error(exception_context):
    ctx: RequestContext | None = getattr(_state, "ctx", None)
    if ctx is not None and exception_context.original_exception is not None:
        exc = exception_context.original_exception
        ctx.statement_done(None, f"{type(exc).__name__}: {_message(exc)[:200]}")


def _commit(conn):
    ctx: RequestContext | None = getattr(_state, "ctx", None)
    if ctx is not None:
        ctx.step("commit", conn=conn)
    elif _stray_connections:  # the COMMIT of a stray write: it lands now
        written = _stray_connections.pop(id(conn.connection.dbapi_connection), None)
        if written is not None:
            _note_stray(conn, f"{written}, committed")


def _rollback(conn):
    ctx: RequestContext | None = getattr(_state, "ctx", None)
    if ctx is not None:
        ctx.step("rollback", conn=conn)


def _checkout(dbapi_connection, connection_record, connection_proxy):
    ctx: RequestContext | None = getattr(_state, "ctx", None)
    if ctx is not None:
        ctx.checked_out[id(dbapi_connection)] = dbapi_connection
        _owners[id(dbapi_connection)] = ctx


def _checkin(dbapi_connection, connection_record):
    owner = _owners.pop(id(dbapi_connection), None)
    if owner is not None:
        owner.checked_out.pop(id(dbapi_connection), None)


_owners: dict[int, RequestContext] = {}


def _invalidate(dbapi_connection, connection_record, exception):
    """A connection SQLAlchemy gave up on (a lost connection) is closed, not leaked: it
    never comes back to the pool to be checked in."""
    _checkin(dbapi_connection, connection_record)


def _got_request_exception(sender: Any, exception: BaseException, **extra: Any) -> None:
    ctx: RequestContext | None = getattr(_state, "ctx", None)
    if ctx is not None:
        _record_error(ctx, exception)


_LISTENERS: tuple[tuple[type, str, Callable[..., Any]], ...] = (
    (Engine, "before_cursor_execute", _before_cursor_execute),
    (Engine, "after_cursor_execute", _after_cursor_execute),
    (Engine, "handle_error", _handle_error),
    (Engine, "do_execute", _do_execute),  # --faults: an injected error, raised as the driver's
    (Engine, "do_executemany", _do_executemany),
    (Engine, "do_execute_no_params", _do_execute_no_params),
    (Engine, "commit", _commit),
    (Engine, "rollback", _rollback),
    (Pool, "checkout", _checkout),
    (Pool, "checkin", _checkin),
    (Pool, "invalidate", _invalidate),
)


def install() -> None:
    """Register the listeners and patch ``time.sleep`` (again: nothing). Who installs
    and when it is undone: fuzzer/execute/instrument.py."""
    global _installed
    with _install_lock:
        if _installed:
            return
        for target, name, listener in _LISTENERS:
            event.listen(target, name, listener)
        try:
            from flask import got_request_exception
        except ImportError:  # pragma: no cover - flask is a dependency
            pass
        else:
            got_request_exception.connect(_got_request_exception, weak=False)
        time.sleep = _sleep  # type: ignore[assignment]
        _installed = True


def uninstall() -> None:
    """Remove the listeners and put ``time.sleep`` back (a module that bound the patched
    one keeps it: outside a fuzzed request it sleeps for real)."""
    global _installed
    with _install_lock:
        if not _installed:
            return
        for target, name, listener in _LISTENERS:
            if event.contains(target, name, listener):
                event.remove(target, name, listener)
        from flask import got_request_exception

        got_request_exception.disconnect(_got_request_exception)
        if time.sleep is _sleep:
            time.sleep = _real_sleep
        _installed = False


def installed() -> bool:
    return _installed
