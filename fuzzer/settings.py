"""One run's options, declared once: what the command line, ``run``/``fuzz``, the soak and
the session accept whole.

``Settings()`` is the library's default: SQLite, 200 examples, and nothing written into
the working directory (no report directory, no example database) unless asked. The
command line asks for both (``reports/`` and ``.fuzzer/examples``: ``Settings.for_cli``).
Options are checked when a ``Settings`` is made: a bad one is an ``InvalidOption`` with
one line saying what is wrong and how to fix it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fuzzer.errors import InvalidOption
from fuzzer.model import FAULT_KINDS

#: where the command line writes reports, and keeps Hypothesis's example database
REPORTS = "reports"
EXAMPLES = os.path.join(".fuzzer", "examples")
#: ``--db`` from the environment (the CLI, ``fuzz()``, generated regression tests)
DB_ENVIRONMENT = "FUZZER_DB"

ISOLATION_LEVELS = ("read-uncommitted", "read-committed", "repeatable-read", "serializable")
Schedule = Literal["conflict", "random", "pct"]
SCHEDULES: tuple[Schedule, ...] = ("conflict", "random", "pct")


@dataclass(frozen=True)
class Settings:
    """Budgets, seed, database, isolation, limits, report directory: one run's options."""

    # the database
    db: str = "sqlite"  # sqlite, mariadb, mysql, postgres, or a URL on 127.0.0.1
    isolation: str | None = None  # None: the database's own default level
    keep_db: bool = False
    allow_wipe: bool = False  # an existing database not named as scratch may be emptied
    # budgets
    max_examples: int = 200
    time_budget: float | None = None  # seconds of searching; shrinking has its own budget
    shrink_budget: float = 60.0  # seconds for shrinking and confirming every finding
    seed: int | None = None  # a repeatable run (without the example database)
    # limits
    hang_timeout: float = 3.0  # no progress for this long: a hang
    stuck_grace: float = 6.0  # a hang still unanswered this long after: stuck for good
    port: int = 0  # the loopback port to serve the app on (0: a free one)
    # what is searched and what fails the run
    schedule: Schedule = "conflict"
    strict: bool = False  # a request that finished before another started precedes it
    strict_isolation: bool = False  # refuse an app that opens a Redis database not its scratch
    allow_unexercised: bool = False
    fail_on: frozenset[str] = field(default_factory=lambda: frozenset({"all"}))
    faults: tuple[str, ...] = ()  # --faults: the kinds of error to inject (none: off)
    # files (None: nothing written)
    report_dir: str | None = None
    example_db: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.faults, str) or not isinstance(self.faults, tuple):
            given = (self.faults,) if isinstance(self.faults, str) else self.faults
            object.__setattr__(self, "faults", tuple(given))
        if not isinstance(self.fail_on, frozenset):
            given = (self.fail_on,) if isinstance(self.fail_on, str) else self.fail_on
            object.__setattr__(self, "fail_on", frozenset(given))
        for name in ("report_dir", "example_db"):  # a pathlib.Path is welcome
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                object.__setattr__(self, name, os.fspath(value))
        _check(self)

    @classmethod
    def of(cls, settings: Settings | None = None, **changes: Any) -> Settings:
        """``settings`` (default: ``Settings()``) with ``changes``; an unknown name is a
        ``TypeError`` that lists the known ones."""
        return (settings or cls()).replace(**changes)

    @classmethod
    def for_cli(cls, **changes: Any) -> Settings:
        """The command line's defaults: reports in ``reports/``, failures remembered in
        ``.fuzzer/examples``."""
        return cls(report_dir=REPORTS, example_db=EXAMPLES).replace(**changes)

    @classmethod
    def from_environment(
        cls, settings: Settings | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """``settings`` with ``--db`` taken from ``$FUZZER_DB`` when that is set."""
        db = (os.environ if environ is None else environ).get(DB_ENVIRONMENT)
        return cls.of(settings, **({"db": db} if db else {}))

    def replace(self, **changes: Any) -> Settings:
        unknown = sorted(set(changes) - set(names()))
        if unknown:
            raise TypeError(
                f"unknown setting(s) {', '.join(unknown)}; the settings are: {', '.join(names())}"
            )
        return dataclasses.replace(self, **changes) if changes else self

    def to_json(self) -> dict[str, Any]:
        return {
            f.name: sorted(value) if isinstance(value, frozenset) else value
            for f in dataclasses.fields(self)
            for value in [getattr(self, f.name)]
        }


def names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(Settings))


def split(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` as (settings, the rest): for functions that take both as keywords."""
    known = set(names())
    return (
        {k: v for k, v in options.items() if k in known},
        {k: v for k, v in options.items() if k not in known},
    )


def _check(s: Settings) -> None:
    """Each option's type and range, one line per problem (the first one found)."""
    _at_least("max_examples", s.max_examples, 1, integer=True)
    _at_least("port", s.port, 0, integer=True)
    if s.port > 65535:
        raise InvalidOption(f"port {s.port} is not a TCP port; give 0..65535 (0: a free one)")
    for name in ("shrink_budget", "hang_timeout", "stuck_grace"):
        _at_least(name, getattr(s, name), 0.0, strictly=True)
    if s.time_budget is not None:
        _at_least("time_budget", s.time_budget, 0.0, strictly=True)
    if s.seed is not None and (isinstance(s.seed, bool) or not isinstance(s.seed, int)):
        raise InvalidOption(f"seed must be an integer or None, not {s.seed!r}")
    if s.isolation is not None and s.isolation not in ISOLATION_LEVELS:
        raise InvalidOption(
            f"isolation {s.isolation!r} is not a level; give one of {', '.join(ISOLATION_LEVELS)}"
        )
    if s.schedule not in SCHEDULES:
        raise InvalidOption(
            f"schedule {s.schedule!r} is not a schedule mode; give one of {', '.join(SCHEDULES)}"
        )
    unknown = [k for k in s.faults if k not in FAULT_KINDS]
    if unknown:
        raise InvalidOption(
            f"faults {unknown[0]!r} is not a kind of injected error; give any of "
            f"{', '.join(FAULT_KINDS)}"
        )
    if not isinstance(s.db, str) or not s.db:
        raise InvalidOption(
            f"db must be sqlite, mariadb, mysql, postgres or a URL on 127.0.0.1, not {s.db!r}"
        )
    for name in ("report_dir", "example_db"):
        value = getattr(s, name)
        if value is not None and not isinstance(value, str):
            raise InvalidOption(f"{name} must be a directory (a path) or None, not {value!r}")


def _at_least(
    name: str, value: Any, low: float, *, integer: bool = False, strictly: bool = False
) -> None:
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    fine = isinstance(value, kinds) and not isinstance(value, bool)
    if fine:
        fine = value > low if strictly else value >= low
    if not fine:
        what = "an integer" if integer else "a number"
        bound = f"above {low:g}" if strictly else f"at least {low:g}"
        raise InvalidOption(f"{name} must be {what} {bound}, not {value!r}")
