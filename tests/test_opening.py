"""The opening and the pairs' plan, read off surveyed steps (no server needed)."""

from __future__ import annotations

from dataclasses import replace

from fuzzer.findings import fingerprint
from fuzzer.findings.relations import relation
from fuzzer.findings.stamps import own_row, routine
from fuzzer.model import Gene, Request, Scenario, Step
from fuzzer.report.reporting import coverage_text
from fuzzer.search.plan.openings import openings
from fuzzer.search.plan.pairs import plan
from fuzzer.search.plan.schedules import resolve, surveyed_trace
from fuzzer.search.survey import EndpointSurvey, Survey
from fuzzer.target.contract import Endpoint, Identity, Target

STAMP = "UPDATE users SET last_seen=? WHERE users.id = ?"


def steps(*texts: str) -> tuple[Step, ...]:
    """A request's steps: "commit" commits, anything else is a statement."""
    result = [Step(0, 1, "start")]
    for text in texts:
        number = len(result) + 1
        result.append(
            Step(0, number, "commit") if text == "commit" else Step(0, number, "sql", text)
        )
    return (*result, Step(0, len(result) + 1, "end"))


FOLLOW = steps(
    "SELECT * FROM users WHERE name = ?",
    STAMP,
    "commit",
    "SELECT * FROM users WHERE name = ?",
    "SELECT * FROM follows WHERE follower_id = ? AND followed_id = ?",
    "INSERT INTO follows (follower_id, followed_id) VALUES (?, ?)",
    "commit",
)
ME = steps(
    "SELECT * FROM users WHERE name = ?", STAMP, "commit", "SELECT * FROM users WHERE id = ?"
)


def test_a_stamp_every_request_makes_before_its_work_is_routine() -> None:
    assert routine([FOLLOW, ME]) == {STAMP}
    assert routine([FOLLOW]) == set()  # one endpoint: nothing to compare it with
    last = steps("SELECT * FROM users WHERE name = ?", STAMP, "commit")
    assert routine([last, last]) == set()  # nothing after it: it is the request's work


SETTING = "INSERT INTO settings (key, value) VALUES (?, ?)"


def page(*work: str) -> tuple[Step, ...]:
    """A page whose context processor gets-or-creates a setting, then does its work."""
    return steps("SELECT * FROM settings WHERE key = ?", SETTING, "commit", *work)


def test_inserts_and_get_or_create_are_never_routine() -> None:
    # issue 19: three single-INSERT transactions at the start of every render (a
    # get-or-create of site settings) were taken for a stamp and removed from what every
    # endpoint writes: the IntegrityError race they hold was never targeted
    pages = [page("SELECT * FROM products"), page("UPDATE products SET n = n + 1 WHERE id = ?")]
    assert routine(pages) == set()
    deletes = steps("DELETE FROM sessions WHERE id = ?", "commit", "SELECT * FROM users")
    assert routine([deletes, deletes]) == set()


def test_a_stamp_is_the_same_row_in_every_endpoint() -> None:
    def stamped(user: int) -> tuple[Step, ...]:
        trace = list(ME)
        trace[2] = replace(trace[2], params=repr(("2026-01-01", user)))
        return tuple(trace)

    assert routine([stamped(1), stamped(1)]) == {STAMP}
    assert routine([stamped(1), stamped(2)]) == set()  # two rows: not one identity's stamp


def test_a_stamp_is_made_by_almost_every_signed_in_endpoint() -> None:
    # issue 19 item 5: "routine" was half of the endpoints that ran SQL; it is the
    # signed-in identity's row, stamped by (almost) every endpoint that runs as one
    anonymous = steps("SELECT * FROM products", "SELECT * FROM users WHERE name = ?")
    assert routine([ME, ME, anonymous], [True, True, False]) == {STAMP}
    assert routine([ME, anonymous, anonymous], [True, False, False]) == set()
    assert routine([ME, ME, anonymous, anonymous]) == set()  # half of them: not routine
    nine = [ME] * 9 + [anonymous]  # one in ten without it: still almost every one
    assert routine(nine) == {STAMP}
    assert routine([ME] * 8 + [anonymous] * 2) == set()


def test_a_stamp_is_routine_only_on_the_identity_s_own_row() -> None:
    def stamped(user: int) -> tuple[Step, ...]:
        trace = list(ME)
        trace[2] = replace(trace[2], params=repr(("2026-01-01", user)))
        return tuple(trace)

    assert own_row(frozenset({STAMP}), stamped(1), stamped(2)) == {STAMP}
    # the same row whoever asks (a site-wide counter every page bumps): nobody's stamp
    assert own_row(frozenset({STAMP}), stamped(1), stamped(1)) == set()
    # the other identity does not make it: not told apart, not routine
    assert own_row(frozenset({STAMP}), stamped(1), FOLLOW[:2]) == set()


def target(*endpoints: str, identities: int = 2) -> Target:
    return Target(
        name="t",
        app=lambda url: None,
        setup=None,
        endpoints=[Endpoint(e.split()[0], e.split()[1]) for e in endpoints],
        identities=[Identity(n) for n in ["alice", "bob", "carol"][:identities]],
        max_requests=2,
    )


def surveyed(
    name: str, trace: tuple[Step, ...], reads: set[str], writes: set[str]
) -> EndpointSurvey:
    method, path = name.split()
    request = Request(name, method, path.replace("*", "carol"), identity="alice")
    return EndpointSurvey(
        name,
        request,
        200,
        frozenset(reads),
        frozenset(writes),
        len(trace),
        trace,
        request,
        None,
        replace(request, identity="bob"),
    )


def without_stamp(trace: tuple[Step, ...]) -> tuple[Step, ...]:
    return tuple(s for s in trace if s.text != STAMP)


def test_the_opening_yields_at_the_check_not_at_the_stamp_as_one_user_and_as_two() -> None:
    follow = surveyed("POST /follow/*", without_stamp(FOLLOW), {"users", "follows"}, {"follows"})
    survey = Survey((follow,), frozenset({STAMP}))
    first = openings(survey, target("POST /follow/*"))[:2]
    traces = {"POST /follow/*": follow.trace}
    concrete = [resolve(s, "conflict", surveyed_trace(s, traces)) for s in first]
    # both yield after reading follows (step 6), the check the insert depends on
    assert [s.schedule for s in concrete] == [(Gene(0, (6,)), Gene(0, (6,)))] * 2
    assert sorted(tuple(r.identity for r in s.requests) for s in first) == [
        ("alice", "alice"),  # a double submit
        ("alice", "bob"),  # two users, one resource (first here: the same rows)
    ]


def test_pairs_that_read_then_write_a_table_the_other_writes_come_first() -> None:
    blind = surveyed(
        "POST /log", steps("INSERT INTO log (x) VALUES (?)", "commit"), {"log"}, {"log"}
    )
    buy = surveyed(
        "POST /buy",
        steps(
            "SELECT * FROM items WHERE id = ?", "UPDATE items SET stock=? WHERE id = ?", "commit"
        ),
        {"items"},
        {"items"},
    )
    first = openings(Survey((blind, buy)), target("POST /log", "POST /buy"))[0]
    assert [r.endpoint for r in first.requests] == ["POST /buy", "POST /buy"]


def test_the_plan_holds_every_schedule_of_at_most_two_switches_per_pair_and_relation() -> None:
    buy = surveyed(
        "POST /buy",
        steps(
            "SELECT * FROM items WHERE id = ?", "UPDATE items SET stock=? WHERE id = ?", "commit"
        ),
        {"items"},
        {"items"},
    )
    reader = surveyed("GET /items", steps("SELECT * FROM items"), {"items"}, set())
    result = plan(Survey((buy, reader)), target("POST /buy", "GET /items"))
    assert result.pairs == (("POST /buy", "POST /buy"),)  # writers only
    # two conflict points each (after the read, after the write): 2 with one switch,
    # 2 x 2 with two; as the same identity and as another (each order the same requests)
    assert result.size == len(list(result.scenarios())) == (2 + 2 * 2) + 2 * (2 + 2 * 2)
    assert {s.requests[1].identity for _, s in result.scenarios()} == {"alice", "bob"}
    assert not result.coverage(5).complete
    done = result.coverage(result.size, done_after=30, random=10)
    assert done.complete
    text = coverage_text(done, [])
    assert text.startswith("1 of 1 endpoint pairs explored at depth ≤ 2 at conflict points")
    assert "all after 30 examples; no race; and 10 random examples" in text
    assert "0 of 1 endpoint pairs" in coverage_text(result.coverage(5), [])


def test_the_fingerprint_tells_one_user_from_two() -> None:
    ada = Request("POST /buy", "POST", "/items/1/buy", identity="ada")
    bob = replace(ada, identity="bob")
    assert relation((ada, ada), (0, 1)) == "same"
    assert relation((ada, bob), (0, 1)) == "different"
    assert relation((ada, bob), (0,)) == ""  # one request involved: nothing relates
    assert relation((replace(ada, identity=None),) * 2, (0, 1)) == ""
    one = fingerprint("limit-overrun", ["POST /buy"], "", "same")
    two = fingerprint("limit-overrun", ["POST /buy"], "", "different")
    assert one != two
    # without identities the fingerprint is what it was (reports stay comparable)
    assert fingerprint("limit-overrun", ["POST /buy"]) == fingerprint(
        "limit-overrun", ["POST /buy"], "", ""
    )


def test_a_scenario_in_drawn_form_resolves_to_the_plans_step_numbers() -> None:
    scenario = Scenario((Request("E", "GET", "/"),) * 2, (Gene(0, (1,)), Gene()))
    trace = {"E": steps("SELECT * FROM t", "UPDATE t SET a=? WHERE id = ?")}
    assert resolve(scenario, "conflict", surveyed_trace(scenario, trace)).schedule[0].yields


def test_requests_with_json_bodies_make_openings_and_a_plan() -> None:
    buy = surveyed(
        "POST /buy",
        steps("SELECT * FROM items WHERE id = ?", "UPDATE items SET stock=? WHERE id = ?"),
        {"items"},
        {"items"},
    )
    body = replace(buy.request, json={"sku": "mug", "qty": 1})  # a dict: not hashable
    buy = replace(buy, request=body, writer=body, other=replace(body, identity="bob"))
    survey = Survey((buy,))
    assert openings(survey, target("POST /buy"))
    assert plan(survey, target("POST /buy")).size
