"""The same scenario and schedule give the same trace and outcome, run after run."""

from __future__ import annotations

from fuzzer.execute.instrument import load_target
from fuzzer.execute.runner import Controlled
from fuzzer.model import Gene, Request, Scenario
from fuzzer.modes.session import Session

NAME = Request("PUT /user/name", "PUT", "/user/name", json={"id": 1, "key": "李四"})
AGE = Request("PUT /user/age", "PUT", "/user/age", json={"id": 1, "key": 19})
READ = Request("GET /user/<id>", "GET", "/user/1")


def run_many(reference: str, scenario: Scenario, times: int) -> list[tuple[object, object, object]]:
    session = Session(load_target(reference))

    def work(s: Session) -> list[tuple[object, object, object]]:
        results = []
        for _ in range(times):
            execution = s.execute(scenario, Controlled())
            results.append((execution.trace, execution.responses, execution.tables))
        return results

    return session.run(work)


def test_same_scenario_and_schedule_give_the_same_trace_20_times() -> None:
    scenario = Scenario(
        requests=(NAME, AGE, READ),
        schedule=(
            Gene(priority=1, yields=(2, 5)),
            Gene(yields=(1, 3)),
            Gene(priority=2, yields=(1,)),
        ),
    )
    results = run_many("targets.profile:buggy", scenario, 20)
    first = results[0]
    assert len(first[0]) > 15  # a real interleaving of three requests
    assert {len(r[0]) for r in results} == {len(first[0])}
    for result in results[1:]:
        assert result == first


def test_the_lost_update_schedule_loses_the_update_every_time() -> None:
    scenario = Scenario(requests=(NAME, AGE), schedule=(Gene(yields=(2,)), Gene()))
    results = run_many("targets.profile:buggy", scenario, 20)
    for _, responses, tables in results:
        assert tables["users"][0] == (1, "李四", 30)  # the age written by R2 is gone
        assert [r.status for r in responses] == [200, 200]  # type: ignore[union-attr]
    assert len({r[0] for r in results}) == 1
