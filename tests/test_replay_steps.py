"""A replay whose traces differ names the first step that differed (issue 19 item 7)."""

from __future__ import annotations

from fuzzer.model import Step
from fuzzer.modes.replay import _first_difference


def sql(request: int, number: int, text: str, rowcount: int | None = None) -> Step:
    return Step(request=request, number=number, kind="sql", text=text, rowcount=rowcount)


def test_the_first_differing_step_is_named_with_who_ran_what() -> None:
    common = (sql(0, 1, "SELECT stock FROM items"), sql(1, 1, "SELECT stock FROM items"))
    one = (
        *common,
        sql(0, 2, "UPDATE items SET stock=?", 1),
        Step(request=0, number=3, kind="commit"),
    )
    other = (
        *common,
        Step(request=1, number=2, kind="commit"),
        sql(0, 2, "UPDATE items SET stock=?", 1),
    )
    assert _first_difference([one, one]) == ""
    assert _first_difference([one, one, other]) == (
        "step 3: replay 1 had R1 UPDATE items SET stock=? (1 row), replay 3 R2 COMMIT"
    )
    assert _first_difference([one, one[:2]]) == (
        "step 3: replay 1 had R1 UPDATE items SET stock=? (1 row), "
        "replay 2 no step (its trace ended)"
    )


def test_the_same_statement_with_other_parameters_names_them() -> None:
    def cache(params: str) -> Step:
        return Step(request=0, number=1, kind="sql", text="cache SET_MANY k", params=params)

    assert _first_difference([(cache("('a1',)"),), (cache("('b2',)"),)]) == (
        "step 1: replay 1 had R1 cache SET_MANY k ('a1',), replay 2 R1 cache SET_MANY k ('b2',)"
    )


def test_a_clock_read_while_the_request_ran_is_no_difference() -> None:
    """A ``last_seen`` stamp to the microsecond differs between any two replays."""

    def stamp(at: str) -> Step:
        return Step(
            request=0,
            number=3,
            kind="sql",
            text="UPDATE members SET last_seen=? WHERE members.id = ?",
            params=f"('2026-12-07 07:12:{at}', 2)",
        )

    assert _first_difference([(stamp("45.861372"),), (stamp("46.053541"),)]) == ""
    other = Step(
        request=0, number=3, kind="sql", text="UPDATE members SET last_seen=?", params="('x', 3)"
    )
    assert _first_difference([(stamp("45.861372"),), (other,)]).startswith("step 1:")
