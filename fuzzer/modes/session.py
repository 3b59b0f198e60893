"""Set a run up and tear it down: scratch databases, the app, its setup, the server.

``Session.run(work)`` creates the target's scratch databases, builds the app with the
factory, runs ``setup``, starts the loopback server, opens one HTTP client, logs the
target's identities in (identities.py), takes the snapshot, and then calls
``work(session)`` in a worker thread while trio serves the HTTP side. ``work`` runs
scenarios through ``session.execute`` (thread-safe: it hands the scenario to trio).
Whatever happens, the server stops and the databases are dropped (unless kept) at the
end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

import trio

from fuzzer.db import Databases
from fuzzer.errors import FuzzerError, TargetSetupError, describe
from fuzzer.execute import instrument
from fuzzer.execute.caches import RedisScratch, Stores
from fuzzer.execute.identities import log_in
from fuzzer.execute.runner import Dispatch, Harness, Serial, new_client
from fuzzer.execute.scheduler import Limits
from fuzzer.execute.server import Server
from fuzzer.judge.oracle import Normalizer, Oracle
from fuzzer.model import Execution, Scenario
from fuzzer.search import interrupt
from fuzzer.target import domains
from fuzzer.target.contract import Target

T = TypeVar("T")


class Session:
    """One run's databases, app, server and client."""

    def __init__(
        self,
        target: Target,
        *,
        db: str = "sqlite",
        isolation: str | None = None,
        keep_db: bool = False,
        allow_wipe: bool = False,
        port: int = 0,
        limits: Limits | None = None,
        strict: bool = False,
    ) -> None:
        instrument.install()  # however the target was loaded, its statements must be seen
        self.target = target
        self.limits = limits or Limits()
        self.strict = strict
        self.port = port
        self.databases = Databases.open(
            db, target.databases, keep=keep_db, allow_wipe=allow_wipe, isolation=isolation
        )
        self.app: Any = None
        self.redis: RedisScratch | None = None
        self.stores: Stores | None = None
        self.server: Server | None = None
        self.harness: Harness | None = None
        self.oracle: Oracle | None = None
        self.database_info: dict[str, Any] = {}

    def run(self, work: Callable[[Session], T]) -> T:
        databases = self.databases
        try:
            databases.create()
            if self.target.redis:
                self.redis = RedisScratch.open()
            self.app = self._build_app()
            self._setup()
            self.stores = Stores(
                self.app, redis=self.redis, reset=self.target.reset, where=_ref(self.target)
            )
            self.server = Server(self.app, threads=self.target.threads, port=self.port)
            self.server.start()
            interrupt.check()  # a stop requested while setting up, whose raise was lost
            with interrupt.watched():  # a signal only sets the flag: execute() raises
                return trio.run(self._main, work)
        finally:
            if self.server is not None:
                self.server.stop()
            self._dispose_app_engines()
            databases.drop()
            if self.redis is not None:
                self.redis.release()

    async def _main(self, work: Callable[[Session], T]) -> T:
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
            columns = {name: info.columns for name, info in self.databases.tables.items()}
            with domains.bind(columns, self.databases.initial):
                return await trio.to_thread.run_sync(work, self)

    def execute(self, scenario: Scenario, dispatch: Dispatch) -> Execution:
        """Run a scenario; call from ``work``'s thread."""
        assert self.harness is not None
        interrupt.check()  # SIGTERM: stop here, in this thread (fuzzer/search/interrupt.py)
        return trio.from_thread.run(self.harness.execute, scenario, dispatch)

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
