"""The app's own output, kept out of the fuzzer's: its logging and its stderr go to a file.

An app that logs a traceback for every 500 printed 21,749 lines in one run, and the
fuzzer's own lines drowned (issue 19). For the length of a run, ``AppLog``

* puts a stream that writes to the log file in place of ``sys.stderr`` (``print(...,
  file=sys.stderr)``, ``traceback.print_exc()``, a ``logging.basicConfig()`` or a
  ``StreamHandler()`` the app creates meanwhile, and logging's last resort);
* points every logging handler already writing to the terminal's stderr or stdout at it
  (handlers the app created at import time), and the WSGI ``wsgi.errors`` of every
  fuzzed request (Flask's default handler);
* counts the log records (and those of level ERROR or above) and the lines written.

The fuzzer's own messages still reach the terminal (``reporting`` is told where the
real stderr is). With ``live`` (``-v``) everything goes to the terminal as well. At the
end every handler and stream is put back, and the log file stays where it was written
(the caller moves it into the run directory).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import Any, TextIO, TypeVar

from fuzzer.execute import gates
from fuzzer.modes.logsummary import AppLogSummary
from fuzzer.report import reporting

T = TypeVar("T")
_open: list[AppLog] = []  # the logs open now, innermost last


class _LogStream:
    """A text stream into the log file that counts its lines; tees to ``echo`` if set."""

    def __init__(self, handle: TextIO, echo: TextIO | None, after: TextIO | None = None) -> None:
        self._handle = handle
        self._echo = echo
        self._after = after  # where a write goes once the log is closed (the real stderr)
        self._lock = threading.Lock()
        self.lines = 0

    def write(self, text: str) -> int:
        with self._lock:
            if self._handle.closed:  # a handler the app made during the run, used after it
                return self._after.write(text) if self._after is not None else len(text)
            self.lines += text.count("\n")
            self._handle.write(text)
            if self._echo is not None:
                self._echo.write(text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with self._lock:
            self._handle.flush()
            if self._echo is not None:
                self._echo.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        """The log file's descriptor (faulthandler, a subprocess given ``sys.stderr``)."""
        return self._handle.fileno()

    @property
    def buffer(self) -> Any:
        """The log file's bytes (code that writes bytes to ``sys.stderr.buffer``)."""
        self.flush()
        return self._handle.buffer

    @property
    def encoding(self) -> str:
        return "utf-8"


class _Counter:
    """Counts the log records made (through logging's record factory: a handler on the
    root logger would stop the app's own ``logging.basicConfig()`` from doing anything)."""

    def __init__(self) -> None:
        self.records = 0
        self.errors = 0
        self._factory: Callable[..., logging.LogRecord] | None = None

    def install(self) -> None:
        factory = self._factory = logging.getLogRecordFactory()

        def counted(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = factory(*args, **kwargs)
            self.records += 1
            self.errors += record.levelno >= logging.ERROR
            return record

        logging.setLogRecordFactory(counted)

    def remove(self) -> None:
        if self._factory is not None:
            logging.setLogRecordFactory(self._factory)
            self._factory = None


class AppLog:
    """For the length of a ``with`` block, the app's logging and stderr go to a file."""

    def __init__(self, *, live: bool = False) -> None:
        self.live = live
        self.path = ""
        self._stream: _LogStream | None = None
        self._counter = _Counter()
        self._saved_stderr: TextIO | None = None
        self._moved: list[tuple[logging.StreamHandler[Any], Any]] = []
        self._handle: TextIO | None = None

    def __enter__(self) -> AppLog:
        fd, self.path = tempfile.mkstemp(prefix="fuzzer-app-", suffix=".log")
        self._handle = os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace")
        real = sys.stderr
        self._saved_stderr = real
        self._stream = _LogStream(self._handle, real if self.live else None, real)
        reporting.use_stderr(real)  # the fuzzer's own errors and warnings
        sys.stderr = self._stream
        gates.errors_stream = self._stream
        self._counter.install()
        self.capture_handlers()
        _open.append(self)
        return self

    def capture_handlers(self) -> None:
        """Point at the log every logging handler that writes to the terminal (call again
        after the app is built: its factory may add some)."""
        assert self._stream is not None and self._saved_stderr is not None
        terminal = {id(self._saved_stderr), id(sys.__stderr__), id(sys.__stdout__)}
        for handler in _handlers():
            if isinstance(handler, logging.StreamHandler) and id(handler.stream) in terminal:
                self._moved.append((handler, handler.stream))
                handler.setStream(self._stream)

    def __exit__(self, kind: object, *exc: object) -> None:
        if self in _open:
            _open.remove(self)
        for handler, stream in reversed(self._moved):
            if handler.stream is self._stream:
                handler.setStream(stream)
        self._moved.clear()
        for handler in _handlers():  # made by the app during the run, on our stderr
            if isinstance(handler, logging.StreamHandler) and handler.stream is self._stream:
                handler.setStream(self._saved_stderr)
        self._counter.remove()
        gates.errors_stream = None
        if sys.stderr is self._stream and self._saved_stderr is not None:
            sys.stderr = self._saved_stderr
        reporting.use_stderr(None)
        if self._handle is not None:
            self._handle.close()
        if kind is not None and self._stream is not None and self._stream.lines:
            reporting.warning(f"what the app logged before this is in {self.path}")
        elif kind is not None and os.path.exists(self.path):
            os.remove(self.path)

    def summary(self, keep_in: Callable[[], str | None]) -> AppLogSummary:
        """What the app wrote; the log moved into the directory ``keep_in()`` gives as
        ``app.log`` when it holds anything and there is one, else removed."""
        lines = self._stream.lines if self._stream is not None else 0
        directory = keep_in() if lines else None
        path = None
        if directory is not None:
            path = os.path.join(directory, "app.log")
            shutil.move(self.path, path)
        elif os.path.exists(self.path):
            os.remove(self.path)
        return AppLogSummary(self._counter.records, self._counter.errors, lines, path)


def _handlers() -> list[logging.Handler]:
    """Every handler of every logger that exists now, the root's included."""
    loggers: list[Any] = [logging.getLogger()]
    loggers += [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    return [h for logger in loggers for h in logger.handlers]


def capture_handlers() -> None:
    """Point at the open log, if any, the handlers that write to the terminal (the
    session calls it once the app is built: its factory and setup may add some)."""
    if _open:
        _open[-1].capture_handlers()


def logged(
    call: Callable[[], T], *, live: bool, keep_in: Callable[[T], str | None]
) -> tuple[T, AppLogSummary]:
    """``call()`` with the app's logging and stderr in a log; what it returns, and what the
    app logged, the log moved to ``keep_in(result)``/app.log (the run directory)."""
    log = AppLog(live=live)
    with log:
        result = call()
    return result, log.summary(lambda: keep_in(result))
