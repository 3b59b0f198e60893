"""Properties of the core, for any input Hypothesis draws: a schedule read off any trace of
two requests replays it; what a statement SQLAlchemy compiled reads, writes and filters on;
the judged outcome does not depend on the numbers the database gave new rows; scenarios,
steps and responses survive their JSON."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import mysql, postgresql, sqlite

from fuzzer.db import TableInfo
from fuzzer.judge.normalise import Normalizer
from fuzzer.model import Execution, Gene, Request, Response, Scenario, Step
from fuzzer.search.plan.schedules import from_trace
from fuzzer.sql import access, compiled, shape, writes
from fuzzer.sql import recorded as recorded_access
from fuzzer.sql import verb as sql_verb

# the machine running the suite may be loaded: no deadline, no complaint about slow draws
relaxed = settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

# -- schedules from any trace --------------------------------------------------------------


def scheduled(lengths: Sequence[int], genes: Sequence[Gene]) -> list[int]:
    """The order in which the scheduler grants the requests' steps (DESIGN.md §4): always
    the waiting request with the lowest (demotion, priority, index); after its own step
    ``k`` for ``k`` in its yields, a request drops below every other."""
    demotion = [0] * len(lengths)
    done = [0] * len(lengths)
    demotions = itertools.count(1)
    order = []
    while any(d < n for d, n in zip(done, lengths, strict=True)):
        waiting = [r for r in range(len(lengths)) if done[r] < lengths[r]]
        r = min(waiting, key=lambda r: (demotion[r], genes[r].priority, r))
        done[r] += 1
        order.append(r)
        if done[r] in genes[r].yields:
            demotion[r] = next(demotions)
    return order


def trace_of(order: Sequence[int]) -> tuple[Step, ...]:
    """Steps in this order of requests, each request's from "start" to "end"."""
    total = {r: order.count(r) for r in set(order)}
    seen = dict.fromkeys(total, 0)
    steps = []
    for r in order:
        seen[r] += 1
        kind = "start" if seen[r] == 1 else "end" if seen[r] == total[r] else "sql"
        steps.append(Step(r, seen[r], kind, "SELECT 1" if kind == "sql" else ""))
    return tuple(steps)


@st.composite
def interleavings(draw: st.DrawFn, requests: int) -> list[int]:
    lengths = draw(st.lists(st.integers(2, 7), min_size=requests, max_size=requests))
    return draw(st.permutations([r for r, n in enumerate(lengths) for _ in range(n)]))


@relaxed
@given(interleavings(2))
def test_a_schedule_read_off_any_trace_of_two_requests_replays_it(order: list[int]) -> None:
    genes = from_trace(trace_of(order), 2)
    assert scheduled([order.count(0), order.count(1)], genes) == order


@relaxed
@given(interleavings(3))
def test_a_schedule_read_off_any_trace_names_only_steps_of_its_request(order: list[int]) -> None:
    genes = from_trace(trace_of(order), 3)
    assert sorted(g.priority for g in genes) == [0, 1, 2]  # the order they were first seen
    assert genes[order[0]].priority == 0
    for r, gene in enumerate(genes):
        assert set(gene.yields) <= set(range(1, order.count(r)))  # never after its "end"
    assert sorted(scheduled([order.count(r) for r in range(3)], genes)) == sorted(order)


# -- what a statement SQLAlchemy compiled reads, writes and filters on ---------------------

KEYWORDS = {"select", "insert", "update", "delete", "from", "where", "set", "into", "values"}
names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: n not in KEYWORDS and not sa.sql.compiler.RESERVED_WORDS & {n}
)
values = st.one_of(st.integers(-1000, 1000), st.text("abcxyz -", min_size=1, max_size=6))
DIALECTS = {
    "sqlite": sqlite.dialect(),
    "mysql": mysql.dialect(),
    "postgresql": postgresql.dialect(),
}


@st.composite
def statements(draw: st.DrawFn) -> tuple[str, str, Any, dict[str, Any], dict[str, Any]]:
    """(verb, table, statement, its SET values, its WHERE values), over random names."""
    table_name = draw(names)
    columns = draw(st.lists(names, min_size=2, max_size=4, unique=True))
    table = sa.table(table_name, *(sa.column(c) for c in columns))
    verb = draw(st.sampled_from(["SELECT", "INSERT", "UPDATE", "DELETE"]))
    where_columns = draw(st.lists(st.sampled_from(columns), min_size=1, max_size=2, unique=True))
    where = {c: draw(values) for c in where_columns}
    condition = sa.and_(*(table.c[c] == v for c, v in where.items()))
    sets = {
        c: draw(values) for c in draw(st.lists(st.sampled_from(columns), min_size=1, unique=True))
    }
    statement: Any
    if verb == "SELECT":
        statement, sets = sa.select(*table.c).where(condition), {}
    elif verb == "INSERT":
        statement, where = sa.insert(table).values(**sets), {}
    elif verb == "UPDATE":
        statement = sa.update(table).where(condition).values(**sets)
    else:
        statement, sets = sa.delete(table).where(condition), {}
    return verb, table_name, statement, sets, where


def recorded(statement: Any, dialect: Any) -> tuple[str, str]:
    """The statement's text and parameters as the gates record them from a cursor."""
    compiled = statement.compile(dialect=dialect)
    params = compiled.construct_params()
    if compiled.positional:
        return str(compiled), repr(tuple(params[name] for name in compiled.positiontup))
    return str(compiled), repr(params)


@relaxed
@given(statements(), st.sampled_from(sorted(DIALECTS)))
def test_a_compiled_statement_is_read_as_its_verb_table_values_and_filters(
    drawn: tuple[str, str, Any, dict[str, Any], dict[str, Any]], dialect: str
) -> None:
    verb, table, statement, sets, where = drawn
    text, params = recorded(statement, DIALECTS[dialect])
    seen = access(text, params)
    assert seen.verb == verb == sql_verb(f"/* a comment */ {text}")
    assert writes(text) == (verb != "SELECT")
    if verb == "SELECT":
        assert (seen.reads, seen.write) == ({table}, None)
    else:
        assert seen.write == table
    if verb == "UPDATE":
        assert dict(seen.sets) == sets and set(seen.assigned) == set(sets)
    if verb in ("SELECT", "UPDATE", "DELETE"):
        assert dict(seen.filters) == where


@relaxed
@given(statements(), st.sampled_from(sorted(DIALECTS)))
def test_the_compiled_statement_and_its_text_are_read_alike(
    drawn: tuple[str, str, Any, dict[str, Any], dict[str, Any]], dialect: str
) -> None:
    # what the gate reads off the statement SQLAlchemy compiled is what the parser reads
    # off its text: a step read back from a report is read as it was recorded
    statement = drawn[2]
    text, params = recorded(statement, DIALECTS[dialect])
    found = compiled.shape(SimpleNamespace(compiled=statement.compile(dialect=DIALECTS[dialect])))
    assert found is not None and found is not shape(text)
    parsed = shape(text)
    assert (found.verb, found.write, found.reads) == (parsed.verb, parsed.write, parsed.reads)
    assert recorded_access(text, params, found) == access(text, params)


# -- the outcome does not depend on the numbers new rows got --------------------------------

TABLES = {
    "authors": TableInfo("authors", ("id", "name"), ("id",), "id", ()),
    "posts": TableInfo(
        "posts", ("id", "author_id", "title"), ("id",), "id", (("author_id", "authors", "id"),)
    ),
}
INITIAL = {"authors": ((1, "ann"), (2, "bo")), "posts": ((1, 1, "hello"),)}


@st.composite
def new_rows(draw: st.DrawFn) -> tuple[list[str], list[tuple[int, str]]]:
    """New authors (distinct names) and new posts (an author index, a distinct title)."""
    authors = draw(st.lists(st.sampled_from(["cy", "di", "ed", "fa"]), max_size=3, unique=True))
    titles = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=3, unique=True))
    count = len(INITIAL["authors"]) + len(authors)
    return authors, [(draw(st.integers(0, count - 1)), title) for title in titles]


def execution(
    drawn: tuple[list[str], list[tuple[int, str]]], author_keys: list[int], post_keys: list[int]
) -> Execution:
    """The tables and answers after inserting the drawn rows under these generated keys;
    each insert answers with the key it got, as a JSON API does."""
    authors, posts = drawn
    keys = [row[0] for row in INITIAL["authors"]] + author_keys
    new_authors = tuple(zip(author_keys, authors, strict=True))
    new_posts = tuple(
        (key, keys[author], title) for key, (author, title) in zip(post_keys, posts, strict=True)
    )
    responses = tuple(Response(201, {"id": k}) for k in author_keys + post_keys)
    return Execution(
        mode="controlled",
        responses=responses,
        tables={
            "authors": tuple(sorted(INITIAL["authors"] + new_authors)),
            "posts": tuple(sorted(INITIAL["posts"] + new_posts)),
        },
    )


@relaxed
@given(new_rows(), st.randoms(use_true_random=False), st.integers(0, 50))
def test_the_outcome_is_the_same_whatever_keys_the_database_gave_new_rows(
    drawn: tuple[list[str], list[tuple[int, str]]], random: Any, gap: int
) -> None:
    authors, posts = drawn
    normalizer = Normalizer(TABLES, INITIAL)
    author_keys = list(range(3, 3 + len(authors)))
    post_keys = list(range(2, 2 + len(posts)))
    # the same inserts numbered otherwise: another order among them, after a gap
    shuffled_authors = random.sample(author_keys, len(author_keys))
    shuffled_posts = random.sample(post_keys, len(post_keys))
    one = execution(drawn, author_keys, post_keys)
    other = execution(drawn, [k + gap for k in shuffled_authors], [k + gap for k in shuffled_posts])
    labels = [f"POST /authors #{i}" for i in range(len(authors))]
    labels += [f"POST /posts #{i}" for i in range(len(posts))]
    assert normalizer.outcome(one, labels) == normalizer.outcome(other, labels)


# -- JSON round trips -------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
requests = st.builds(
    Request,
    endpoint=st.text(min_size=1, max_size=12),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    path=st.text(min_size=1, max_size=12).map(lambda p: "/" + p),
    json=json_values,
    params=st.none() | st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    headers=st.none() | st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    identity=st.none() | st.text(min_size=1, max_size=5),
    form=st.none() | st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)
genes = st.builds(Gene, st.integers(0, 5), st.lists(st.integers(1, 30), max_size=4).map(tuple))


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    concurrent = draw(st.lists(requests, min_size=1, max_size=3))
    return Scenario(
        requests=tuple(concurrent),
        schedule=tuple(draw(genes) for _ in concurrent),
        init=tuple(draw(st.lists(requests, max_size=2))),
        observers=tuple(draw(st.lists(requests, max_size=2))),
    )


def through_json(data: Any) -> Any:
    return json.loads(json.dumps(data))


@settings(relaxed, max_examples=50)
@given(scenarios())
def test_a_scenario_survives_its_json(scenario: Scenario) -> None:
    assert Scenario.from_json(through_json(scenario.to_json())) == scenario


@relaxed
@given(
    st.builds(
        Step,
        request=st.integers(0, 3),
        number=st.integers(1, 40),
        kind=st.sampled_from(["start", "sql", "commit", "rollback", "checkpoint", "end"]),
        text=st.text(max_size=20),
        params=st.text(max_size=10),
        database=st.sampled_from(["", "default", "audit"]),
        connection=st.integers(0, 3),
        rowcount=st.none() | st.integers(0, 5),
        error=st.text(max_size=10),
        waited=st.text(max_size=10),
    )
)
def test_a_step_survives_its_json(step: Step) -> None:
    assert Step.from_json(through_json(step.to_json())) == step


@relaxed
@given(
    st.builds(
        Response,
        status=st.integers(100, 599),
        body=json_values,
        error=st.text(max_size=10),
        location=st.text(max_size=10),
    )
)
def test_a_response_survives_its_json(response: Response) -> None:
    assert Response.from_json(through_json(response.to_json())) == response


def test_a_kind_is_its_text_in_reports_json_and_expectations() -> None:
    from fuzzer.kinds import KINDS, TITLES, Kind

    assert Kind.LOST_UPDATE == "lost-update" and f"{Kind.LOST_UPDATE}" == "lost-update"
    assert json.loads(json.dumps({"kind": Kind.HANG})) == {"kind": "hang"}
    assert set(TITLES) == set(KINDS) and TITLES["write-skew"] == "Write skew"
    assert [Kind(k) for k in ("stale-read", "hang")] == [Kind.STALE_READ, Kind.HANG]
