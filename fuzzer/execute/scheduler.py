"""Choose which waiting request runs next, and notice when the granted one is stuck.

Requests stop at yield points (gates.py) and wait here. One request runs at a time,
one step at a time: a step lasts from a grant until the request's next yield point.
The request that runs next is always the waiting, admissible one with the lowest
``(demotion, priority, index)``; after its own step ``k`` for ``k`` in its genes'
``yields`` a request is demoted below every other request (DESIGN.md §4).

A granted step may not come back: it waits for a lock inside the database, or for
something in Python. A monitor thread notices, asks the database where it can tell
(``LockProbe``), looks at the thread's CPU clock and stack otherwise, and only as a
last resort waits out a timeout. A blocked request frees the turn for the others.
Before every decision all requests must be *settled* (waiting, done, or confirmed
blocked since the last step), so the decision, and the trace, are deterministic.

SQLite never gets that far: its one write lock is modelled (``WriteLockModel``) and
a second writer's first write is simply not granted while another request holds it.

Progress is a step that begins or ends, or a granted thread whose CPU clock or stack
moved: a request hashing a password for seconds runs, it does not hang. When nothing
progresses for the hang budget (``--hang-timeout``, which the runner scales by the
slowest serial duration of the scenario's endpoints), the execution is aborted: every
gate opens, database lock waits are broken, and ``Scheduler.hang`` says who was stuck
where. A crash of the monitor itself aborts the execution too, and is kept in
``Scheduler.crash`` for the runner to raise: the run must not go on without it.
"""

from __future__ import annotations

import gc
import itertools
import os
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from fuzzer.db.locks import LockModel, LockProbe, Pending
from fuzzer.model import Gene, Hang
from fuzzer.settings import Settings

_sleep = time.sleep  # the real one: gates.py patches time.sleep for request threads
_monotonic = time.monotonic

ABSENT, WAITING, RUNNING, DONE = "absent", "waiting", "running", "done"


@dataclass
class Limits:
    """How the scheduler tells a slow step from a stuck one."""

    probe_after: float = 0.002  # a step not back at a gate after this is examined
    python_block_after: float = 0.03  # asleep, CPU clock and stack still this long: blocked
    fallback_timeout: float = 1.0  # declared blocked when nothing else can tell
    settle: float = 0.003  # after a step, a blocked thread that stays still this long still is
    hang_timeout: float = 3.0  # no progress at all for this long: the execution hangs
    all_blocked_timeout: float = 1.0  # every request confirmed blocked this long: it hangs
    # a request not at the server yet is on its way (the client, the server's accept loop
    # and a loaded machine's CPU queue): only this long, or the hang budget, is a hang
    arrival_timeout: float = 10.0
    stuck_grace: float = 6.0  # after a hang, requests still unanswered this long are stuck
    poll: float = 0.001

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """The limits a run's settings give (``--hang-timeout``; the grace after a hang)."""
        return cls(hang_timeout=settings.hang_timeout, stuck_grace=settings.stuck_grace)


@dataclass
class Statistics:
    grants: int = 0
    db_blocks: int = 0  # lock waits the database reported
    python_blocks: int = 0  # threads seen blocked in Python (frozen CPU clock)
    model_blocks: int = 0  # grants the SQLite write-lock model withheld
    timeouts: int = 0  # blocks only a timeout revealed (the goal is none)
    probes: int = 0


@dataclass(eq=False)
class RequestHandle:
    """The scheduler's view of one request; gates.py keeps ``in_db``, ``thread`` and
    ``connections`` up to date."""

    index: int
    priority: int
    yields: frozenset[int]
    grant: Any = field(default_factory=threading.Lock)
    state: str = ABSENT
    pending: Pending | None = None
    steps: int = 0
    demotion: int = 0
    seq: int = 0
    granted_at: float = 0.0
    in_db: bool = False
    thread: int | None = None
    native: int | None = None  # the kernel's id of the thread, for /proc
    connections: list[Any] = field(default_factory=list)
    blocked: str | None = None
    blocked_epoch: int = -1
    cpu: int = -1
    frame: tuple[Any, ...] | None = None
    frozen_since: float | None = None
    moved_at: float = 0.0  # when its CPU clock or stack was last seen moving
    timed_out: bool = False  # its block was only ever a timeout's guess

    def __post_init__(self) -> None:
        self.grant.acquire()  # held until the scheduler grants a step

    @property
    def active(self) -> bool:
        """Granted, and not known to be blocked: it is running right now."""
        return self.state == RUNNING and self.blocked is None


class Scheduler:
    """Runs the requests of one execution one step at a time, by their genes."""

    def __init__(
        self,
        genes: Sequence[Gene],
        *,
        lock_model: LockModel | None = None,
        lock_probe: LockProbe | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.stats = Statistics()
        self.hang: Hang | None = None
        self.waits: dict[int, str] = {}  # grant sequence number -> why that step waited
        self._model = lock_model
        self._probe = lock_probe
        self._lock = threading.Lock()
        self._reqs = [
            RequestHandle(i, g.priority, frozenset(g.yields)) for i, g in enumerate(genes)
        ]
        self._arrived = 0
        self._seq = 0
        self._epoch = 0
        self._demotions = itertools.count(1)
        self._aborted = False
        self._finished = threading.Event()
        self._last_progress = self._epoch_time = _monotonic()
        self.abort_reason = ""
        self.crash: BaseException | None = None  # the monitor's own failure, if any
        self._monitor = threading.Thread(target=self._watch, name="fuzzer-monitor", daemon=True)
        self._monitor.start()
        if not self._reqs:
            self._finished.set()

    # -- called from request threads (through gates.py) -------------------------------

    def handle(self, index: int) -> RequestHandle:
        return self._reqs[index]

    def wait_turn(self, index: int, pending: Pending) -> int:
        """Block until request ``index`` may run ``pending``; return the step's global
        sequence number."""
        r = self._reqs[index]
        r.thread = threading.get_ident()
        r.native = threading.get_native_id()
        with self._lock:
            if self._aborted or r.state == DONE:
                self._seq += 1
                return self._seq
            if r.state == ABSENT:
                self._arrived += 1
            elif self._model is not None:
                self._model.arrived(index)
            r.state, r.pending, r.blocked, r.in_db = WAITING, pending, None, False
            self._bump()
            self._decide()
        r.grant.acquire()
        return r.seq

    # -- called by the runner ----------------------------------------------------------

    def wait_finished(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)

    def close(self) -> None:
        """Stop the monitor; if requests are still gated (the runner gave up), free them."""
        with self._lock:
            if not self._finished.is_set() and not self._aborted:
                self._abort("the runner stopped waiting")
            self._finished.set()
        self._monitor.join(timeout=1.0)

    @property
    def aborted(self) -> bool:
        return self._aborted

    # -- decisions ---------------------------------------------------------------------

    def _decide(self) -> None:
        """Grant the next step if every request is settled. Call with the lock held."""
        while not self._aborted and self._settled():
            candidates = [r for r in self._reqs if r.state == WAITING and self._admits(r)]
            if not candidates:
                if all(r.state == DONE for r in self._reqs):
                    self._finished.set()
                return
            r = min(candidates, key=lambda r: (r.demotion, r.priority, r.index))
            self._grant(r)
            if r.state != DONE:
                return

    def _settled(self) -> bool:
        if self._arrived < len(self._reqs):
            return False  # the start gate: every request must have arrived
        for r in self._reqs:
            if r.state == RUNNING and (r.blocked is None or r.blocked_epoch != self._epoch):
                return False
        return True

    def _admits(self, r: RequestHandle) -> bool:
        if self._model is None or r.pending is None or self._model.admits(r.index, r.pending):
            return True
        self.stats.model_blocks += 1
        return False

    def _grant(self, r: RequestHandle) -> None:
        assert r.pending is not None
        self._seq += 1
        self._bump()
        self.stats.grants += 1
        r.steps += 1
        r.seq = self._seq
        r.granted_at = self._epoch_time
        r.frozen_since, r.cpu, r.frame, r.timed_out = None, -1, None, False
        if r.steps in r.yields:
            r.demotion = next(self._demotions)
        if self._model is not None:
            self._model.granted(r.index, r.pending)
        if r.pending.kind == "end":
            r.state = DONE
            if self._model is not None:
                self._model.arrived(r.index)
        else:
            r.state = RUNNING
            r.in_db = r.pending.kind == "sql"  # until gates.py sees the statement return
        r.grant.release()

    def _bump(self) -> None:
        """A step began or ended: every earlier 'blocked' must be confirmed again."""
        self._epoch += 1
        self._epoch_time = self._last_progress = _monotonic()

    # -- the monitor -------------------------------------------------------------------

    def _watch(self) -> None:
        """The monitor thread. If it fails, the execution is aborted and the failure kept
        in ``crash``: without the monitor nothing would notice a blocked request."""
        try:
            self._monitor_loop()
        except BaseException as exc:
            with self._lock:
                self.crash = exc
                if not self._aborted:
                    self._abort(f"the scheduler's monitor crashed: {type(exc).__name__}")
                self._finished.set()

    def crash_text(self) -> str:
        """The monitor's traceback, if it crashed."""
        if self.crash is None:
            return ""
        return "".join(traceback.format_exception(self.crash)).rstrip()

    def _monitor_loop(self) -> None:
        limits = self.limits
        while not self._finished.wait(limits.poll):  # close() wakes it at once
            now = _monotonic()
            with self._lock:
                if self._aborted:
                    return
                epoch = self._epoch
                suspects = [
                    (r, r.seq)
                    for r in self._reqs
                    if r.state == RUNNING
                    and (
                        (r.blocked is None and now - r.granted_at >= limits.probe_after)
                        or (r.blocked is not None and (r.blocked_epoch != epoch or r.timed_out))
                    )
                ]
            verdicts = [(r, seq, self._why_stuck(r, now)) for r, seq in suspects]
            with self._lock:
                if self._aborted:
                    return
                for r, seq, why in verdicts:
                    if r.seq != seq or r.state != RUNNING:
                        continue  # it reached a gate meanwhile
                    if why is None:
                        r.blocked = None
                    elif why:
                        if r.blocked is None:
                            self.waits[r.seq] = why
                        r.blocked = why
                        r.blocked_epoch = epoch if epoch == self._epoch else -1
                self._decide()
                self._check_hang(_monotonic())

    def _why_stuck(self, r: RequestHandle, now: float) -> str | None:
        """Why a granted request has not come back: a reason if it is blocked, None if it
        is running, "" if that cannot be told yet."""
        stale = r.blocked is not None
        if r.in_db and self._probe is not None:
            self.stats.probes += 1
            why = self._probe.waiting(list(r.connections))
            if why:
                self.stats.db_blocks += not stale
                return why
            return None if stale else ""  # executing, not waiting for a lock
        moved = self._sample(r, now)
        if stale:
            if moved:
                return None
            return r.blocked if now - self._epoch_time >= self.limits.settle else ""
        frozen = r.frozen_since  # read once: the request's own thread may clear it meanwhile
        if moved or frozen is None:
            return ""  # its CPU clock or stack moves: running Python (a hash, a slow loop)
        if (
            not r.in_db
            and now - frozen >= self.limits.python_block_after
            and r.thread is not None
            and not _in_library(r.thread)
            and _asleep(r.native)
        ):
            self.stats.python_blocks += 1
            return f"blocked in Python at {_where(r.thread)}"
        if now - frozen >= self.limits.fallback_timeout:
            self.stats.timeouts += 1
            r.timed_out = True
            return f"still for {now - frozen:.1f} s (timeout) at {_where(r.thread)}"
        return ""

    def _sample(self, r: RequestHandle, now: float) -> bool:
        """Read the thread's CPU clock and stack; True if either moved since last time.
        A thread whose clock and stack stay still is blocked, not running."""
        if r.thread is None:
            return False
        cpu, frame = _thread_cpu(r.thread), _frame_key(r.thread)
        if cpu != r.cpu or frame != r.frame:
            r.cpu, r.frame, r.frozen_since, r.moved_at = cpu, frame, None, now
            return True
        if r.frozen_since is None:
            r.frozen_since = now
        return False

    def _check_hang(self, now: float) -> None:
        if self._finished.is_set() or self._aborted:
            return
        moved = [r.moved_at for r in self._reqs if r.state == RUNNING]
        quiet = now - max([self._last_progress, *moved])
        budget = self.limits.hang_timeout
        if self._arrived < len(self._reqs):
            budget = max(budget, self.limits.arrival_timeout)
        if quiet >= budget:
            self._abort(f"no request made progress for {quiet:.1f} s")
        elif quiet >= self.limits.all_blocked_timeout and self._all_blocked():
            self._abort(f"every request was blocked for {quiet:.1f} s")

    def _all_blocked(self) -> bool:
        """Every unfinished request confirmed blocked, and none waiting that could run:
        only the database's own deadlock detector could still end that (PostgreSQL's
        takes a deadlock_timeout), so waiting the whole hang budget gains nothing."""
        live = [r for r in self._reqs if r.state != DONE]
        return (
            bool(live)
            and self._settled()
            and any(r.state == RUNNING for r in live)
            # a block only a timeout guessed (a thread still in I/O) may end on its own:
            # for those the hang budget (--hang-timeout) decides, not this shortcut
            and not any(r.state == RUNNING and r.timed_out for r in live)
            and not any(r.state == WAITING and self._admits(r) for r in live)
        )

    def _abort(self, why: str) -> None:
        """Open every gate: the execution runs free from here. Call with the lock held."""
        self._aborted = True
        blocked: dict[int, str] = {}
        waiting: dict[int, str] = {}
        holder = self._model.holder() if self._model else None
        for r in self._reqs:
            if r.state == RUNNING:
                blocked[r.index] = r.blocked or no_progress(r.thread)
            elif r.state == WAITING and r.pending is not None:
                note = ""
                if holder is not None and holder != r.index and r.pending.write:
                    note = f" (the database write lock is held by request {holder})"
                waiting[r.index] = r.pending.describe() + note
            elif r.state == ABSENT:
                waiting[r.index] = "never reached the server"
        moved = [r.moved_at for r in self._reqs if r.state == RUNNING]
        self.hang = Hang(
            seconds=round(_monotonic() - max([self._last_progress, *moved]), 1),
            blocked=blocked,
            waiting=waiting,
        )
        self.abort_reason = why
        for r in self._reqs:
            if r.state == WAITING:
                r.state = RUNNING
                r.grant.release()
        if self._probe is not None:
            threading.Thread(target=self._break_waits, daemon=True).start()

    def _break_waits(self) -> None:
        """After an abort: end every database lock wait of these requests until the
        runner is done with them. Breaking one wait can lead straight into the next (a
        request freed from a Python lock may wait for a row lock held by another request
        stuck behind it), and nobody gates them any more."""
        assert self._probe is not None
        try:
            while True:
                for r in self._reqs:
                    for connection in list(r.connections):
                        if self._probe.waiting([connection]):
                            self._probe.break_waits([connection])
                if self._finished.wait(0.05):
                    return
        except BaseException as exc:
            self.crash = self.crash or exc


def motion(ident: int) -> tuple[Any, ...]:
    """What moves while a thread runs: its CPU clock and where its stack is. Two equal
    samples some time apart: the thread neither ran nor moved meanwhile."""
    return (_thread_cpu(ident), _frame_key(ident))


def no_progress(ident: int | None) -> str:
    """Why a thread is taken for hung, said the same by the scheduler and the watch."""
    return f"made no progress at {_where(ident)} (neither its CPU clock nor its stack moved)"


def _thread_cpu(ident: int) -> int:
    try:
        return time.clock_gettime_ns(time.pthread_getcpuclockid(ident))
    except (OSError, AttributeError, OverflowError):
        return -1


def _asleep(native: int | None) -> bool:
    """Whether the kernel has the thread sleeping (waiting on a lock), not runnable: a
    thread that only waits for a CPU is not blocked, however still its clock."""
    if native is None:
        return True
    try:
        with open(f"/proc/self/task/{native}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return True  # no /proc: trust the clock and the stack
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state in (b"S", b"D")


def _frame_of(ident: int) -> FrameType | None:
    """The thread's current frame. Automatic garbage collection is paused meanwhile:
    CPython before 3.12 can collect inside ``sys._current_frames()`` while it holds the
    runtime's thread-list lock, and a finalizer that takes that lock (a
    ``threading.local`` of a scoped session, freed) then deadlocks the whole process
    (python/cpython#106883; seen here as every thread waiting for the GIL)."""
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return sys._current_frames().get(ident)
    finally:
        if paused:
            gc.enable()


def _frame_key(ident: int) -> tuple[Any, ...] | None:
    frame = _frame_of(ident)
    if frame is None:
        return None
    return (frame.f_code, frame.f_lasti, frame.f_back.f_lasti if frame.f_back else -1)


def _where(ident: int | None) -> str:
    """The innermost frame of the thread outside the fuzzer and the standard library."""
    if ident is None:
        return "?"
    frame = _frame_of(ident)
    fallback = None
    while frame is not None:
        filename = frame.f_code.co_filename
        if fallback is None:
            fallback = frame
        if not _is_library(filename):
            return f"{_short(filename)}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back
    if fallback is not None:
        return f"{_short(fallback.f_code.co_filename)}:{fallback.f_lineno}"
    return "?"


_LIBRARY_MARKERS = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


def _is_library(filename: str) -> bool:
    return any(m in filename for m in _LIBRARY_MARKERS)


# the standard library's socket layer: PyMySQL reads its replies through
# socket.SocketIO.readinto, so a slow COMMIT (an fsync on a busy disk) sits there
_IO_MODULES = frozenset({"socket.py", "ssl.py", "selectors.py"})


def _in_library(ident: int) -> bool:
    """Whether the thread's innermost frame is inside an installed library or the
    standard library's socket layer (a driver waiting on its socket): a still thread
    there is not blocked on a Python lock."""
    frame = _frame_of(ident)
    if frame is None:
        return False
    filename = frame.f_code.co_filename
    return _is_library(filename) or os.path.basename(filename) in _IO_MODULES


def _short(filename: str) -> str:
    try:
        relative = os.path.relpath(filename)
    except ValueError:
        return filename
    return relative if not relative.startswith("..") else os.path.basename(filename)
