"""Set a run up and tear it down: scratch databases, the app, its setup, the server.

``with Session(target, settings) as s:`` instruments the process (SQLAlchemy listeners,
``time.sleep``, the caches: instrument.instrumented), creates the target's scratch databases,
builds the app with the factory, runs ``setup``, starts the loopback server, opens one
HTTP client, logs the target's identities in (identities.py) and takes the snapshot:
``s`` is ready. ``s.execute(scenario, dispatch)`` runs a scenario (trio serves the HTTP
side in a thread of its own). Whatever happens, on exit the server stops, the databases
are dropped (unless kept) and the instrumentation is undone. ``Session.run(work)`` is
``with session: return work(session)``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, TypeVar

import trio

from fuzzer.db import Databases
from fuzzer.errors import FuzzerError, TargetSetupError, describe
from fuzzer.execute import instrument
from fuzzer.execute.identities import log_in
from fuzzer.execute.runner import Dispatch, Harness, Serial, new_client
from fuzzer.execute.scheduler import Limits
from fuzzer.execute.server import Server
from fuzzer.execute.stores import foreign
from fuzzer.execute.stores.caches import Stores
from fuzzer.execute.stores.foreign import ForeignRedis
from fuzzer.execute.stores.scratch import RedisScratch
from fuzzer.judge.oracle import Normalizer, Oracle
from fuzzer.model import Execution, Scenario
from fuzzer.modes import applog
from fuzzer.search import interrupt
from fuzzer.settings import Settings
from fuzzer.target import domains
from fuzzer.target.contract import Target

T = TypeVar("T")


def limits_of(settings: Settings) -> Limits:
    return Limits.of(settings)


class Session:
    """One run's databases, app, server and client; a context manager.

    ``Session(target, settings)``, or ``Session(target, db=..., isolation=...)`` with
    options of ``Settings`` as keywords. ``limits`` overrides the settings' limits."""

    def __init__(
        self,
        target: Target,
        settings: Settings | None = None,
        *,
        limits: Limits | None = None,
        **options: Any,
    ) -> None:
        self.settings = Settings.of(settings, **options)
        self.target = target
        self.limits = limits or limits_of(self.settings)
        self.strict = self.settings.strict
        self.port = self.settings.port
        self.databases = Databases.open(
            self.settings.db,
            target.databases,
            keep=self.settings.keep_db,
            allow_wipe=self.settings.allow_wipe,
            isolation=self.settings.isolation,
        )
        self.app: Any = None
        self.redis: RedisScratch | None = None
        self.stores: Stores | None = None
        self.foreign: ForeignRedis | None = None  # Redis databases not the scratch one
        self.server: Server | None = None
        self.harness: Harness | None = None
        self.oracle: Oracle | None = None
        self.database_info: dict[str, Any] = {}
        self._exits: contextlib.ExitStack | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None

    def run(self, work: Callable[[Session], T]) -> T:
        with self:
            return work(self)

    def __enter__(self) -> Session:
        if self._exits is not None:
            raise RuntimeError("a Session is entered once; make a new one for another run")
        exits = self._exits = contextlib.ExitStack()
        try:
            exits.enter_context(instrument.instrumented())
            exits.callback(self._close)
            self._open()
            interrupt.check()  # a stop requested while setting up, whose raise was lost
            exits.enter_context(self._loop())
            columns = {name: info.columns for name, info in self.databases.tables.items()}
            exits.enter_context(domains.bind(columns, self.databases.initial))
            exits.enter_context(interrupt.watched())
        except BaseException:
            exits.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._exits is not None, "__exit__ without __enter__"
        self._exits.__exit__(kind, value, traceback)
        if kind is None:
            interrupt.check()  # a stop asked for after the last execution is still a stop

    def _open(self) -> None:
        self.databases.create()
        if self.target.redis:
            self.redis = RedisScratch.open()
        since = foreign.mark()
        with foreign.watching():  # the Redis databases the app opens
            self.app = self._build_app()
            self._setup()
        applog.capture_handlers()  # those the app's factory and setup added
        self.stores = Stores(
            self.app, redis=self.redis, reset=self.target.reset, where=_ref(self.target)
        )
        self.foreign = ForeignRedis(
            self.redis.url.removeprefix("redis://") if self.redis is not None else None,
            since,
            strict=self.settings.strict_isolation,
            where=_ref(self.target),
        )
        self.server = Server(self.app, threads=self.target.threads, port=self.port)
        self.server.start()

    def _close(self) -> None:
        try:
            if self.server is not None:
                self.server.stop()
            self._dispose_app_engines()
            self.databases.drop()
        finally:
            if self.redis is not None:
                self.redis.release()

    @contextlib.contextmanager
    def _loop(self) -> Iterator[None]:
        """trio in a thread of its own, serving the HTTP side until the block ends."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            try:
                trio.run(self._main, ready)
            except BaseException as exc:
                failure.append(exc)
            finally:
                ready.set()

        thread = threading.Thread(target=serve, name="fuzzer-trio", daemon=True)
        thread.start()
        try:
            ready.wait()
            if failure:
                raise failure[0]
            yield
        finally:
            self._end_loop(thread, ready)

    def _end_loop(self, thread: threading.Thread, ready: threading.Event) -> None:
        """Cancel trio's side (setup still running, or waiting for the block to end) and
        wait for its thread; a run in flight is cancelled with it."""
        while self._token is None and not ready.wait(0.05):
            pass  # the loop has not started yet
        token, scope = self._token, self._scope
        if token is not None and scope is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join()
        self._token = None

    async def _main(self, ready: threading.Event) -> None:
        assert self.server is not None
        with trio.CancelScope() as self._scope:
            self._token = trio.lowlevel.current_trio_token()
            await self._serve(ready)

    async def _serve(self, ready: threading.Event) -> None:
        assert self.server is not None
        async with new_client() as client:
            self.harness = Harness(
                self.databases,
                self.server,
                client,
                request_timeout=self.limits.hang_timeout + 15.0,
                stores=self.stores if self.stores is not None and self.stores.active else None,
            )
            self.harness.identity_headers = await log_in(
                self.target, self.app, client, self.server.base_url
            )
            self.databases.take_snapshot()
            if self.stores is not None:
                self.stores.take_snapshot()
            self.database_info = self.databases.describe()
            self.oracle = Oracle(
                Normalizer(
                    self.databases.tables,
                    self.databases.initial,
                    ignore_columns=frozenset(self.target.ignore_columns),
                    ignore_fields=frozenset(self.target.ignore_fields),
                    relations=frozenset(self.target.relations),
                ),
                lambda scenario, order: self.execute(scenario, Serial(order)),
                conflict_statuses=frozenset(self.target.conflict_statuses),
                strict=self.strict,
            )
            ready.set()
            await trio.sleep_forever()  # until _end_loop cancels it

    def execute(self, scenario: Scenario, dispatch: Dispatch) -> Execution:
        """Run a scenario; call from any thread but trio's own (inside the ``with``)."""
        if self.harness is None or self._token is None:
            raise RuntimeError("Session.execute outside `with Session(...) as session:`")
        interrupt.check()  # SIGTERM: stop here, in this thread (fuzzer/search/interrupt.py)
        return trio.from_thread.run(
            self.harness.execute, scenario, dispatch, trio_token=self._token
        )

    # -- building the target ------------------------------------------------------------

    def _build_app(self) -> Any:
        target = self.target
        argument = self.databases.factory_argument()
        name = getattr(target.app, "__qualname__", repr(target.app))
        try:
            app = target.app(argument, self.redis.url) if self.redis else target.app(argument)
        except FuzzerError:
            raise
        except Exception as exc:
            receives = "a mapping of database name to URL" if target.databases else "the URL"
            raise TargetSetupError(
                f"{_ref(target)}: the app factory {name}() raised {describe(exc)}; "
                f"it receives {receives} of a fresh scratch database and must return a WSGI app"
            ) from exc
        if not callable(app):
            raise TargetSetupError(
                f"{_ref(target)}: the app factory {name}() returned {type(app).__name__}, "
                f"expected a WSGI app (a Flask app, or a dispatcher of several)"
            )
        return app

    def _setup(self) -> None:
        target = self.target
        if target.setup is None:
            return
        name = getattr(target.setup, "__qualname__", repr(target.setup))
        context = getattr(self.app, "app_context", None)
        try:
            if context is not None:
                with context():
                    target.setup(self.app)
            else:
                target.setup(self.app)
        except TargetSetupError as exc:  # a failing step inside setup (fuzzer.flask_command)
            raise TargetSetupError(f"{_ref(target)}: setup {name}(app): {exc}") from exc
        except FuzzerError:
            raise
        except Exception as exc:
            raise TargetSetupError(
                f"{_ref(target)}: setup {name}(app) raised {describe(exc)}; it runs once on a "
                f"fresh, empty database to create the tables and insert the initial rows"
            ) from exc

    def _dispose_app_engines(self) -> None:
        """Close the target's pooled connections so its scratch database can be dropped."""
        import gc

        from sqlalchemy.engine import Engine

        keys = set(self.databases.names_by_key())
        for obj in gc.get_objects():
            if isinstance(obj, Engine) and str(obj.url.database or "") in keys:
                with contextlib.suppress(Exception):
                    obj.dispose()


def _ref(target: Target) -> str:
    return target.reference or target.name
