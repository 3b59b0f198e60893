"""False alarms and real bugs that the precision measurement (``python -m bench.precision``:
every fixed twin, 1000 examples on SQLite, 300 on the servers) found, each pinned here."""

from __future__ import annotations

import itertools
from typing import Any

from fuzzer.execute.instrument import load_target
from fuzzer.model import Gene, Request, Scenario
from fuzzer.modes.session import Session
from fuzzer.search.engine import evaluate

# cat writes to ann while ann writes to cat: each counts its recipient's unread messages
CROSSWISE = (
    Request("POST *", "POST", "/messages/ann", identity="cat"),
    Request("POST *", "POST", "/messages/cat", identity="ann"),
)


def test_two_messages_written_crosswise_never_deadlock_the_fixed_inbox(server: str) -> None:
    # MariaDB: each request's UPDATE locked its recipient's row, then its message's
    # foreign key check asked for a shared lock on its sender's row, held by the other:
    # a deadlock (1213) and a 500, found after 12 examples of 300 (seed 1)
    session = Session(load_target("targets.inbox:fixed"), db=server)

    def work(s: Session) -> list[tuple[tuple[int, int], list[str], list[int]]]:
        assert s.oracle is not None
        judged = []
        for first, second in itertools.product(range(1, 7), repeat=2):
            scenario = Scenario(
                requests=CROSSWISE, schedule=(Gene(yields=(first,)), Gene(yields=(second,)))
            )
            execution, _, findings = evaluate(scenario, s.execute, s.oracle)
            statuses = [r.status for r in execution.responses if r is not None]
            judged.append(((first, second), [f.kind for f in findings], statuses))
        return judged

    judged: Any = session.run(work)
    bad = [j for j in judged if j[1] or j[2] != [200, 200]]
    assert bad == [], bad


def test_a_new_listing_alone_is_stored_on_every_database(server: str) -> None:
    # PostgreSQL: the setup's listings had explicit ids, which do not advance the table's
    # sequence, so the first POST /listings collided on listings_pkey even alone (a
    # serial-failure of bazaar's fixed twin, found at 300 examples)
    session = Session(load_target("targets.bazaar:fixed"), db=server)
    alone = Scenario(
        requests=(Request("POST /listings", "POST", "/listings", identity="alice"),),
        schedule=(Gene(),),
    )

    def work(s: Session) -> tuple[list[str], list[int]]:
        assert s.oracle is not None
        execution, _, findings = evaluate(alone, s.execute, s.oracle)
        return [f.kind for f in findings], [r.status for r in execution.responses if r]

    kinds, statuses = session.run(work)
    assert statuses[0] < 500 and kinds == [], (kinds, statuses)
