"""Shared state beyond the database: cache and Redis calls are scheduling points, read as
table accesses, and reset to what setup left before every execution
(fuzzer/execute/stores/caches.py)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from fuzzer import api
from fuzzer.errors import DatabaseError, InvalidTarget, TargetSetupError
from fuzzer.execute.instrument import load_target
from fuzzer.execute.runner import Controlled
from fuzzer.execute.stores.caches import Stores
from fuzzer.execute.stores.scratch import MARKER, RedisScratch
from fuzzer.model import Gene, Request, Scenario
from fuzzer.modes.session import Session
from fuzzer.search.plan.schedules import conflict_points
from fuzzer.sql import access, touch
from fuzzer.target.contract import Target, validate

from .conftest import need


def need_redis() -> None:
    need("redis")  # skips, or fails under FUZZER_REQUIRE_SERVERS=1


def _submit(user: str = "alice", challenge: int = 1) -> Request:
    return Request(
        endpoint="POST /challenges/<id>/submit",
        method="POST",
        path=f"/challenges/{challenge}/submit",
        json={"user": user, "flag": "flag{guess}"},
    )


def test_cache_and_redis_commands_read_and_write_tables_keyed_by_their_keys() -> None:
    get = access("cache GET attempts:alice:1")
    assert (get.reads, get.write, get.filters) == (
        frozenset({"cache:attempts"}),
        None,
        (("key", "attempts:alice:1"),),
    )
    incr = access("redis INCR attempts:alice:1")
    assert incr.reads == {"redis:attempts"} and incr.write == "redis:attempts"
    assert incr.key == ("attempts:alice:1",)
    blind = access("redis SET attempts:alice:1")
    assert not blind.reads and blind.write == "redis:attempts"
    batch = access("redis MULTI INCRBY hits:1; EXPIRE hits:1")
    assert batch.verb == "MULTI" and batch.write == "redis:hits"
    assert access("cache GET_MANY 'a b:1' c").reads == {"cache:a b", "cache:c"}


def test_a_cache_call_is_a_step_of_its_own_and_a_point_to_switch_at() -> None:
    """The race needs R1 to yield between its cache GET and its SET: possible only if the
    GET is a step (before, the next yield point after the SELECT was the INSERT)."""

    def work(s: Session) -> Any:
        alone = s.execute(Scenario((_submit(),), (Gene(),)), Controlled())
        switched = s.execute(
            Scenario((_submit(), _submit()), (Gene(0, (3,)), Gene(1))), Controlled()
        )
        return alone, switched

    alone, switched = Session(load_target("targets.attempts:buggy")).run(work)
    steps = [(s.kind, s.text) for s in alone.trace]
    assert ("sql", "cache GET attempts:alice:1") in steps
    assert ("sql", "cache SET attempts:alice:1") in steps
    assert not any("flask_cache" in text for _, text in steps)  # the user's keys
    both = [*alone.trace, *(replace(s, request=1) for s in alone.trace)]
    points = conflict_points(both, 2)
    get = next(s.number for s in alone.trace if s.text.startswith("cache GET"))
    assert get in points[0]
    assert [r.status for r in switched.responses] == [200, 200]  # the third attempt


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "mariadb"])
@pytest.mark.parametrize("module", ["attempts", "attempts_redis"])
def test_the_max_attempts_race_is_found_in_two_requests_and_the_fixed_twin_is_clean(
    module: str, database: str
) -> None:
    db = database if database == "sqlite" else need(database)
    if module.endswith("redis"):
        need_redis()
    report = api.run(
        f"targets.{module}:buggy", db=db, max_examples=4, seed=1, report_dir=None, example_db=None
    )
    assert [f.kind for f in report.findings] == ["limit-overrun"]
    (finding,) = report.findings
    assert len(finding.scenario.requests) == 2 and not finding.flaky
    texts = [s.text for s in finding.execution.trace]
    store = "redis" if module.endswith("redis") else "cache"
    assert f"{store} GET attempts:alice:1" in texts
    assert f"read {store}:attempts at step" in finding.explanation.text()  # the cause
    fixed = api.run(
        f"targets.{module}:fixed", db=db, max_examples=15, seed=1, report_dir=None, example_db=None
    )
    assert fixed.findings == [], [f.explanation.text() for f in fixed.findings]
    assert not fixed.result.unknown


@pytest.mark.parametrize("module", ["attempts", "attempts_redis", "redis_cache"])
def test_what_setup_left_in_a_cache_is_restored_before_every_execution(module: str) -> None:
    """Alice has one attempt left after setup: every execution of two submissions lets
    exactly one through. Without the reset the counter would carry over and refuse both."""
    if "redis" in module:
        need_redis()
    package = "tests.fixtures" if module == "redis_cache" else "targets"

    def work(s: Session) -> list[list[int]]:
        twice = Scenario((_submit(), _submit()), (Gene(), Gene()))
        return [[r.status for r in s.execute(twice, Controlled()).responses if r] for _ in range(3)]

    statuses = Session(load_target(f"{package}.{module}:fixed")).run(work)
    assert statuses == [[200, 429]] * 3


def test_a_redis_cache_backend_is_scheduled_by_its_cache_calls_on_the_scratch_database() -> None:
    need_redis()
    report = api.run(
        "tests.fixtures.redis_cache:buggy", max_examples=5, seed=1, report_dir=None, example_db=None
    )
    (finding,) = report.findings
    texts = [s.text for s in finding.execution.trace]
    assert "cache GET attempts:alice:1" in texts
    assert not any(t.startswith("redis ") for t in texts)  # the backend's own commands


def test_simple_cache_entries_come_back_with_the_lifetime_they_had_left() -> None:
    from flask import Flask
    from flask_caching import Cache

    app = Flask(__name__)
    cache = Cache(app, config={"CACHE_TYPE": "SimpleCache"})
    with app.app_context():
        cache.set("kept", 1, timeout=100)
        cache.set("forever", 2, timeout=0)
        stores = Stores(app)
        stores.take_snapshot()
        cache.set("kept", 5)
        cache.set("added", 3)
        cache.delete("forever")
        backend = cache.cache
        backend._cache["kept"] = (int(time.time()) + 1, backend._cache["kept"][1])
        stores.reset()
        assert (cache.get("kept"), cache.get("forever"), cache.get("added")) == (1, 2, None)
        assert backend._cache["kept"][0] >= int(time.time()) + 99
        assert backend._cache["forever"][0] == 0


def test_an_in_process_cache_uses_checkpoints_and_the_reset_hook() -> None:
    from tests.fixtures import memo

    memo.resets.clear()
    report = api.run(
        "tests.fixtures.memo:target", max_examples=30, seed=1, report_dir=None, example_db=None
    )
    assert [f.kind for f in report.findings] == ["limit-overrun"]
    assert len(memo.resets) >= report.result.examples  # before every execution


def test_a_cache_the_fuzzer_cannot_reset_needs_the_hook() -> None:
    with pytest.raises(TargetSetupError, match=r"FileSystemCache.*Target\(reset=\.\.\.\)"):
        api.run("tests.fixtures.memo:filesystem", max_examples=2, report_dir=None)
    # a Redis client the app keeps but never calls is fuzzed (a request that used it
    # would stop the run: tests/test_first_try.py); before, it was refused at the start
    report = api.run("tests.fixtures.memo:elsewhere", max_examples=2, report_dir=None)
    assert report.result.examples == 2


def test_redis_and_reset_knobs_are_validated() -> None:
    def one(url: str) -> Any: ...

    with pytest.raises(InvalidTarget, match=r"two arguments with Target\.redis"):
        validate(Target(name="t", app=one, setup=None, endpoints=[_endpoint()], redis=True))
    with pytest.raises(InvalidTarget, match=r"Target\.reset must be a callable"):
        validate(Target(name="t", app=one, setup=None, endpoints=[_endpoint()], reset=3))  # type: ignore[arg-type]

    def two(url: str, redis_url: str | None = None) -> Any: ...

    validate(Target(name="t", app=two, setup=None, endpoints=[_endpoint()], redis=True))


def _endpoint() -> Any:
    from fuzzer import Endpoint

    return Endpoint("GET", "/")


def test_the_scratch_redis_database_is_never_one_that_holds_keys_it_did_not_claim() -> None:
    need_redis()
    import redis

    first = RedisScratch.open()
    number = first.number
    first.release()
    foreign = redis.Redis(host="127.0.0.1", port=6379, db=number)
    foreign.set("someone:else", "theirs")
    try:
        second = RedisScratch.open()
        try:
            assert second.number != number
            second.client.set("mine", 1)
            second.take_snapshot()
            second.reset()
        finally:
            second.release()
        assert foreign.get("someone:else") == b"theirs"
        assert second.client.dbsize() == 0  # released: flushed, marker and all
    finally:
        foreign.delete("someone:else")
        foreign.close()


def test_a_claim_left_by_a_dead_fuzzer_is_taken_over_and_a_lost_claim_stops_the_reset() -> None:
    need_redis()
    import redis

    first = RedisScratch.open()
    number = first.number
    first.release()
    left = redis.Redis(host="127.0.0.1", port=6379, db=number)
    left.set(MARKER, "999999999:killed")  # no such process
    left.set("leftover", 1)
    try:
        taken = RedisScratch.open()
        try:
            assert taken.number == number
            assert left.get("leftover") is None
            taken.take_snapshot()
            left.flushdb()  # the app flushed the database: the fuzzer owns it no longer
            with pytest.raises(DatabaseError, match="lost the fuzzer's claim"):
                taken.reset()
        finally:
            taken.release()
    finally:
        left.delete(MARKER, "leftover")
        left.close()


def test_a_redis_pipeline_is_one_step_and_commands_outside_requests_pass_through() -> None:
    need_redis()
    from fuzzer.execute import gates, instrument
    from fuzzer.execute.recording import Recording, RequestContext

    instrument.install()
    scratch = RedisScratch.open()
    try:
        client = scratch.client
        with Recording() as recording:
            client.set("hits:1", 0)  # outside a request: not recorded
            gates._state.ctx = RequestContext(recording, "concurrent", 0)
            try:
                with client.pipeline() as pipe:
                    pipe.incr("hits:1").expire("hits:1", 60).execute()
                client.get("hits:1")
            finally:
                gates._state.ctx = None
        texts = [s.text for s in recording.trace()]
        assert texts == ["redis MULTI INCRBY hits:1; EXPIRE hits:1", "redis GET hits:1"]
        assert client.get("hits:1") == b"1"
    finally:
        scratch.release()


def test_a_redis_that_is_not_up_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from fuzzer.execute.stores import scratch

    monkeypatch.setattr(scratch, "REDIS_PORT", 1)  # nothing listens there
    with pytest.raises(DatabaseError, match=r"Redis at 127\.0\.0\.1:1 is not reachable"):
        RedisScratch.open()


def test_memoized_calls_are_steps_but_not_the_race() -> None:
    # issue 19: a CTF whose views read a memoized config: the memo's fills were conflict
    # points and evidence ("R2 read cache:NrMF3… before R1 wrote it"); the max-attempts
    # race behind them was not found in 30 examples (seed 1), found after 1 without them
    assert touch("memo GET_MANY app.setting_memver") == touch("memo SET x")
    assert not touch("memo SET x").reads and not touch("memo SET x").writes
    report = api.run("targets.ctfmemo:buggy", max_examples=10, seed=1)
    (finding,) = report.findings
    assert finding.kind == "limit-overrun"
    assert finding.found_after <= 3
    assert [len(g.yields) for g in finding.scenario.schedule] in ([1, 0], [0, 1])
    memo = [s for s in finding.execution.trace if s.text.startswith("memo ")]
    # recorded without keys (a version drawn anew after every reset ends them)
    assert memo and all(len(s.text.split()) == 2 and not s.params for s in memo)
    text = finding.explanation.text()
    assert "memo" not in text and "cache:attempts" in text


def test_a_memoized_function_s_own_cache_calls_stay_the_app_s() -> None:
    """The memoize machinery is patched once, on the class: its lookup, fill and version
    are memo steps, without keys; what the function itself asks of the cache is the
    app's, with its key. A function memoized before the instrumentation (its module
    imported first, as a test collection does) is told apart too."""
    from flask import Flask
    from flask_caching import Cache

    from fuzzer.execute import gates, instrument
    from fuzzer.execute.recording import Recording, RequestContext

    app = Flask(__name__)
    cache = Cache(app, config={"CACHE_TYPE": "SimpleCache"})

    @cache.memoize()
    def double(n: int) -> int:
        cache.set("computed", n)
        return 2 * n

    with instrument.instrumented(), app.app_context(), Recording() as recording:
        gates._state.ctx = RequestContext(recording, "concurrent", 0)
        try:
            assert double(2) == 4 and double(2) == 4  # the second from the memo
            cache.get("computed")
        finally:
            gates._state.ctx = None
    texts = [s.text for s in recording.trace()]
    assert [t for t in texts if not t.startswith("memo ")] == [
        "cache SET computed",
        "cache GET computed",
    ]
    memo = [t for t in texts if t.startswith("memo ")]
    assert "memo GET" in memo and "memo SET" in memo
    assert all(len(t.split()) == 2 for t in memo)  # no keys: they end with a random version
