"""Judging modulo what varies: cells that differ between serial runs of one order are
masked, the example is judged on the rest, and masked values that agree serially are
checked as relations (fuzzer/judge/masks.py, fuzzer/judge/oracle.py)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping

import pytest

from fuzzer.db import TableInfo
from fuzzer.judge.masks import text_spans
from fuzzer.judge.oracle import Normalizer, Oracle, Verdict
from fuzzer.model import Execution, Gene, Request, Response, Scenario, Step
from fuzzer.report import reporting

ACCOUNTS = TableInfo("accounts", ("id", "name", "token"), ("id",), "id", ())
SONGS = TableInfo("songs", ("id", "title"), ("id",), "id", ())
INITIAL = {"accounts": ((1, "ann", None),), "songs": ((1, "intro"), (2, "calm"), (3, "outro"))}


def scenario(*endpoints: str) -> Scenario:
    requests = tuple(Request(e, "POST", "/" + e.split()[-1]) for e in endpoints)
    return Scenario(requests=requests, schedule=tuple(Gene() for _ in requests))


def run(
    responses: list[Response],
    tables: Mapping[str, object] | None = None,
    *,
    interleaved: bool = True,
    trace: tuple[Step, ...] = (),
) -> Execution:
    """An execution; ``interleaved``: every request started before any ended."""
    n = len(responses)
    if not trace and interleaved:
        trace = (
            tuple(Step(request=i, number=1, kind="start") for i in range(n))
            + tuple(Step(request=i, number=2, kind="commit") for i in range(n))
            + tuple(Step(request=i, number=3, kind="end") for i in range(n))
        )
    return Execution(
        mode="controlled",
        responses=tuple(responses),
        tables={**INITIAL, **(tables or {})},  # type: ignore[dict-item]
        trace=trace,
    )


def judge_with(
    serial: Callable[[tuple[int, ...]], Execution],
    actual: Execution,
    scene: Scenario,
    **normalizer: object,
) -> Verdict:
    o = Oracle(
        Normalizer({"accounts": ACCOUNTS, "songs": SONGS}, INITIAL, **normalizer),  # type: ignore[arg-type]
        lambda _, order: serial(order),
    )
    return o.judge(scene, actual)


def tokens() -> Iterator[str]:
    for n in itertools.count():
        yield f"tok{n:04d}-5f2c9a71e3"


def test_a_salted_column_is_masked_and_the_rest_judged() -> None:
    fresh = tokens()

    def serial(order: tuple[int, ...]) -> Execution:
        return run(
            [Response(200, {"ok": True})] * 2,
            {"accounts": ((1, "bob", next(fresh)),)},
            interleaved=False,
        )

    scene = scenario("PUT /a", "PUT /b")
    verdict = judge_with(
        serial,
        run([Response(200, {"ok": True})] * 2, {"accounts": ((1, "bob", "mine-9b1e07c2aa"),)}),
        scene,
    )
    assert verdict.status == "serializable"
    assert verdict.judged == "partly"
    assert verdict.masked == ("accounts.token",)

    # the same masks, and a real difference in another column: a violation naming it
    verdict = judge_with(
        serial,
        run([Response(200, {"ok": True})] * 2, {"accounts": ((1, "eve", "x-9b1e07c2aa77"),)}),
        scene,
    )
    assert verdict.status == "violation"
    assert [(d.where, d.column) for d in verdict.differences] == [("cell", "name")]


def test_a_dead_token_breaks_a_relation_and_is_a_finding() -> None:
    """Get-or-create: serially both calls answer the stored token; in the execution the
    first caller's token is not the one stored."""
    fresh = tokens()

    def serial(order: tuple[int, ...]) -> Execution:
        t = next(fresh)
        return run(
            [Response(200, {"token": t}), Response(200, {"token": t})],
            {"accounts": ((1, "ann", t),)},
            interleaved=False,
        )

    scene = scenario("POST /token", "POST /token")
    dead = run(
        [Response(200, {"token": "first-51be2d3a9"}), Response(200, {"token": "second-7c1f0e2b"})],
        {"accounts": ((1, "ann", "second-7c1f0e2b"),)},
    )
    verdict = judge_with(serial, dead, scene)
    assert verdict.status == "violation"
    (difference,) = verdict.differences
    assert difference.where == "response" and difference.request == 0
    assert difference.actual == {"status": 200, "body": {"token": "first-51be2d3a9"}}
    assert "equal to accounts.token of the final rows" in difference.expected

    agreeing = run(
        [Response(200, {"token": "same-51be2d3a9x"}), Response(200, {"token": "same-51be2d3a9x"})],
        {"accounts": ((1, "ann", "same-51be2d3a9x"),)},
    )
    verdict = judge_with(serial, agreeing, scene)
    assert verdict.status == "serializable"


def test_a_label_equal_by_chance_is_no_relation_unless_declared() -> None:
    """A classifier's short label equal to a cell once is a coincidence; a spec can
    declare that they must agree (Target.relations)."""
    labels = itertools.cycle(["en", "fr", "de"])

    def serial(order: tuple[int, ...]) -> Execution:
        label = next(labels)
        return run(
            [Response(200, {"language": label}), Response(200, {"language": label})],
            {"accounts": ((1, "ann", label),)},
            interleaved=False,
        )

    scene = scenario("POST /detect", "POST /detect")
    differing = run(
        [Response(200, {"language": "it"}), Response(200, {"language": "nl"})],
        {"accounts": ((1, "ann", "nl"),)},
    )
    verdict = judge_with(serial, differing, scene)
    assert verdict.status == "serializable"
    verdict = judge_with(
        serial, differing, scene, relations=frozenset({"language = accounts.token"})
    )
    assert verdict.status == "violation"


PAGE = (
    '<form><input type="hidden" name="csrf_token" value="{token}">'
    "<input name=username></form><p>{n} members</p>"
)


def test_a_csrf_token_in_a_page_is_masked_and_the_page_still_judged() -> None:
    fresh = tokens()

    def serial(order: tuple[int, ...]) -> Execution:
        return run([Response(200, PAGE.format(token=next(fresh), n=2))] * 2, interleaved=False)

    scene = scenario("GET /", "GET /")
    same = run([Response(200, PAGE.format(token="IjE2.axXZMg.9vyj5X", n=2))] * 2)
    verdict = judge_with(serial, same, scene)
    assert verdict.status == "serializable"
    assert verdict.masked == ("GET /: spans of its page",)

    other = run([Response(200, PAGE.format(token="IjE2.axXZMg.9vyj5X", n=3))] * 2)
    verdict = judge_with(serial, other, scene)
    assert verdict.status == "violation"


def test_text_spans_name_the_context_before_what_differs() -> None:
    a = PAGE.format(token="abc123-x.y", n=2)
    b = PAGE.format(token="zz_9-q.r", n=2)
    [(context, x, y)] = text_spans(a, b)
    assert (x, y) == ("abc123-x.y", "zz_9-q.r")
    assert context.split("\x1f") == ['"', "csrf_token", '"', "value", "=", '"']


def test_a_redirect_is_compared_by_path_with_its_random_query_value_masked() -> None:
    fresh = tokens()

    def serial(order: tuple[int, ...]) -> Execution:
        location = f"/welcome?name=ann&t={next(fresh)}"
        return run([Response(302, "Redirecting…", location=location)] * 2, interleaved=False)

    scene = scenario("POST /signup", "POST /signup")
    verdict = judge_with(
        serial, run([Response(302, "…", location="/welcome?name=ann&t=QbUHaNSoyq")] * 2), scene
    )
    assert verdict.status == "serializable"
    assert verdict.masked == ("POST /signup: Location.query.t",)
    verdict = judge_with(
        serial, run([Response(302, "…", location="/login?name=ann&t=QbUHaNSoyq")] * 2), scene
    )
    assert verdict.status == "violation"


def sql(request: int, number: int, text: str, params: str = "") -> Step:
    return Step(request=request, number=number, kind="sql", text=text, params=params, rowcount=1)


def test_a_key_sqlite_gives_again_after_a_delete_is_matched_by_content() -> None:
    """Serially the DELETE of song 3 (the highest id) comes first and the INSERT gets id
    3 again; in the execution the INSERT ran first and got 4. Same rows up to the key."""
    delete = "DELETE FROM songs WHERE songs.id = ?"
    insert = "INSERT INTO songs (title) VALUES (?)"
    serial_trace = (
        Step(request=0, number=1, kind="start"),
        sql(0, 2, delete, "(3,)"),
        Step(request=0, number=3, kind="end"),
        Step(request=1, number=1, kind="start"),
        sql(1, 2, insert, "('encore',)"),
        Step(request=1, number=3, kind="end"),
    )

    def serial(order: tuple[int, ...]) -> Execution:
        if order == (0, 1):
            rows = ((1, "intro"), (2, "calm"), (3, "encore"))
            return run(
                [Response(200, {"left": 1}), Response(201, {"id": 3})],
                {"songs": rows},
                trace=serial_trace,
            )
        rows = ((1, "intro"), (2, "calm"), (4, "encore"))
        return run(
            [Response(200, {"left": 2}), Response(201, {"id": 4})],
            {"songs": rows},
            interleaved=False,
        )

    concurrent = (
        Step(request=0, number=1, kind="start"),
        Step(request=1, number=1, kind="start"),
        sql(1, 2, insert, "('encore',)"),
        Step(request=1, number=3, kind="commit"),
        sql(0, 2, delete, "(3,)"),
        Step(request=0, number=3, kind="commit"),
        Step(request=0, number=4, kind="end"),
        Step(request=1, number=4, kind="end"),
    )
    actual = run(
        [Response(200, {"left": 1}), Response(201, {"id": 4})],
        {"songs": ((1, "intro"), (2, "calm"), (4, "encore"))},
        trace=concurrent,
    )
    verdict = judge_with(serial, actual, scenario("DELETE /songs", "POST /songs"))
    assert verdict.status == "serializable", verdict
    assert verdict.order == (0, 1)


def test_the_summary_counts_examples_judged_and_names_the_masked_cells(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reporting.summary(
        [],
        examples=200,
        seconds=10.0,
        stop_reason="finished",
        directory=None,
        judged={"fully": 50, "partly": 148, "not": 2},
        masked={"users.password_hash": 140, "GET /: spans of its page": 60},
        unknown={"serial runs of one order differ where nothing can be masked: x": 2},
    )
    out = capsys.readouterr().out
    assert "Judged: 50 example(s) fully, 148 partly" in out and "2 not at all" in out
    assert "users.password_hash: differs between serial runs, masked in 140 example(s)" in out
    assert out.index("users.password_hash") < out.index("GET /: spans")


def test_only_values_that_cannot_be_equal_by_chance_relate() -> None:
    from fuzzer.judge.masks import meaningful

    assert meaningful("bf68775586a12be84ac3c82ac66c73bf")  # secrets.token_hex
    assert meaningful(1796594104.3259168)  # time.time()
    assert not meaningful("en")  # a classifier's label
    assert not meaningful("2026-12-06T22:06:40")  # two stamps of one second
    assert not meaningful(3.0)


def test_a_key_given_again_after_a_delete_the_trace_does_not_show_is_matched_by_content() -> None:
    """An init request deleted song 3 (init requests are not traced); serially the
    INSERT gets 3 again, in the execution (after another song came and went) 4."""
    insert = "INSERT INTO songs (title) VALUES (?)"

    def serial(order: tuple[int, ...]) -> Execution:
        trace = (
            Step(request=0, number=1, kind="start"),
            sql(0, 2, insert, "('encore',)"),
            Step(request=0, number=3, kind="end"),
            Step(request=1, number=1, kind="start"),
            Step(request=1, number=2, kind="end"),
        )
        return run(
            [Response(201, {"id": 3}), Response(200, {"n": 3})],
            {"songs": ((1, "intro"), (2, "calm"), (3, "encore"))},
            trace=trace,
        )

    actual = run(
        [Response(201, {"id": 4}), Response(200, {"n": 3})],
        {"songs": ((1, "intro"), (2, "calm"), (4, "encore"))},
    )
    verdict = judge_with(serial, actual, scenario("POST /songs", "GET /songs"))
    assert verdict.status == "serializable", verdict.differences

    # a song updated in place is still the same row: a change of its title is a cell
    updated = run(
        [Response(201, {"id": 4}), Response(200, {"n": 3})],
        {"songs": ((1, "intro"), (2, "calm"), (4, "encore"))},
    )
    update = "UPDATE songs SET title=? WHERE songs.id = ?"

    def in_place(order: tuple[int, ...]) -> Execution:
        trace = (sql(0, 1, insert, "('encore',)"), sql(1, 1, update, "('coda', 2)"))
        return run(
            [Response(201, {"id": 4}), Response(200, {"n": 3})],
            {"songs": ((1, "intro"), (2, "coda"), (4, "encore"))},
            trace=trace,
        )

    verdict = judge_with(in_place, updated, scenario("POST /songs", "PUT /songs"))
    assert verdict.status == "violation"
    assert [(d.where, d.key, d.column) for d in verdict.differences] == [("cell", 2, "title")]


def test_keys_given_again_below_another_key_given_again() -> None:
    """The init request deleted song 2 (not traced), the execution song 3: serially two
    new songs get 2 and 3 again, in the execution 4 and 5."""
    insert = "INSERT INTO songs (title) VALUES (?)"
    delete = "DELETE FROM songs WHERE songs.id = ?"

    def serial(order: tuple[int, ...]) -> Execution:
        trace = (
            sql(0, 1, delete, "(3,)"),
            sql(1, 1, insert, "('a',)"),
            sql(2, 1, insert, "('b',)"),
        )
        return run(
            [Response(200, {"n": 1}), Response(201, {"id": 2}), Response(201, {"id": 3})],
            {"songs": ((1, "intro"), (2, "a"), (3, "b"))},
            trace=trace,
        )

    actual = run(
        [Response(200, {"n": 1}), Response(201, {"id": 4}), Response(201, {"id": 5})],
        {"songs": ((1, "intro"), (4, "a"), (5, "b"))},
    )
    verdict = judge_with(serial, actual, scenario("DELETE /songs", "POST /a", "POST /b"))
    assert verdict.status == "serializable", verdict.differences


def test_a_run_counts_what_it_judged_and_finds_the_dead_token() -> None:
    """End to end on SQLite: tokens from ``secrets`` and ``time()`` stamps are masked
    without any ignore list, and the token race is found through its relation."""
    from fuzzer import api

    report = api.run(
        "targets.apitoken:buggy", max_examples=4, seed=2, report_dir=None, example_db=None
    )
    assert {f.kind for f in report.findings} == {"stale-read"}
    result = report.result
    assert result.judged["not"] == 0 and result.judged["partly"] >= 1, result.judged
    assert {"users.token", "POST /users/1/token: body.token"} <= set(result.masked)


def test_a_cell_that_varied_is_masked_only_for_those_endpoints_and_that_row() -> None:
    """A roll writes a random value into songs.title of song 1: learned while judging an
    example with the roll, it masks that cell of examples that roll, not another row's,
    nor the same row in examples of deterministic writes only."""
    fresh = tokens()
    oracle = Oracle(
        Normalizer({"accounts": ACCOUNTS, "songs": SONGS}, INITIAL),
        lambda scene, order: serial(scene, order),
    )

    def serial(scene: Scenario, order: tuple[int, ...]) -> Execution:
        rows = {"songs": ((1, "intro"), (2, "calm!"), (3, "outro"))}
        if scene.requests[0].endpoint == "POST /roll":
            rows = {"songs": ((1, next(fresh)), (2, "calm!"), (3, "outro"))}
        return run([Response(200, {"ok": True})] * 2, rows, interleaved=False)

    rolled = scenario("POST /roll", "POST /edit")
    odd = run([Response(200, {"ok": True})] * 2, {"songs": ((1, "x"), (2, "calm!"), (3, "outro"))})
    assert oracle.judge(rolled, odd).status == "serializable"  # song 1 varies when rolled
    assert oracle.masks.columns == {"songs.title"}
    # the same example, with song 2 wrong: another row of the column is still compared
    wrong = run([Response(200, {"ok": True})] * 2, {"songs": ((1, "x"), (2, "calm"), (3, "outro"))})
    assert oracle.judge(rolled, wrong).status == "violation"
    # edits alone never rolled: song 1 wrong there is a violation
    edits = scenario("POST /edit", "POST /edit")
    lost = run([Response(200, {"ok": True})] * 2, {"songs": ((1, "x"), (2, "calm!"), (3, "outro"))})
    assert oracle.judge(edits, lost).status == "violation"


def test_generated_keys_and_mask_positions_are_types_that_read_as_before() -> None:
    """Issue 18 item 6: a generated key's name knows who made it (nothing parses its
    text), a mask position names its fields; reports print and write them as before."""
    import json
    import pickle

    from fuzzer.judge.masks import AnswerPosition, CellPosition
    from fuzzer.judge.verdict import NewKey, is_new_label

    made = NewKey("users", maker=(0, 2))
    assert made == "<new users by R1.2>" and (made.table, made.maker) == ("users", (0, 2))
    numbered = NewKey("tags", number=1)
    assert numbered == "<new tags #1>" and numbered.maker is None
    assert json.dumps({"id": made}) == '{"id": "<new users by R1.2>"}'
    again = pickle.loads(pickle.dumps(made))  # a worker sends findings to its parent
    assert again == made and again.maker == (0, 2) and is_new_label(again)
    assert not is_new_label("<new users #1>")  # a string that looks like one is a string
    assert CellPosition("shop.accounts", 0, "token").text() == "accounts.token of the final rows"
    assert AnswerPosition("response", 1, "body.token").text() == "R2's body.token"
    assert AnswerPosition("observer", 0, "body").text() == "observer 1's body"
