"""Watch the requests of one execution that have not answered yet, and give up on them
only when their threads stop moving.

One rule for every mode (DESIGN.md §11, "Hangs only when nothing runs"): a request whose
thread's CPU clock or stack moves, or that sleeps in ``time.sleep`` (free-running, where
sleeps are real), progresses, however long it takes. Under control the scheduler decides
the hang; after it has, the requests still unanswered are given up once their threads
stood still for the grace period (their threads are stuck for good: a deadlock in
Python). Free-running (the stress mode) has no scheduler: the watch itself declares the
hang when nothing moved for the hang budget, then gives up the same way. Past the run's
deadline (the end of its time budget) requests still running are cut: the example is
not judged, it is not a hang either.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import trio

from fuzzer.execute.recording import Recording
from fuzzer.execute.scheduler import motion, no_progress
from fuzzer.model import Hang, Phase

POLL = 0.05
SLOW = (
    "still running after {seconds:g} s, its thread moving: slower than the client's "
    "timeout, not stuck"
)


class Watch:
    """The state of one watch: what each unanswered request's thread looked like."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self._seen: dict[int, tuple[Any, ...]] = {}

    def moved(self, unanswered: list[int]) -> bool:
        """Whether any of these requests progressed since the last look."""
        any_moved = False
        for index in unanswered:
            key: tuple[Phase, int] = ("concurrent", index)
            if key in self.recording.sleeping:
                any_moved = True
                continue
            thread = self.recording.threads.get(key)
            if thread is None:
                continue  # not at the server yet: the client is still sending it
            now = motion(thread[0])
            if self._seen.get(index) != now:
                self._seen[index] = now
                any_moved = True
        return any_moved

    def hang(self, unanswered: list[int], seconds: float) -> Hang:
        """The free-running hang: where each unanswered request stood still."""
        blocked = {}
        for index in unanswered:
            thread = self.recording.threads.get(("concurrent", index))
            if thread is None:
                continue
            blocked[index] = no_progress(thread[0])
        waiting = {i: "never reached the server" for i in unanswered if i not in blocked}
        return Hang(seconds=round(seconds, 1), blocked=blocked, waiting=waiting)


async def watch(
    recording: Recording,
    unanswered: Callable[[], list[int]],
    scope: trio.CancelScope,
    *,
    hang_budget: float,
    grace: float,
    deadline: float | None = None,
    slow_after: float | None = None,
) -> None:
    """Cancel ``scope`` (the requests in flight) when the unanswered requests are stuck
    for good, when ``deadline`` (monotonic) passed, or when they still run (they moved
    within the grace period) ``slow_after`` seconds after the watch began: slow, not
    stuck (the example is not judged, and the search goes on); run until then or
    cancelled."""
    scheduler = recording.scheduler
    state = Watch(recording)
    started = quiet_since = moved_at = time.monotonic()
    left = len(unanswered())
    while True:
        await trio.sleep(POLL)
        now = time.monotonic()
        waiting = unanswered()
        if deadline is not None and now >= deadline:
            recording.cut = "still running when the time budget ended"
            scope.cancel()
            return
        progressed = state.moved(waiting) or len(waiting) != left
        left = len(waiting)
        if progressed or (scheduler is not None and not scheduler.aborted):
            quiet_since = moved_at = now  # under control, the scheduler decides the hang
        if slow_after is not None and now - started >= slow_after and now - moved_at < grace:
            recording.cut = SLOW.format(seconds=slow_after)
            recording.slow = True
            scope.cancel()
            return
        if quiet_since == now:
            continue
        quiet = now - quiet_since
        if scheduler is None and recording.hang is None:
            if quiet >= hang_budget:
                recording.hang = state.hang(waiting, quiet)
                quiet_since = now
            continue
        if quiet >= grace:
            scope.cancel()
            return
