"""How every command runs its action: the exit code it gives, one line for an error, 130
when stopped; and a stdout that outlives a reader who closed it (``| head -1``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TextIO, cast

from fuzzer.errors import FuzzerError, InternalError
from fuzzer.report import reporting


class _Stdout:
    """``sys.stdout`` that outlives its reader: when the pipe closes (``| head -1``), the
    rest of the output goes to /dev/null and the run goes on to its own exit code. (Rich
    would otherwise exit with 1, the findings code, at the first write that fails.)"""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self.reader_gone = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())  # what is still buffered goes there too
        finally:
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard(action: Callable[[], int]) -> NoReturn:
    """Run a command's action: its exit code, one line for an error, 130 when stopped.

    SIGINT and SIGTERM (a CI job's timeout) set a flag the search checks before each
    execution (fuzzer/search/interrupt.py), so a stop is never lost, wherever it lands;
    a stop that came after the last check is still answered with 130."""
    from fuzzer.search import interrupt

    if not isinstance(sys.stdout, _Stdout):
        sys.stdout = cast(TextIO, _Stdout(sys.stdout))
    try:
        with interrupt.installed():
            code = action()
            interrupt.check()
    except FuzzerError as exc:
        reporting.error(str(exc))
        sys.exit(exc.exit_code)
    except BaseException as exc:
        if interrupt.is_stop(exc):
            reporting.error("interrupted; findings written so far are kept in their reports")
            sys.exit(130)
        if not isinstance(exc, Exception):
            raise
        import traceback  # a bug in the fuzzer, never the user's fault

        traceback.print_exc()
        reporting.error(f"{InternalError.__doc__} ({type(exc).__name__}: {exc})")
        sys.exit(InternalError.exit_code)
    sys.exit(code)
