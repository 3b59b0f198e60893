"""Run a scenario over real HTTP and return one ``Execution``.

Every execution has the same shape: restore the snapshot, send the init requests one
by one, send the concurrent requests the way a ``Dispatch`` says, send the observer
requests one by one, read the final rows. The dispatches are the only difference
between the modes:

* ``Controlled`` gates every request and lets the scheduler grant their steps;
* ``Serial`` sends them one after another in a given order (the oracle's references);
* ``Free`` sends them all at once with no gates (the stress mode).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import http.cookiejar
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import httpx
import trio

from fuzzer.db import Databases
from fuzzer.errors import BackgroundCrash
from fuzzer.execute import gates
from fuzzer.execute.gates import HEADER
from fuzzer.execute.recording import Recording
from fuzzer.execute.scheduler import Limits, Scheduler, Statistics
from fuzzer.execute.server import Server
from fuzzer.execute.stores.caches import Stores
from fuzzer.execute.watch import watch
from fuzzer.model import Execution, Hang, Leak, Mode, Phase, Request, Response, Scenario, Step
from fuzzer.version import USER_AGENT


class Dispatch(Protocol):
    """How the concurrent part of a scenario is sent."""

    mode: Mode

    def scheduler(self, scenario: Scenario, harness: Harness) -> Scheduler | None: ...

    async def send(
        self, harness: Harness, recording: Recording, requests: Sequence[Request]
    ) -> list[Response | None]: ...


@dataclass
class Controlled:
    """All requests at once; the scheduler grants their steps by the scenario's genes."""

    limits: Limits = field(default_factory=Limits)
    mode: Mode = "controlled"

    def scheduler(self, scenario: Scenario, harness: Harness) -> Scheduler:
        budget = harness.hang_budget(scenario.requests, self.limits.hang_timeout)
        return Scheduler(
            scenario.schedule,
            lock_model=harness.databases.lock_model(),
            lock_probe=harness.databases.lock_probe(),
            limits=replace(self.limits, hang_timeout=budget),
        )

    async def send(
        self, harness: Harness, recording: Recording, requests: Sequence[Request]
    ) -> list[Response | None]:
        return await harness.send_all(recording, requests, self.limits)


@dataclass
class Serial:
    """One request after another, in ``order``; requests not in it are not sent."""

    order: tuple[int, ...]
    mode: Mode = "serial"

    def scheduler(self, scenario: Scenario, harness: Harness) -> None:
        return None

    async def send(
        self, harness: Harness, recording: Recording, requests: Sequence[Request]
    ) -> list[Response | None]:
        responses: list[Response | None] = [None] * len(requests)
        for index in self.order:
            started = time.perf_counter()
            responses[index] = await harness.send(recording, "concurrent", index, requests[index])
            harness.note_serial(requests[index].endpoint, time.perf_counter() - started)
        return responses


@dataclass
class Free:
    """All requests at once, no gates, real timing (``time.sleep`` really sleeps); the
    same hang rule as under control (watch.py)."""

    limits: Limits = field(default_factory=Limits)
    mode: Mode = "free"

    def scheduler(self, scenario: Scenario, harness: Harness) -> None:
        return None

    async def send(
        self, harness: Harness, recording: Recording, requests: Sequence[Request]
    ) -> list[Response | None]:
        return await harness.send_all(recording, requests, self.limits)


@dataclass
class Costs:
    """Where the time goes, summed over executions (seconds)."""

    executions: int = 0
    reset: float = 0.0
    requests: float = 0.0
    read: float = 0.0
    http_requests: int = 0
    restarts: int = 0
    scheduler: Statistics = field(default_factory=Statistics)

    def add_scheduler(self, stats: Statistics) -> None:
        for name in vars(stats):
            setattr(self.scheduler, name, getattr(self.scheduler, name) + getattr(stats, name))


class Harness:
    """The running parts of one fuzz run: databases, the server, one HTTP client."""

    def __init__(
        self,
        databases: Databases,
        server: Server,
        client: httpx.AsyncClient,
        *,
        request_timeout: float = 30.0,
        identity_headers: Mapping[str, Mapping[str, str]] | None = None,
        stores: Stores | None = None,
    ) -> None:
        self.databases = databases
        self.stores = stores  # caches and Redis: reset before every execution
        self.server = server
        self.client = client
        self.request_timeout = request_timeout
        self.identity_headers = dict(identity_headers or {})
        self.costs = Costs()
        self._dirty = True
        self._written: dict[str, set[str]] | None = None  # what to restore; None: all
        self.stuck: list[str] = []  # requests whose worker threads never came back
        self.serial_seconds: dict[str, float] = {}  # endpoint -> slowest serial duration
        self.deadline: float | None = None  # monotonic: requests still running are cut

    #: the hang budget grows by this many times the slowest serial duration: a request
    #: that takes 2 s alone is not hung at 3 s under load
    SLOW_FACTOR = 2.0

    def note_serial(self, endpoint: str, seconds: float) -> None:
        """A request of ``endpoint`` ran alone (a serial reference) in ``seconds``."""
        if seconds > self.serial_seconds.get(endpoint, 0.0):
            self.serial_seconds[endpoint] = seconds

    def hang_budget(self, requests: Sequence[Request], hang_timeout: float) -> float:
        """``--hang-timeout`` scaled by the slowest serial duration of these requests'
        endpoints on this run."""
        slowest = max((self.serial_seconds.get(r.endpoint, 0.0) for r in requests), default=0.0)
        return hang_timeout + self.SLOW_FACTOR * slowest

    async def execute(self, scenario: Scenario, dispatch: Dispatch) -> Execution:
        """Run ``scenario`` from the snapshot and return everything it produced."""
        costs = self.costs
        started = time.perf_counter()
        gates.watch_stray(b.engine for b in self.databases.backends.values())
        if gates.take_stray():  # a background thread wrote since: any table may differ
            self._dirty, self._written = True, None
        if self._dirty:
            self.databases.reset(self._written)
        if self.stores is not None:
            self.stores.reset()
        # until this execution ends well, the next one restores everything
        self._dirty, self._written = True, None
        after_reset = time.perf_counter()
        scheduler = dispatch.scheduler(scenario, self)
        recording = Recording(
            scheduler=scheduler,
            databases=self.databases.names_by_key(),
            free_running=dispatch.mode == "free",
            faults=scenario.faults if dispatch.mode == "controlled" else None,
        )
        stuck = False
        with recording:
            try:
                init = [
                    await self.send(recording, "init", i, r) for i, r in enumerate(scenario.init)
                ]
                responses = await dispatch.send(self, recording, scenario.requests)
            finally:
                if scheduler is not None:
                    scheduler.close()
                    costs.add_scheduler(scheduler.stats)
            if scheduler is not None and scheduler.crash is not None:
                raise BackgroundCrash("the scheduler's monitor", scheduler.crash_text())
            # a request given up whose app call has not returned left its thread behind
            stuck = any(
                r is not None and r.status == 0 and ("concurrent", i) not in recording.finished
                for i, r in enumerate(responses)
            )
            observers = [
                await self.send(recording, "observe", i, r)
                for i, r in enumerate(scenario.observers)
            ]
        after_requests = time.perf_counter()
        if self.stores is not None:
            self.stores.check()  # a request used a Redis client the fuzzer does not own
        trace = recording.trace()
        schema_change = None
        if dispatch.mode != "serial" and any(leak.in_transaction for leak in recording.leaks):
            schema_change = self._probe_schema_changes(recording.leaks, trace)
        self._recover(recording, stuck)
        hang = scheduler.hang if scheduler is not None else recording.hang
        unclear = bool(recording.leaks) or hang is not None or stuck
        self._dirty = recording.wrote or unclear
        # only the tables its statements wrote changed (and what their foreign keys
        # cascade to): restore and read just those, unless it left something unclear
        self._written = None if unclear else recording.written
        tables = self.databases.read(self._written) if self._dirty else self.databases.initial
        stray = tuple(gates.take_stray())  # written by no request while it ran
        if stray:  # the next restore covers every table
            self._dirty, self._written = True, None
        finished = time.perf_counter()
        costs.executions += 1
        costs.reset += after_reset - started
        costs.requests += after_requests - after_reset
        costs.read += finished - after_requests
        return Execution(
            mode=dispatch.mode,
            order=getattr(dispatch, "order", None),
            responses=tuple(responses),
            tables=tables,
            trace=trace,
            init=tuple(init),
            observers=tuple(observers),
            leaks=tuple(recording.leaks),
            wrong_engine=tuple(recording.wrong_engine),
            hang=hang,
            schema_change=schema_change,
            stray_writes=stray,
            cut=recording.cut,
            timings={
                "reset": after_reset - started,
                "requests": after_requests - after_reset,
                "read": finished - after_requests,
            },
        )

    def _probe_schema_changes(self, leaks: Sequence[Leak], trace: Sequence[Step]) -> Hang | None:
        """Ask the DDL probe (db/ddl.py) whether a schema change of a table that a leaked
        transaction used would wait: the leak would hang the next migration."""
        used: dict[int, dict[str, set[str]]] = {}  # request -> database -> tables
        for leak in leaks:
            if not leak.in_transaction or leak.request < 0:
                continue
            for step in trace:
                if (
                    step.request == leak.request
                    and step.connection == leak.connection
                    and step.kind == "sql"
                ):
                    seen = step.access
                    tables = used.setdefault(leak.request, {}).setdefault(leak.database, set())
                    tables |= seen.reads | ({seen.write} if seen.write else set())
        wanted: dict[str, set[str]] = {}
        for by_database in used.values():
            for database, tables in by_database.items():
                wanted.setdefault(database, set()).update(tables)
        blocked = self.databases.blocked_schema_changes(wanted) if wanted else {}
        if not blocked:
            return None
        holders = {}
        for request, by_database in sorted(used.items()):
            held = sorted(t for d, ts in by_database.items() for t in ts if (d, t) in blocked)
            if held:
                holders[request] = f"an open transaction that used {', '.join(held)}"
        return Hang(
            seconds=0.0,
            blocked={},
            waiting={},
            lock="; ".join(blocked[key] for key in sorted(blocked)),
            holders=holders,
        )

    def _recover(self, recording: Recording, stuck: bool) -> None:
        """Leave nothing behind for the next execution: end leaked transactions, and give
        the server fresh threads when one leaked state or got stuck."""
        for dbapi in recording.leaked_connections:
            with contextlib.suppress(Exception):  # a broken one: the pool replaces it
                dbapi.rollback()
        if recording.leaks or stuck:
            self.server.restart()
            self.costs.restarts += 1
            # The old worker threads are gone; what they leaked (a scoped session holding
            # a pooled connection) is only reachable through reference cycles. Collect it
            # now, so its connections go back to their pools before the next execution:
            # otherwise every restart strands a pool's worth and the pool runs dry.
            gc.collect()

    async def send_all(
        self, recording: Recording, requests: Sequence[Request], limits: Limits | None = None
    ) -> list[Response | None]:
        """Send all requests at once, watched (watch.py) when ``limits`` are given:
        requests whose threads stood still for ``stuck_grace`` seconds after the hang
        are given up (status 0): their threads are stuck for good (a deadlock in
        Python), and waiting longer changes nothing. Requests still running at the
        deadline are cut."""
        responses: list[Response | None] = [None] * len(requests)
        timeout = self.request_timeout + self.SLOW_FACTOR * max(
            (self.serial_seconds.get(r.endpoint, 0.0) for r in requests), default=0.0
        )
        if self.deadline is not None and recording.scheduler is None:
            timeout = max(timeout, self.deadline - time.monotonic() + 1.0)

        async def one(index: int, request: Request) -> None:
            # watched, the watch gives up first: on a request that stands still (stuck),
            # or that still runs at ``timeout`` (slow); the client's own timeout is a backstop
            wait = 2 * timeout if limits is not None else timeout
            responses[index] = await self.send(
                recording, "concurrent", index, request, timeout=wait
            )

        async with trio.open_nursery() as watcher:
            async with trio.open_nursery() as nursery:
                if limits is not None:
                    watcher.start_soon(
                        functools.partial(
                            watch,
                            recording,
                            lambda: [i for i, r in enumerate(responses) if r is None],
                            nursery.cancel_scope,
                            hang_budget=self.hang_budget(requests, limits.hang_timeout),
                            grace=limits.stuck_grace,
                            deadline=self.deadline if recording.scheduler is None else None,
                            slow_after=timeout,
                        )
                    )
                for index, request in enumerate(requests):
                    nursery.start_soon(one, index, request)
            watcher.cancel_scope.cancel()
        stuck = [i for i, r in enumerate(responses) if r is None]
        if recording.slow:  # their threads still run: let them end before the next reset
            await _drain(recording, stuck, timeout)
        for index in stuck:
            responses[index] = Response(
                0,
                f"no response: {recording.cut}"
                if recording.cut
                else "no response: its thread is stuck (see the hang)",
                recording.errors.get(("concurrent", index), ""),
            )
        if stuck and not recording.cut:
            self.stuck = sorted(
                set(self.stuck) | {recording.header("concurrent", i) for i in stuck}
            )
        return responses

    async def send(
        self,
        recording: Recording,
        phase: Phase,
        index: int,
        request: Request,
        timeout: float | None = None,
    ) -> Response:
        headers = {HEADER: recording.header(phase, index)}
        if request.identity is not None:
            headers.update(self.identity_headers.get(request.identity, {}))
        if request.headers:
            headers.update(request.headers)
        self.costs.http_requests += 1
        try:
            reply = await self.client.request(
                request.method,
                self.server.base_url + request.path,
                json=request.json,
                data=form_data(request.form),
                params=dict(request.params) if request.params else None,
                headers=headers,
                timeout=timeout or self.request_timeout,
            )
        except httpx.TimeoutException:
            self.server.check()
            return Response(
                0,
                f"no response within {timeout or self.request_timeout:g} s",
                recording.errors.get((phase, index), ""),
            )
        except httpx.TransportError as exc:
            self.server.check()
            return Response(0, f"connection failed: {exc}", "")
        return Response(
            reply.status_code,
            _body(reply),
            recording.errors.get((phase, index), ""),
            reply.headers.get("location", ""),
        )


async def _drain(recording: Recording, indices: Sequence[int], seconds: float) -> None:
    """Wait up to ``seconds`` for the app calls of these concurrent requests to return."""
    until = time.monotonic() + seconds
    keys = {("concurrent", i) for i in indices}
    while not keys <= recording.finished and time.monotonic() < until:
        await trio.sleep(0.05)


def form_data(form: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A form's fields as httpx sends them: booleans as an HTML checkbox does (checked:
    "y"; unchecked: left out), ``None`` left out, lists as repeated fields."""
    if form is None:
        return None
    data: dict[str, Any] = {}
    for key, value in form.items():
        if value is None or value is False:
            continue
        data[key] = "y" if value is True else value
    return data


def _body(reply: httpx.Response) -> Any:
    content_type = reply.headers.get("content-type", "")
    if "json" in content_type:
        try:
            return json.loads(reply.content)
        except ValueError:
            pass
    text = reply.text
    return text if len(text) <= 2000 else text[:2000] + "…"


def new_client() -> httpx.AsyncClient:
    """One client per run: no cookies kept between requests (each identity sends its own),
    no proxies from the environment (traffic stays on loopback)."""
    no_cookies = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return httpx.AsyncClient(
        cookies=no_cookies,
        headers={"User-Agent": USER_AGENT},
        trust_env=False,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
    )
