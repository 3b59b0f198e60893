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

import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

from fuzzer.execute import faults as injected
from fuzzer.execute.recording import RequestContext, recordings
from fuzzer.sql import shape_of

HEADER = "X-Fuzz-Request"
_ENVIRON_KEY = "HTTP_X_FUZZ_REQUEST"

_state = threading.local()
_real_sleep = time.sleep
_installed = False
_install_lock = threading.Lock()
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
            ctx.recording.finished.add((ctx.phase, ctx.index))
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
    recording = recordings.get(token)
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
        ctx.step("sql", statement, parameters, conn, context=context)
    elif _watching and shape_of(statement, context).writes:
        text = " ".join(statement.split())[:120]
        _note_stray(conn, text)
        _stray_connections[id(conn.connection.dbapi_connection)] = text


def _after_cursor_execute(conn, cursor, statement, parameters, context, executemany):
    ctx: RequestContext | None = getattr(_state, "ctx", None)
    if ctx is not None:
        rowcount = cursor.rowcount if shape_of(statement, context).writes else None
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
