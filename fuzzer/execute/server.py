"""Serve the target's WSGI app on 127.0.0.1 with a fixed pool of reused worker threads.

Waitress runs it, as it would in production: a listener thread accepts connections
and a fixed pool of worker threads handles the requests, reused from one request to
the next. Thread-local state that leaks between requests (a scoped session never
removed) only shows when threads are reused, so the pool is small and long-lived:
one server per run, restarted only when an execution left a worker thread stuck or a
request leaked a connection (restarting gives every thread fresh thread-locals).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import threading
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from fuzzer.errors import ServerError
from fuzzer.execute.gates import GatedApp

HOST = "127.0.0.1"

for _name in ("waitress", "waitress.queue"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


class Server:
    """One loopback HTTP server for the target's app."""

    def __init__(self, app: Any, *, threads: int = 8, port: int = 0) -> None:
        self.app = GatedApp(app)
        self.threads = threads
        self.requested_port = port
        self.port = 0
        self.restarts = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        if self.requested_port:
            self._check_port()  # a failed create_server leaks its socket, pipe and threads
        try:
            self._server = create_server(
                self.app,
                host=HOST,
                port=self.requested_port,
                threads=self.threads,
                ident="fuzzer",
                expose_tracebacks=False,
                channel_timeout=300,
                connection_limit=1000,
            )
        except OSError as exc:
            raise self._bind_error(exc) from None
        self.port = int(self._server.effective_port)
        self._failure = None
        self._thread = threading.Thread(target=self._serve, name="fuzzer-server", daemon=True)
        self._thread.start()

    def _check_port(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as waitress binds
            try:
                probe.bind((HOST, self.requested_port))
            except OSError as exc:
                raise self._bind_error(exc) from None

    def _bind_error(self, exc: OSError) -> ServerError:
        if exc.errno == errno.EADDRINUSE:
            return ServerError(
                f"Port {self.requested_port} on {HOST} is in use; pick another with "
                f"--port, or leave --port out to let the fuzzer take a free one"
            )
        return ServerError(f"Cannot listen on {HOST}:{self.requested_port}: {exc}")

    def _serve(self) -> None:
        try:
            self._server.run()
        except BaseException as exc:  # reported by check()
            self._failure = exc

    def check(self) -> None:
        """Raise ServerError if the server thread has died."""
        if self._thread is not None and not self._thread.is_alive() and self._server is not None:
            cause = f": {type(self._failure).__name__}: {self._failure}" if self._failure else ""
            raise ServerError(
                f"The loopback server on {HOST}:{self.port} stopped{cause}; this is a bug in the "
                f"fuzzer or the target's app killed its process, rerun with --verbose"
            )

    def stop(self, timeout: float = 2.0) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        loop = self._thread
        try:
            if loop is not None and loop.is_alive():
                # Close every socket from inside the event loop: its map empties and the
                # loop returns at once. Closed from here, it would sleep out its 1 s
                # select timeout first (and keep-alive channels would keep it running).
                # The thunk is queued before the pipe is written to: a loop woken by a
                # worker's own pull may run it, and close the pipe, before our write.
                with contextlib.suppress(OSError):
                    server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
                loop.join(timeout)
            if loop is None or loop.is_alive():
                server.close()
        finally:
            dispatcher = getattr(server, "task_dispatcher", None)
            if dispatcher is not None:
                dispatcher.shutdown(cancel_pending=True, timeout=timeout)

    def restart(self) -> None:
        """A fresh server with fresh worker threads (their thread-locals start empty)."""
        self.stop(timeout=0.5)
        self.start()
        self.restarts += 1

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
