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


LIBRARY_DEFAULT = object()  # Flag.default: the field's own default


@dataclass(frozen=True)
class Flag:
    """How a setting is given on the command line, declared with the setting: the CLI
    (fuzzer/cli/options.py) makes one click option of it for each command it names, in
    the order of the fields."""

    name: str  # "--max-examples"
    commands: tuple[str, ...]  # the commands that take it: run, replay, matrix, stress, soak
    help: str = ""
    short: str = ""  # "-n"
    kind: type = str  # int, float, str; bool: a flag given alone
    low: float | None = None  # a range the command line checks (IntRange, FloatRange)
    high: float | None = None
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    show_default: bool = False
    envvar: str | None = None
    default: Any = LIBRARY_DEFAULT  # the command line's default, when not the library's
    alone: str | None = None  # the value of the option given without one (--faults)
    parse: str | None = None  # "module:function" that turns the text into the value
    # per command, what differs there: {"matrix": {"default": 100, "help": "..."}}
    per_command: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def get(self, command: str, name: str) -> Any:
        return self.per_command.get(command, {}).get(name, getattr(self, name))


def setting(default: Any, flag: Flag | None = None) -> Any:
    """A field of ``Settings``, and its option on the command line (``flag``)."""
    return field(default=default, metadata={"flag": flag} if flag else {})


_HANG = "No progress for this long: a hang."


@dataclass(frozen=True)
class Settings:
    """Budgets, seed, database, isolation, limits, report directory: one run's options.

    Each field with a ``Flag`` is an option of the commands it names: declared here once."""

    # the database
    db: str = setting(  # sqlite, mariadb, mysql, postgres, or a URL on 127.0.0.1
        "sqlite",
        Flag(
            "--db",
            ("run", "replay", "stress", "soak"),
            "sqlite (a temporary file), mysql, mariadb, postgres, or a SQLAlchemy URL on "
            f"127.0.0.1 (or in ${DB_ENVIRONMENT}, so a password stays out of the command line).",
            metavar="URL",
            show_default=True,
            envvar=DB_ENVIRONMENT,
            per_command={"replay": {"default": None, "show_default": False}},
        ),
    )
    # budgets
    max_examples: int = setting(
        200,
        Flag(
            "--max-examples",
            ("run", "matrix"),
            "Examples to try (each: one controlled run of a few concurrent requests).",
            short="-n",
            kind=int,
            low=1,
            show_default=True,
            per_command={"matrix": {"default": 100, "help": "Examples per cell."}},
        ),
    )
    seed: int | None = setting(  # a repeatable run (without the example database)
        None,
        Flag(
            "--seed",
            ("run", "matrix", "stress", "soak"),
            "Make the search repeatable.",
            kind=int,
            per_command={
                "matrix": {"help": "Make every cell's search repeatable."},
                "stress": {"help": "Make the drawn requests repeatable."},
                "soak": {"help": "First seed of the rotation (default: resume it)."},
            },
        ),
    )
    time_budget: float | None = setting(  # seconds of searching; shrinking has its own
        None,
        Flag(
            "--time-budget",
            ("run",),
            "Stop searching after this long (shrinking has its own budget).",
            kind=float,
            low=0.1,
            metavar="SECONDS",
        ),
    )
    shrink_budget: float = setting(  # seconds for shrinking and confirming every finding
        60.0,
        Flag(
            "--shrink-budget",
            ("run",),
            "At most this long shrinking and confirming the findings (after the search).",
            kind=float,
            low=0.1,
            metavar="SECONDS",
            show_default=True,
        ),
    )
    isolation: str | None = setting(  # None: the database's own default level
        None,
        Flag(
            "--isolation",
            ("run", "replay", "soak"),
            "Isolation level for the target's engines (default: the database's own).",
            choices=ISOLATION_LEVELS,
        ),
    )
    # files (None: nothing written; the command line's defaults: Settings.for_cli)
    report_dir: str | None = setting(
        None,
        Flag(
            "--report-dir",
            ("run", "matrix", "stress", "soak"),
            "Where to write the JSON of each finding.",
            metavar="DIR",
            show_default=True,
            default=REPORTS,
            per_command={
                "matrix": {
                    "help": "Where to keep app.log, what the app logged in every cell (in a "
                    "run directory)."
                },
                "stress": {"help": ""},
                "soak": {
                    "help": "Where to write the run's directory: JSON per finding, junit.xml, "
                    "report.html."
                },
            },
        ),
    )
    keep_db: bool = setting(
        False, Flag("--keep-db", ("run",), "Keep the scratch database(s) afterwards.", kind=bool)
    )
    allow_wipe: bool = setting(  # an existing database not named as scratch may be emptied
        False,
        Flag(
            "--allow-wipe",
            ("run", "soak"),
            "Allow an existing database whose name does not start with fuzz/test.",
            kind=bool,
        ),
    )
    # limits
    port: int = setting(  # the loopback port to serve the app on (0: a free one)
        0,
        Flag(
            "--port",
            ("run",),
            "Serve the app on this loopback port (default: a free one).",
            kind=int,
            low=0,
            high=65535,
        ),
    )
    hang_timeout: float = setting(  # no progress for this long: a hang
        3.0,
        Flag(
            "--hang-timeout",
            ("run", "replay", "matrix", "stress", "soak"),
            "No progress for this long (no step, no thread's CPU clock or stack moving; "
            "grown by twice the slowest serial duration of the requests): a hang.",
            kind=float,
            low=0.1,
            metavar="SECONDS",
            show_default=True,
            per_command={
                "replay": {"help": ""},
                "matrix": {"help": _HANG},
                "stress": {
                    "help": "No progress for this long (no answer, no thread's CPU clock or "
                    "stack moving, no sleep running): a hang."
                },
                "soak": {"help": _HANG},
            },
        ),
    )
    # what is searched and what fails the run
    strict: bool = setting(  # a request that finished before another started precedes it
        False,
        Flag(
            "--strict",
            ("run",),
            "A request that finished before another started must precede it.",
            kind=bool,
        ),
    )
    strict_isolation: bool = setting(  # refuse a Redis database not the scratch one
        False,
        Flag(
            "--strict-isolation",
            ("run",),
            "Refuse an app that opens a Redis database other than the fuzzer's scratch one.",
            kind=bool,
        ),
    )
    allow_unexercised: bool = setting(
        False,
        Flag(
            "--allow-unexercised",
            ("run",),
            "Fuzz even when the survey exercised nothing (every request turned away, or most "
            "endpoints ran no SQL).",
            kind=bool,
        ),
    )
    fail_on: frozenset[str] = setting(
        frozenset({"all"}),
        Flag(
            "--fail-on",
            ("run",),
            "What makes the run exit 1: all (every confirmed finding), rows (all but findings "
            "where only responses differ), or a comma-separated list of kinds.",
            metavar="WHAT",
            show_default=True,
            default="all",
            parse="fuzzer.findings:parse_fail_on",
        ),
    )
    faults: tuple[str, ...] = setting(  # the kinds of error to inject (none: off)
        (),
        Flag(
            "--faults",
            ("run", "matrix", "soak"),
            "Inject retryable database errors into the schedule: --faults alone injects "
            "deadlock, serialization and timeout (what the database can raise of them); or "
            "name kinds: deadlock,serialization,timeout,disconnect, or all.",
            metavar="KINDS",
            default=None,
            alone="default",
            parse="fuzzer.execute.faults:parse",
        ),
    )
    # not on the command line
    stuck_grace: float = 6.0  # a hang still unanswered this long after: stuck for good
    schedule: Schedule = "conflict"
    example_db: str | None = None  # Hypothesis's example database (None: none)

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


def flags(command: str) -> list[tuple[dataclasses.Field[Any], Flag]]:
    """The settings ``command`` takes on the command line, in the order of the fields."""
    found = []
    for f in dataclasses.fields(Settings):
        flag = f.metadata.get("flag")
        if flag is not None and command in flag.commands:
            found.append((f, flag))
    return found


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
    for name in ("hang_timeout", "stuck_grace"):
        _at_least(name, getattr(s, name), 0.0, strictly=True)
    # a budget of 0 is a budget spent: a soak's last round, a search that only replays
    _at_least("shrink_budget", s.shrink_budget, 0.0)
    if s.time_budget is not None:
        _at_least("time_budget", s.time_budget, 0.0)
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
