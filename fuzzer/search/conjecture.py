"""The one door to Hypothesis's internals: draw, explore, shrink, all under a budget.

The engine (``fuzzer/search/engine.py``) never imports ``hypothesis.internal``: what it needs
from Hypothesis's ConjectureRunner is here, in four pieces.

- ``Case``: one example as Hypothesis drew it: draw from a strategy, read its choices,
  mark it as showing a finding (a fingerprint stands for Hypothesis's "interesting
  origin", so one run keeps the smallest example of every distinct finding).
- ``Budget``: what a search may spend. Examples and seconds while searching (the
  systematic opening counts), then seconds of its own for shrinking. Whether the search
  may go on is *latched*: it changes only when an example has run or at an explicit
  ``check()``, never between two questions asked about the same moment. (Hypothesis
  asserts ``should_generate_more()`` as its generation phase starts; a wall-clock
  deadline read at each call could pass between its check and that assertion, or
  during the reuse phase before it: the soak's ``AssertionError``, issue 14.)
- ``explore``: the reuse and generate phases, never shrinking. Every call of the test
  function checks the budget first and ends the run when it is spent, whatever the
  phase (reuse of the example database, generation, mutation).
- ``shrink``: one finding's choices, shrunk alone until the shrink budget is spent.
- ``storage_elsewhere``: Hypothesis's own files (the constants it reads from the
  modules it scans, ``.hypothesis/constants``) kept out of the working directory, for
  a run asked to write nothing there.

Hypothesis's own limits stay in force inside these (its five-minute shrink limit, its
shrink count, its invalid-example threshold); the budget comes first.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from random import Random
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, configuration
from hypothesis import settings as hypothesis_settings
from hypothesis.control import BuildContext
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase
from hypothesis.internal.conjecture.data import ConjectureData, Status
from hypothesis.internal.conjecture.engine import ConjectureRunner, ExitReason, RunIsComplete
from hypothesis.internal.escalation import InterestingOrigin
from hypothesis.reporting import with_reporter
from hypothesis.strategies import SearchStrategy

__all__ = [
    "Budget",
    "Case",
    "Choices",
    "ExampleDatabase",
    "Exploration",
    "explore",
    "open_database",
    "redis_database",
    "replayed",
    "shrink",
    "storage_elsewhere",
]

Choices = tuple[Any, ...]
T = TypeVar("T")
FORMAT = b"fuzzer-1"


class Budget:
    """Examples and seconds for the search (the opening included), then seconds for
    shrinking. ``clock`` is monotonic seconds (a test passes a fake one)."""

    def __init__(
        self,
        *,
        max_examples: int,
        seconds: float | None,
        shrink_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        self.max_examples = max_examples
        self.seconds = seconds
        self.shrink_seconds = shrink_seconds
        self.clock = clock
        self._stop = stop  # stop early (e.g. at a first finding)
        self.started = clock()
        self.examples = 0  # examples run while searching
        self.reason = ""  # why the search ended; "" while it may go on
        self.shrink_started: float | None = None
        self.reserve = 0.0  # seconds of the shrink budget kept for confirming findings

    # -- searching ------------------------------------------------------------------------

    def searching(self) -> bool:
        """May the search run another example? Latched: reads no clock."""
        return not self.reason

    def check(self) -> bool:
        """Look at the clock and the counts now, and latch the answer."""
        if not self.reason:
            if self.examples >= self.max_examples:
                self.end(f"max examples ({self.max_examples})")
            elif self.seconds is not None and self.clock() - self.started >= self.seconds:
                self.end(f"time budget of {_seconds(self.seconds)} s")
            elif self._stop is not None and self._stop():
                self.end("first finding")
        return not self.reason

    def spent(self) -> None:
        """One example ran."""
        self.examples += 1
        self.check()

    def end(self, reason: str) -> None:
        if not self.reason:
            self.reason = reason

    @property
    def search_seconds(self) -> float:
        """From the start to shrinking (Hypothesis's wrap-up after the last example
        included), so that search and shrinking add up to the whole."""
        end = self.shrink_started if self.shrink_started is not None else self.clock()
        return end - self.started

    # -- shrinking ------------------------------------------------------------------------

    def start_shrinking(self) -> None:
        self.end("finished")
        if self.shrink_started is None:
            self.shrink_started = self.clock()

    def shrink_left(self) -> float:
        """Seconds of shrinking left, after the reserve for confirmations."""
        if self.shrink_started is None:
            return self.shrink_seconds - self.reserve
        return self.shrink_seconds - self.reserve - (self.clock() - self.shrink_started)

    def shrinking(self) -> bool:
        return self.shrink_left() > 0

    @property
    def shrink_elapsed(self) -> float:
        return 0.0 if self.shrink_started is None else self.clock() - self.shrink_started


class _Found(Exception):
    """Stands for a finding in Hypothesis's bookkeeping of interesting origins."""


def _origin(fingerprint: str) -> InterestingOrigin:
    return InterestingOrigin(_Found, fingerprint, 0, (), ())


class Case:
    """One example as Hypothesis draws it."""

    def __init__(self, data: ConjectureData, test: Callable[..., Any]) -> None:
        self._data = data
        self._test = test

    def draw(self, strategy: SearchStrategy[T]) -> T:
        with BuildContext(self._data, wrapped_test=self._test):
            return self._data.draw(strategy)

    @property
    def choices(self) -> Choices:
        return tuple(self._data.choices)

    def mark(self, fingerprint: str) -> None:
        """This example shows ``fingerprint``: keep it (ends the example)."""
        self._data.mark_interesting(_origin(fingerprint))


def replayed(choices: Choices, test: Callable[..., Any]) -> Case:
    """A case that replays recorded choices (to draw the same scenario again)."""
    return Case(ConjectureData.for_choices(list(choices)), test)


TestFunction = Callable[[Case], None]


def _settings(
    database: ExampleDatabase | None, max_examples: int, phases: Sequence[Phase]
) -> hypothesis_settings:
    return hypothesis_settings(
        database=database,
        max_examples=max(1, max_examples),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=True,
        phases=phases,
    )


def open_database(
    directory: str | None, given: ExampleDatabase | None = None
) -> ExampleDatabase | None:
    """``given`` (a shared store), else the directory's database, else none."""
    if given is not None:
        return given
    return DirectoryBasedExampleDatabase(directory) if directory else None


@contextlib.contextmanager
def storage_elsewhere() -> Iterator[None]:
    """Hypothesis's home directory in the temporary directory for the length of the block
    (it is ``.hypothesis`` in the working directory unless set), then as it was."""
    before = getattr(configuration, "__hypothesis_home_directory", None)
    home = os.path.join(tempfile.gettempdir(), f"fuzzer-hypothesis-{os.getuid()}")
    configuration.set_hypothesis_home_dir(home)
    try:
        yield
    finally:
        configuration.set_hypothesis_home_dir(before)


def database_key(key: str) -> bytes:
    return hashlib.sha256(FORMAT + key.encode()).digest()


def redis_database(client: Any, prefix: str) -> ExampleDatabase:
    """Hypothesis's example database in Redis (a campaign shared between machines)."""
    from hypothesis.extra.redis import RedisExampleDatabase

    return RedisExampleDatabase(client, key_prefix=prefix.encode())


class _Explorer(ConjectureRunner):
    """Reuse and generate under a ``Budget`` (and at most ``limit`` examples counted by
    it: Hypothesis's share); shrinking is done elsewhere."""

    def __init__(
        self,
        test: TestFunction,
        *,
        budget: Budget,
        limit: int,
        seconds: float | None = None,
        **kwargs: Any,
    ) -> None:
        self._budget = budget
        self._limit = limit
        self._deadline = None if seconds is None else budget.clock() + seconds
        super().__init__(lambda data: test(Case(data, test)), **kwargs)

    def _in_time(self) -> bool:
        """Within Hypothesis's share of the time budget (the rest is the plan's)."""
        return self._deadline is None or self._budget.clock() < self._deadline

    def _going(self) -> bool:  # latched: reads no clock
        return self._budget.searching() and self._budget.examples < self._limit

    def test_function(self, data: ConjectureData) -> None:
        # every example of every phase asks first: a spent budget ends the run here
        if not self._budget.check() or not self._going() or not self._in_time():
            self.exit_with(ExitReason.finished)
        super().test_function(data)

    def should_generate_more(self) -> bool:
        if not self._going():
            return False
        if not self.interesting_test_cases:
            return bool(super().should_generate_more())
        # Hypothesis stops soon after a first bug (right for a unit test); a fuzzer keeps
        # looking for other distinct findings until its budget is spent.
        return not self._ConjectureRunner__tree_is_exhausted()  # type: ignore[attr-defined]

    def generate_new_test_cases(self) -> None:
        # Hypothesis asserts should_generate_more() as generation starts; the budget may
        # have been spent by the opening or the reuse phase before it
        if self.should_generate_more():
            super().generate_new_test_cases()

    def exhausted(self) -> bool:
        return bool(self._ConjectureRunner__tree_is_exhausted())  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Exploration:
    interesting: dict[str, Choices]  # fingerprint -> the smallest choices that showed it
    calls: int
    reason: str  # why Hypothesis stopped, when the budget did not stop it


def explore(
    test: TestFunction,
    *,
    budget: Budget,
    seed: int,
    database: ExampleDatabase | None = None,
    key: str = "",
    reuse: bool = True,
    generate: bool = True,
    share: int | None = None,
    seconds: float | None = None,
) -> Exploration:
    """Replay the example database's failures (``reuse``), then generate new examples
    (``generate``), until the budget is spent or ``share`` examples ran or ``seconds``
    passed (what comes after has the rest). The budget's reason is set only by the
    budget itself."""
    limit = budget.max_examples if share is None else budget.examples + share
    phases = [Phase.explicit]
    if reuse:
        phases.append(Phase.reuse)
    if generate:
        phases.append(Phase.generate)
    runner = _Explorer(
        test,
        budget=budget,
        limit=limit,
        seconds=seconds,
        settings=_settings(database, min(limit, budget.max_examples) - budget.examples, phases),
        random=Random(seed),
        database_key=database_key(key) if database is not None else None,
    )
    if budget.check():
        with with_reporter(_silent):  # Hypothesis's warnings are about unit tests
            runner.run()
    if runner.exhausted():
        reason = "the search space is exhausted"
    elif getattr(runner, "exit_reason", None) is ExitReason.max_iterations:
        reason = "most examples were invalid (a strategy that filters too much)"
    elif budget.examples >= budget.max_examples or (
        generate and runner.valid_test_cases >= runner.settings.max_examples
    ):
        reason = f"max examples ({budget.max_examples})"
    else:
        reason = "nothing left to do"
    interesting = {
        str(origin.filename): tuple(result.choices)
        for origin, result in runner.interesting_test_cases.items()
    }
    return Exploration(interesting, runner.call_count, reason)


class _Shrinker(ConjectureRunner):
    """Shrinks under a ``Budget``'s shrink seconds."""

    def __init__(self, test: TestFunction, *, budget: Budget, **kwargs: Any) -> None:
        self._budget = budget
        super().__init__(lambda data: test(Case(data, test)), **kwargs)

    def test_function(self, data: ConjectureData) -> None:
        if not self._budget.shrinking():
            self.exit_with(ExitReason.very_slow_shrinking)
        super().test_function(data)


def shrink(
    test: TestFunction,
    fingerprint: str,
    choices: Choices,
    *,
    budget: Budget,
    seed: int,
    database: ExampleDatabase | None = None,
    key: str = "",
) -> Choices:
    """The smallest choices found that still show ``fingerprint`` (``test`` must mark
    only that one), within the budget's shrink seconds; ``choices`` when they no longer
    show it or no time is left."""
    if not budget.shrinking():
        return choices
    runner = _Shrinker(
        test,
        budget=budget,
        settings=_settings(database, 1, [Phase.shrink]),
        random=Random(seed),
        database_key=database_key(key) if database is not None else None,
    )
    with with_reporter(_silent):
        try:
            first = runner.cached_test_function(list(choices))
        except RunIsComplete:
            return choices
        if getattr(first, "status", None) != Status.INTERESTING:
            return choices  # it did not reproduce alone; keep what was seen
        runner.run()
    for origin, best in runner.interesting_test_cases.items():
        if origin.filename == fingerprint:
            return tuple(best.choices)
    return choices


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.3g}"


def _silent(message: object) -> None:
    del message
