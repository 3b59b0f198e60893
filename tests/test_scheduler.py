"""The scheduler's semantics, with real threads standing in for requests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence

from fuzzer.db.locks import Pending, WriteLockModel
from fuzzer.execute.scheduler import Limits, Scheduler
from fuzzer.model import Gene

Action = Callable[[], None]


def run(
    genes: Sequence[Gene],
    programs: Sequence[Sequence[tuple[Pending, Action | None]]],
    **kwargs: object,
) -> tuple[list[tuple[int, int]], Scheduler]:
    """Run one thread per program; each step waits for its turn, then runs its action.
    Returns the grants in order as (request, step)."""
    scheduler = Scheduler(genes, **kwargs)  # type: ignore[arg-type]
    grants: list[tuple[int, int, int]] = []

    def request(index: int) -> None:
        for number, (pending, action) in enumerate(programs[index], 1):
            seq = scheduler.wait_turn(index, pending)
            grants.append((seq, index, number))
            if action is not None:
                action()

    threads = [threading.Thread(target=request, args=(i,)) for i in range(len(programs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
        assert not t.is_alive(), "a request thread never finished"
    scheduler.close()
    return [(i, n) for _, i, n in sorted(grants)], scheduler


def program(*kinds: str) -> list[tuple[Pending, None]]:
    return [(Pending(kind), None) for kind in ("start", *kinds, "end")]


def test_no_yields_means_serial_in_index_order() -> None:
    order, _ = run([Gene(), Gene()], [program("sql", "commit"), program("sql", "commit")])
    assert order == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 1), (1, 2), (1, 3), (1, 4)]


def test_priority_decides_who_runs_first() -> None:
    order, _ = run([Gene(priority=2), Gene(priority=1)], [program("sql"), program("sql")])
    assert [i for i, _ in order] == [1, 1, 1, 0, 0, 0]


def test_a_yield_hands_the_turn_to_the_other_request() -> None:
    order, _ = run([Gene(yields=(2,)), Gene()], [program("sql", "sql"), program("sql")])
    assert order == [(0, 1), (0, 2), (1, 1), (1, 2), (1, 3), (0, 3), (0, 4)]


def test_deleting_a_request_keeps_the_others_genes_meaning() -> None:
    three, _ = run(
        [Gene(yields=(2,)), Gene(), Gene(yields=(1,))],
        [program("sql", "sql"), program("sql"), program("sql", "sql")],
    )
    two, _ = run(
        [Gene(yields=(2,)), Gene(yields=(1,))], [program("sql", "sql"), program("sql", "sql")]
    )
    # request 0 yields after its own step 2 in both, whoever else is there
    assert three[:2] == two[:2] == [(0, 1), (0, 2)]
    assert three[2][0] == 1 and two[2][0] == 1


def test_sqlite_write_lock_is_modelled_not_waited_for() -> None:
    write = Pending("sql", "UPDATE t SET x=1", connection="a", write=True)
    commit = Pending("commit", connection="a")
    other = Pending("sql", "UPDATE t SET x=2", connection="b", write=True)
    order, scheduler = run(
        [Gene(yields=(2,)), Gene()],
        [
            [(Pending("start"), None), (write, None), (commit, None), (Pending("end"), None)],
            [
                (Pending("start"), None),
                (other, None),
                (Pending("commit", connection="b"), None),
                (Pending("end"), None),
            ],
        ],
        lock_model=WriteLockModel(),
    )
    # request 0 yields holding the write lock; request 1 may start but not write, so 0
    # commits first
    assert order.index((0, 3)) < order.index((1, 2))
    assert scheduler.stats.timeouts == 0


def test_a_request_blocked_on_a_python_lock_is_seen_without_a_timeout() -> None:
    lock = threading.Lock()
    held = threading.Event()

    def take() -> None:
        lock.acquire()
        held.set()

    def contend() -> None:
        with lock:
            pass

    order, scheduler = run(
        [Gene(yields=(2,)), Gene()],
        [
            [
                (Pending("start"), None),
                (Pending("checkpoint", "take"), take),
                (Pending("checkpoint", "release"), lock.release),
                (Pending("end"), None),
            ],
            [
                (Pending("start"), None),
                (Pending("checkpoint", "contend"), contend),
                (Pending("end"), None),
            ],
        ],
        limits=Limits(fallback_timeout=5.0),
    )
    assert order.index((1, 2)) < order.index((0, 3))  # 1 tried the lock while 0 held it
    assert scheduler.stats.python_blocks >= 1
    assert scheduler.stats.timeouts == 0
    assert held.is_set()


def test_nothing_can_progress_is_a_hang_and_the_gates_open() -> None:
    never = threading.Event()
    order, scheduler = run(
        [Gene(yields=(2,)), Gene()],
        [
            [
                (Pending("start"), None),
                (Pending("checkpoint"), lambda: never.wait(1.5)),
                (Pending("end"), None),
            ],
            [
                (Pending("start"), None),
                (Pending("checkpoint"), lambda: never.wait(1.5)),
                (Pending("end"), None),
            ],
        ],
        limits=Limits(hang_timeout=0.3, fallback_timeout=5.0),
    )
    assert scheduler.hang is not None
    assert set(scheduler.hang.blocked) == {0, 1}
    assert all("blocked in Python" in why for why in scheduler.hang.blocked.values())
    assert len(order) == 6  # every request still ran to its end once the gates opened


def _busy(seconds: float) -> Action:
    """Running Python the whole time (a password hash, a slow loop): its stack moves."""

    def spin() -> None:
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            n += 1

    return spin


def test_a_thread_running_python_is_not_stuck_and_the_hang_budget_is_honoured() -> None:
    # issue 11: CPU-heavy hashing was called a hang after "no progress for 1.0 s" although
    # --hang-timeout was 10: the fallback timeout took the running thread for blocked, and
    # "every request blocked" ended the execution after 1 s
    _, scheduler = run(
        [Gene()],
        [[(Pending("start"), None), (Pending("checkpoint"), _busy(1.6)), (Pending("end"), None)]],
        limits=Limits(hang_timeout=5.0, fallback_timeout=0.2),
    )
    assert scheduler.hang is None, scheduler.hang
    assert scheduler.stats.timeouts == 0


def test_a_block_only_a_timeout_saw_waits_for_the_hang_budget() -> None:
    # a thread still inside the socket layer (a driver or an outside call) for 1.5 s: the
    # fallback calls it blocked, but the hang is decided by the hang budget (3 s)
    left, right = socket.socketpair()
    reader = left.makefile("rb")
    threading.Timer(1.5, lambda: right.sendall(b"x")).start()
    try:
        _, scheduler = run(
            [Gene()],
            [
                [
                    (Pending("start"), None),
                    (Pending("checkpoint"), lambda: reader.read(1)),
                    (Pending("end"), None),
                ]
            ],
            limits=Limits(hang_timeout=3.0, fallback_timeout=0.2),
        )
    finally:
        reader.close()
        left.close()
        right.close()
    assert scheduler.hang is None, scheduler.hang
    assert scheduler.stats.timeouts >= 1


def test_a_loop_longer_than_the_hang_budget_is_running_not_hung() -> None:
    # issue 19: a password hash on a loaded machine ran past --hang-timeout and was
    # reported as a hang ("its stack moved: it was not blocked"), then as a deadlock: a
    # thread whose CPU clock or stack moves makes progress, however long it runs
    _, scheduler = run(
        [Gene()],
        [[(Pending("start"), None), (Pending("checkpoint"), _busy(1.2)), (Pending("end"), None)]],
        limits=Limits(hang_timeout=0.3, fallback_timeout=0.1),
    )
    assert scheduler.hang is None, scheduler.hang
    assert scheduler.stats.timeouts == 0


def test_a_thread_that_stands_still_past_the_hang_budget_hangs() -> None:
    # the other side of the rule: asleep inside a library (the fallback's guess), clock
    # and stack still, for longer than the hang budget
    left, right = socket.socketpair()
    reader = left.makefile("rb")
    threading.Timer(1.5, lambda: right.sendall(b"x")).start()
    try:
        _, scheduler = run(
            [Gene()],
            [
                [
                    (Pending("start"), None),
                    (Pending("checkpoint"), lambda: reader.read(1)),
                    (Pending("end"), None),
                ]
            ],
            limits=Limits(hang_timeout=0.4, fallback_timeout=0.1),
        )
    finally:
        reader.close()
        left.close()
        right.close()
    assert scheduler.hang is not None
    assert scheduler.hang.seconds >= 0.4
    assert "neither its CPU clock nor its stack moved" in scheduler.hang.blocked[0] or (
        "still for" in scheduler.hang.blocked[0]
    )


def test_a_crash_of_the_monitor_aborts_the_execution_and_is_kept() -> None:
    # issue 21: the monitor died of a TypeError mid-run and the run went on without hang
    # detection; now the execution is aborted (the gates open) and the crash kept
    class Broken(Scheduler):
        def _check_hang(self, now: float) -> None:
            raise TypeError("unsupported operand type(s) for -: 'float' and 'NoneType'")

    scheduler = Broken([Gene(), Gene()])
    done = []

    def request(index: int) -> None:
        for kind in ("start", "checkpoint", "end"):
            scheduler.wait_turn(index, Pending(kind))  # type: ignore[arg-type]
            time.sleep(0.05)  # the monitor looks at least once
        done.append(index)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    scheduler.close()
    assert sorted(done) == [0, 1]  # nobody waits forever for a monitor that is gone
    assert scheduler.aborted
    assert isinstance(scheduler.crash, TypeError)
    assert "TypeError: unsupported operand" in scheduler.crash_text()
    assert "_check_hang" in scheduler.crash_text()
