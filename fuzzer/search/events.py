"""What a run tells its listeners while it goes: typed events, one dataclass each, and
the ``Listener`` protocol that receives them (the progress bar, the report writer, a
soak's counts, a worker's queue to its parent).

The search emits ``Example`` (after each example), ``Found`` (a fingerprint seen for the
first time), ``Unshrunk`` (a finding as first seen, once it reproduces), ``Final``
(shrunk and confirmed) and ``Unconfirmed`` (it never reproduced); the modes emit
``Start``, ``Surveying``, ``Planned``, ``RoundStarted``, ``Wrote`` and ``WorkerDied``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from fuzzer.findings import Finding
from fuzzer.search.plan.pairs import Plan


@dataclass(frozen=True)
class Start:
    """The app is up: what is fuzzed, where, with which budgets."""

    target: str
    database: dict[str, Any]
    max_examples: int | None
    time_budget: float | None
    notices: list[str] = field(default_factory=list)  # tables emptied, dead runs' leftovers
    directory: str | None = None  # where the reports go (a soak says so at once)
    columns: dict[str, list[str]] | None = None  # a soak's tables (its workers' parent)
    identities: dict[str, list[str]] | None = None


@dataclass(frozen=True)
class Surveying:
    """Each endpoint's requests are being sent alone."""

    endpoints: int


@dataclass(frozen=True)
class Planned:
    """The survey and the plan are made: how long each took, how big."""

    endpoints: int
    writers: int
    surveyed: float  # seconds
    seconds: float  # seconds of planning
    openings: int
    plan: Plan | None


@dataclass(frozen=True)
class Example:
    """One example more."""

    examples: int
    calls: int = 0
    findings: int = 0  # distinct findings so far
    shrinking: bool = False


@dataclass(frozen=True)
class Found:
    """A finding seen for the first time (shrunk later)."""

    finding: Finding
    examples: int
    findings: int | None = None  # distinct findings so far, when the sender counts them


@dataclass(frozen=True)
class Unshrunk:
    """A finding as first seen, once it reproduced: written now, replaced when final."""

    finding: Finding


@dataclass(frozen=True)
class Final:
    """A finding shrunk and confirmed: report it."""

    finding: Finding


@dataclass(frozen=True)
class Unconfirmed:
    """A finding whose minimal example never reproduced: not a finding after all."""

    finding: Finding


@dataclass(frozen=True)
class RoundStarted:
    """A soak's round: the replay of known failures (``seed`` None), or a seed's search."""

    seed: int | None
    left: float  # seconds left of the soak


@dataclass(frozen=True)
class Wrote:
    """A finding's report is on disk."""

    json: str  # the path of its JSON


@dataclass(frozen=True)
class WorkerDied:
    """A soak's worker process ended without its summary."""

    worker: int  # from 0
    exit_code: int | None


Event = (
    Start
    | Surveying
    | Planned
    | Example
    | Found
    | Unshrunk
    | Final
    | Unconfirmed
    | RoundStarted
    | Wrote
    | WorkerDied
)


class Listener(Protocol):
    """Whatever follows a run: called with each event as it happens."""

    def __call__(self, event: Event, /) -> None: ...


def ignore(event: Event, /) -> None:
    """The listener that listens to nothing."""
