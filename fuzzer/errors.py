"""One exception tree for everything the fuzzer raises on purpose.

::

    FuzzerError                 base class; the CLI turns it into one line and exit code 2
    ├── InvalidTarget           the target reference or the Target object is wrong
    ├── TargetSetupError        the target's app factory or setup function raised
    ├── DatabaseError           a bad database URL or a database that cannot be used
    │   └── UnsafeDatabase      refused by the safety guard: the fuzzer deletes rows
    ├── ServerError             the loopback server could not start, or it died
    ├── InvalidReport           a report file that cannot be read or replayed
    ├── StoreError              a soak campaign's store that is gone or damaged (kept aside)
    ├── InvalidOption           an option's value cannot be used (a report directory that is a file)
    └── InternalError           a bug in the fuzzer itself, never the user's fault
        └── BackgroundCrash     one of the fuzzer's background threads crashed (its traceback)

Every message says what was given, what was expected, and how to fix it, on one line.
"""

from __future__ import annotations

import traceback


class FuzzerError(Exception):
    """Base class of every error the fuzzer raises on purpose."""

    exit_code = 2


class InvalidTarget(FuzzerError):
    """The target reference cannot be loaded, or the object it names is not a valid Target."""


class TargetSetupError(FuzzerError):
    """The target's app factory or its setup function raised."""


class DatabaseError(FuzzerError):
    """A database URL that cannot be parsed, or a database that cannot be reached or used."""


class UnsafeDatabase(DatabaseError):
    """The safety guard refused a database: the fuzzer deletes rows and must not touch real data."""


class ServerError(FuzzerError):
    """The loopback HTTP server could not start (a port in use) or it died."""


class InvalidReport(FuzzerError):
    """A report file that cannot be read, or was written by an incompatible version."""


class StoreError(FuzzerError):
    """A soak campaign's store that is gone (Redis stopped) or holds what this version
    cannot read (a damaged file, a key of the wrong type): an environment error."""


class InvalidOption(FuzzerError):
    """A command-line option whose value cannot be used, found before any work starts."""


class InternalError(FuzzerError):
    """A bug in the fuzzer itself. Please report it with the command that caused it."""

    exit_code = 3


class BackgroundCrash(InternalError):
    """A background thread of the fuzzer (the scheduler's monitor) crashed: the run stops
    rather than go on without it. The message holds the thread's traceback."""

    def __init__(self, thread: str, traceback_text: str) -> None:
        super().__init__(
            f"{thread} thread crashed; this is a bug in the fuzzer itself, please report "
            f"it with the command that caused it:\n{traceback_text}"
        )
        self.thread = thread


def describe(exc: BaseException) -> str:
    """An exception a target's code raised, on one line: its type, message and the file
    and line it came from."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        last = frames[-1]
        where = f" at {last.filename.rsplit('/', 1)[-1]}:{last.lineno}"
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}{where}"
