"""A Redis database the app opens that is not the fuzzer's scratch one: named when the
run starts, its keys counted when it ends, refused with --strict-isolation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fuzzer import api
from fuzzer.errors import TargetSetupError
from fuzzer.search.events import Event, Start
from tests.conftest import need
from tests.fixtures.queue_redis import KEY

HOLD = "fuzzer-test:queue_redis:hold"

# the tests of database 2 run one after the other, on one xdist worker
pytestmark = pytest.mark.xdist_group("redis-database-2")


@pytest.fixture
def queue() -> Iterator[Any]:
    need("redis")
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=2)  # this test's own database
    client.delete(KEY)
    # a database that holds a key is never claimed as a scratch database (a claim takes
    # only an empty one), so a run in parallel cannot take database 2 and reset it
    client.set(HOLD, "1", ex=600)
    try:
        yield client
    finally:
        client.delete(KEY, HOLD)  # only its own keys: never a flush
        client.close()


def test_the_apps_own_redis_is_named_at_the_start_and_its_keys_counted_after(queue: Any) -> None:
    # issue 21: a microblog's export endpoint queued background jobs into the Redis
    # database it was configured with; the fuzzer neither noticed nor said so (22 keys
    # left behind)
    notices: list[str] = []

    def events(event: Event) -> None:
        if isinstance(event, Start):
            notices.extend(event.notices)

    report = api.run("tests.fixtures.queue_redis:target", max_examples=3, on_event=events)
    assert any("127.0.0.1:6379/2" in n and "not the fuzzer's scratch" in n for n in notices)
    (line,) = report.redis_after
    assert line.startswith("Redis 127.0.0.1:6379/2 (not the fuzzer's): ")
    jobs = queue.llen(KEY)
    assert jobs >= 3  # the survey's and the examples' exports
    assert "keys after the run" in line


def test_strict_isolation_refuses_it_before_anything_runs(queue: Any) -> None:
    with pytest.raises(TargetSetupError, match=r"opens Redis 127\.0\.0\.1:6379/2.*--strict-iso"):
        api.run("tests.fixtures.queue_redis:target", max_examples=3, strict_isolation=True)
    assert queue.llen(KEY) == 0


def test_a_client_the_app_keeps_but_never_calls_is_fuzzed_with_a_note() -> None:
    need("redis")
    notices: list[str] = []

    def events(event: Event) -> None:
        if isinstance(event, Start):
            notices.extend(event.notices)

    report = api.run("tests.fixtures.memo:elsewhere", max_examples=2, on_event=events)
    assert report.result.examples == 2
    assert any("127.0.0.1:6379/0" in n for n in notices)
