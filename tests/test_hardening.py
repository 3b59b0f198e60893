"""Hardening, second round (issue 21): what a careless or hostile user does to a soak, a
campaign, a report or the terminal, and the one clear answer each gets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings

from fuzzer.cli.commands import main
from fuzzer.errors import FuzzerError
from fuzzer.modes.nightly.sharedstore import check_shared, open_campaign
from fuzzer.modes.nightly.workers import WORKER_MIB, crowding
from fuzzer.search.events import Wrote


def cli(*args: str) -> Result:
    """The command line, in this process (click's runner: stdout and stderr apart)."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def one_line(result: Result, code: int = 2) -> str:
    """The single error line of a command that exited ``code``, without a traceback."""
    assert result.exit_code == code, result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- item 3: --shared names a numeric database; more workers than cores is said ----------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://127.0.0.1:6379/abc", "names the database 'abc', which is not a number"),
        ("redis://127.0.0.1:6379/", "names no database number"),
        ("redis://127.0.0.1:6379", "names no database number"),
        ("redis://127.0.0.1:6379/5?db=0", "has a query, which may choose another database"),
        ("redis://127.0.0.1/5", "has no port"),
        ("redis://127.0.0.1:http/5", "has no port"),
        ("redis://:6379/5", "names no host"),
        ("unix:///tmp/redis.sock", "is not a Redis URL"),
        ("http://127.0.0.1:6379/5", "is not a Redis URL"),
    ],
)
def test_shared_accepts_only_a_redis_url_with_a_numeric_database(url: str, problem: str) -> None:
    with pytest.raises(FuzzerError, match="expected redis://HOST:PORT/N") as raised:
        check_shared(url)
    assert problem in str(raised.value)
    with pytest.raises(FuzzerError):  # before any connection is tried
        open_campaign(url, "unused", "k")


def test_shared_url_shown_without_its_password() -> None:
    with pytest.raises(FuzzerError) as raised:
        check_shared("redis://user:s3cret@127.0.0.1:6379/x")
    assert "s3cret" not in str(raised.value) and "***" in str(raised.value)


def test_a_numeric_database_passes() -> None:
    check_shared("redis://127.0.0.1:6379/5")
    check_shared("rediss://user:pw@127.0.0.1:6380/12")


def test_a_soak_with_a_non_numeric_shared_database_exits_2_before_anything_runs(
    tmp_path: Path,
) -> None:
    report_dir = tmp_path / "reports"
    result = cli(
        "soak",
        "targets.profile:buggy",
        "--duration",
        "5",
        "--shared",
        "redis://127.0.0.1:6379/abc",
        "--report-dir",
        str(report_dir),
    )
    assert "names the database 'abc', which is not a number" in one_line(result)
    assert not any(report_dir.glob("*/manifest.json"))


def test_more_workers_than_cores_warns_with_the_memory_they_take() -> None:
    assert crowding(2, cores=2) is None
    said = crowding(64, cores=2)
    assert said is not None
    assert "--workers 64 on 2 cores" in said
    assert f"about {64 * WORKER_MIB} MiB" in said and "--workers 2" in said


def test_the_soak_command_says_so_before_it_starts_the_workers(tmp_path: Path) -> None:
    import os

    many = (os.cpu_count() or 1) + 1
    named = f"sqlite:///{tmp_path / 'fuzz_named.db'}"  # refused by --workers: ends it early
    result = cli(
        "soak",
        "targets.profile:buggy",
        "--duration",
        "5",
        "--workers",
        str(many),
        "--db",
        named,
        "--report-dir",
        str(tmp_path / "reports"),
    )
    assert result.exit_code == 2, result.output + result.stderr
    warning, error = [line for line in result.stderr.splitlines() if line.strip()]
    assert warning.startswith(f"warning: --workers {many} on ")
    assert f"about {many * WORKER_MIB} MiB" in warning
    assert "needs scratch databases the fuzzer names itself" in error


# -- item 6: every output holds whatever the target says ----------------------------------

HOSTILE = ["\x00", "\x1b[2J", "\x1b]0;owned\x07", "\r", "\x0c", "\u202e", "\udc80", "\ud800"]
HOSTILE += ["\x85", "\ufffe", "]]>", "</pre><script>x</script>", '"""', "\\", "&amp;", "李四"]


def hostile_text() -> Any:
    """Arbitrary Unicode (surrogates and controls included), mixed with known hostile
    pieces; shrinks toward the empty string."""
    from hypothesis import strategies as st

    pieces = st.one_of(
        st.sampled_from(HOSTILE), st.text(st.characters(exclude_categories=()), max_size=8)
    )
    return st.lists(pieces, max_size=6).map("".join)


def hostile_finding(name: str, body: str) -> Any:
    """A finding whose endpoint name, path, request and response carry ``name`` and
    ``body`` (the hand-built story of test_golden's blocked migration)."""
    from fuzzer.findings import classify
    from fuzzer.judge.oracle import Verdict
    from fuzzer.model import Execution, Gene, Hang, Leak, Request, Response, Scenario, Step

    sql = f"SELECT * FROM customers WHERE name = '{body}'"
    trace = (
        Step(0, 1, "start"),
        Step(0, 2, "sql", sql, repr({"name": body}), "default", 1),
        Step(0, 3, "end"),
    )
    execution = Execution(
        mode="controlled",
        responses=(Response(500, {"error": body, name: [body]}, error=f"E: {body}"),),
        tables={"customers": ((1, body),)},
        trace=trace,
        leaks=(Leak(0, 1, "default", True, sql),),
        schema_change=Hang(0.0, {}, {}, lock=f"waits on {body}", holders={0: name}),
    )
    request = Request(name, "POST", "/x/" + name, json={"k": body}, headers={"X-N": body})
    scenario = Scenario(requests=(request,), schedule=(Gene(),))
    verdict = Verdict("serializable", (0,), reference=execution)
    return next(f for f in classify(scenario, execution, verdict) if f.kind == "hang")


CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=hostile_text(), body=hostile_text())
def test_every_output_parses_and_the_terminal_gets_no_control_character(
    name: str, body: str
) -> None:
    import ast
    import contextlib
    import io
    import json
    import tempfile
    import xml.etree.ElementTree as ET
    from html.parser import HTMLParser

    from fuzzer.report import reporting
    from fuzzer.report.writer import ReportWriter

    finding = hostile_finding(name, body)
    with tempfile.TemporaryDirectory() as root:
        writer = ReportWriter(root, f"targets.x:{name}", name, {"url": body}, {"db": body})
        entry = writer.add(finding)
        summary = {"state": "finished", "examples": 1, "seconds": 0.1, "stop_reason": body}
        directory = Path(writer.finish(summary))
        # a visible directory inside the root, whatever the name
        assert directory.parent.resolve() == Path(root).resolve()
        assert not directory.name.startswith((".", "-")) and directory.name.isascii()
        for path in directory.iterdir():
            data = path.read_bytes().decode("utf-8")  # every file is valid UTF-8
            if path.suffix == ".json":
                json.loads(data)
            elif path.suffix == ".xml":
                ET.fromstring(path.read_bytes())  # expat: a NUL or \x0c is not well-formed
            elif path.suffix == ".py":
                ast.parse(data)
            elif path.suffix == ".html":
                HTMLParser().feed(data)
                assert not CONTROL.search(data.replace("\r", "")), path
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            reporting.text(entry.text())
            reporting.findings_table([finding])
            reporting.note(f"note {name} {body}")
            reporting.error(f"error {name} {body}")
            reporting.SearchProgress(enabled=True)(Wrote(entry.json))
        shown = out.getvalue()
        assert not CONTROL.search(shown), repr(shown)
        shown.encode("utf-8")  # no lone surrogate reaches the terminal


@pytest.mark.parametrize(
    ("name", "start"),
    [
        ("../../x", "x-"),
        (".hidden", "hidden-"),
        ("-rf", "rf-"),
        ("...", "target-"),
        ("a/b", "a-b-"),
    ],
)
def test_run_directories_are_visible_and_inside_the_root(
    tmp_path: Path, name: str, start: str
) -> None:
    from fuzzer.report.json import run_directory

    path = Path(run_directory(str(tmp_path), name))
    assert path.parent == tmp_path and path.name.startswith(start), path


# -- item 5: the report directory is created, or refused, before anything runs ----------


@pytest.mark.parametrize(
    "command",
    [
        ["run", "targets.profile:buggy", "-n", "5"],
        ["stress", "targets.profile:buggy", "--duration", "5"],
        ["soak", "targets.profile:buggy", "--duration", "5"],
        ["soak", "targets.profile:buggy", "--duration", "5", "--workers", "2"],
    ],
)
def test_a_report_dir_that_cannot_be_created_is_refused_before_anything_runs(
    command: list[str],
) -> None:
    result = cli(*command, "--no-progress", "--report-dir", "/proc/nope")
    line = one_line(result)
    assert "Cannot write reports to --report-dir /proc/nope" in line
    assert result.stdout == ""  # nothing ran: not even the "Fuzzing …" line


def test_the_report_dir_exists_before_the_search(tmp_path: Path) -> None:
    from fuzzer.cli.commands import _check_report_dir

    _check_report_dir(str(tmp_path / "a" / "b"))
    assert (tmp_path / "a" / "b").is_dir()


# -- item 4: an interrupt is never lost ------------------------------------------------


def interrupted(count: int, seed: int, tmp_path: Path) -> list[dict[str, Any]]:
    """``count`` runs, each stopped by SIGINT or SIGTERM at a random moment of its first
    2.5 s (tests/fixtures/interrupter.py)."""
    import json
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    reports = str(tmp_path / "reports")
    result = subprocess.run(
        [sys.executable, "-m", "tests.fixtures.interrupter", str(count), str(seed), reports],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60 + count * 25,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert result.returncode == 0, result.stderr
    runs = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(runs) == count, result.stderr
    assert os.listdir(scratch) == []  # every run dropped its scratch database
    return runs


def honoured(runs: list[dict[str, Any]]) -> None:
    """Exit 130, or killed by the signal itself when it came before the command installed
    its handlers (the default action: nothing had started, and the scratch directory is
    checked empty); either way within 3 s of the signal."""
    import signal

    def stopped(run: dict[str, Any]) -> bool:
        return run["code"] in (130, -signal.Signals[run["signal"]].value)

    late = [r for r in runs if not stopped(r) or r["took"] is None or r["took"] > 3.0]
    assert not late, late  # a lost signal: exit 0 after the 15 s budget


def test_interrupts_at_random_moments_are_honoured_within_3_s(tmp_path: Path) -> None:
    honoured(interrupted(4, 21, tmp_path))


@pytest.mark.slow
def test_100_interrupts_at_random_moments_are_all_honoured_within_3_s(tmp_path: Path) -> None:
    honoured(interrupted(100, 2126, tmp_path))


def test_ctrl_c_landing_in_a_garbage_collector_callback_is_not_lost() -> None:
    """Where the Ctrl-C of issue 21 went: raised inside Hypothesis's gc callback, it was
    printed as "Exception ignored" and the run went on to its budget."""
    import gc
    import signal
    import sys

    from fuzzer.search import interrupt

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    ignored: list[BaseException | None] = []
    hook = sys.unraisablehook
    sent: list[int] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and not sent:
            sent.append(1)
            signal.raise_signal(signal.SIGINT)  # handled inside this callback

    interrupt.install()
    sys.unraisablehook = lambda unraisable: ignored.append(unraisable.exc_value)
    gc.callbacks.append(callback)
    try:
        gc.collect()
        assert sent and isinstance(ignored[0], KeyboardInterrupt)  # lost where it landed
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()  # but not for the search, which checks the flag
    finally:
        gc.callbacks.remove(callback)
        sys.unraisablehook = hook
        for number, handler in handlers.items():
            signal.signal(number, handler)
        interrupt.clear()


# -- item 1: a damaged or vanished store is an environment error ---------------------------

KEY = "targets.profile:buggy|sqlite|conflict"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"key": "k", "next_seed": 12, "findings": {"a": {"requ', "it is not JSON"),
        ("", "it is not JSON"),
        ("[1, 2, 3]", "it holds list, not an object"),
        ('{"next_seed": "abc"}', "'next_seed' is str"),
        ('{"findings": {"lost-update:x": "not an object"}}', "findings['lost-update:x'] is str"),
        ('{"done": [1, 2]}', "'done' holds something other than unit names"),
    ],
)
def test_a_damaged_campaign_file_is_kept_aside_and_stops_the_soak(
    tmp_path: Path, content: str, problem: str
) -> None:
    from fuzzer.errors import StoreError
    from fuzzer.modes.nightly.campaign import LocalCampaign

    path = Path(LocalCampaign(str(tmp_path), KEY).path)
    path.write_text(content)
    with pytest.raises(StoreError, match="is damaged") as raised:
        open_campaign(None, str(tmp_path), KEY)
    assert problem in str(raised.value)
    (aside,) = tmp_path.glob("*.json.damaged-*")
    assert aside.read_text() == content  # kept as it was, never overwritten
    assert str(aside) in str(raised.value)
    assert not path.exists()
    open_campaign(None, str(tmp_path), KEY).claim_seed()  # the next soak starts afresh


def test_a_soak_on_a_truncated_campaign_file_exits_2_with_one_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from fuzzer.modes.nightly.campaign import LocalCampaign

    root = Path(__file__).resolve().parent.parent
    campaign = LocalCampaign(str(tmp_path / ".fuzzer" / "soak"), KEY)
    os.makedirs(os.path.dirname(campaign.path))
    Path(campaign.path).write_text('{"key": "k", "next_seed": 12, "findings": {"a"')
    result = subprocess.run(
        [sys.executable, "-m", "fuzzer", "soak", "targets.profile:buggy", "--duration", "5"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert "is damaged: it is not JSON" in line and ".damaged-" in line


@pytest.fixture
def my_redis(redis_db: str) -> Any:
    """A client of a Redis database claimed for the test (tests/conftest.py)."""
    import redis

    client = redis.Redis.from_url(redis_db, socket_connect_timeout=2)
    yield client
    client.close()


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda c, k: c.set(k("seed"), "abc"), "seed"),
        (lambda c, k: c.hset(k("reported"), "lost-update:x", "{trunc"), "not JSON"),
        (lambda c, k: c.hset(k("findings"), "lost-update:x", "[1]"), "not an object"),
        (lambda c, k: c.set(k("done"), "a string"), "WRONGTYPE"),
        (lambda c, k: c.set(k("reported"), "a string"), "WRONGTYPE"),
    ],
)
def test_a_damaged_shared_store_is_kept_aside_and_stops_the_soak(
    my_redis: Any, redis_db: str, damage: Any, problem: str
) -> None:
    from fuzzer.errors import StoreError
    from fuzzer.modes.nightly.sharedstore import RedisCampaign

    campaign = RedisCampaign(redis_db, KEY)
    damage(my_redis, campaign._k)
    with pytest.raises(StoreError, match="is damaged") as raised:
        open_campaign(redis_db, "unused", KEY)
    assert problem in str(raised.value)
    assert my_redis.keys("*:damaged-*"), "the damaged key was not kept aside"
    open_campaign(redis_db, "unused", KEY).claim_seed()  # the next soak goes on


class PrivateRedis:
    """A Redis server of the test's own on a free loopback port, to stop at will (the
    shared one stays up for everybody else)."""

    def __init__(self, directory: Path) -> None:
        import shutil
        import socket
        import subprocess
        import time

        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed; .ci/run installs it")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), *options, "--dir", str(directory)],
            cwd=directory,
            stdout=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        import redis

        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=1).ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.fixture
def private_redis(tmp_path: Path) -> Any:
    server = PrivateRedis(tmp_path)
    yield server
    server.stop()


def test_a_shared_store_that_goes_away_is_a_store_error(private_redis: PrivateRedis) -> None:
    from fuzzer.errors import StoreError

    campaign = open_campaign(private_redis.url, "unused", KEY)
    campaign.claim_seed()
    private_redis.stop()
    with pytest.raises(StoreError, match="went away"):
        campaign.claim_seed()


# -- items 1 and 2: workers that die, a store that goes away, a parent killed -------------


def soak_process(tmp_path: Path, *args: str) -> Any:
    """``fuzzer soak targets.profile:fixed`` in ``tmp_path``, its scratch SQLite files under
    ``tmp_path/scratch``."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    (tmp_path / "scratch").mkdir(exist_ok=True)
    command = [sys.executable, "-m", "fuzzer", "soak", "targets.profile:fixed", "--no-progress"]
    return subprocess.Popen(
        [*command, *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root), "TMPDIR": str(tmp_path / "scratch")},
    )


def workers_of(pid: int, count: int, seconds: float = 90) -> list[int]:
    """The ``count`` worker processes of parent ``pid``, once they have all started."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        found = []
        for child in children:
            try:
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
            except OSError:
                continue
        if len(found) == count:
            return found
        time.sleep(0.3)
    raise AssertionError(f"{count} workers did not start")


def wait_for_manifest(tmp_path: Path, seconds: float = 90) -> None:
    """Until the run's manifest exists: every worker has set up its app."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not list(tmp_path.glob("reports/*/manifest.json")):
        time.sleep(0.3)


def gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return status == "Z"  # exited, waiting for a parent to collect it


@pytest.mark.slow
def test_workers_stop_and_drop_their_databases_when_their_parent_is_killed(
    tmp_path: Path,
) -> None:
    import os
    import signal
    import time

    parent = soak_process(tmp_path, "--duration", "120", "--workers", "2")
    try:
        workers = workers_of(parent.pid, 2)
        wait_for_manifest(tmp_path)
        time.sleep(1)
        assert len(os.listdir(tmp_path / "scratch")) >= 2  # each worker's scratch database
        os.kill(parent.pid, signal.SIGKILL)
        # the workers hold the parent's stdout: it ends when the last of them has exited
        parent.communicate(timeout=40)
        assert all(gone(w) for w in workers), "workers fuzz on under PID 1"
        assert os.listdir(tmp_path / "scratch") == []  # and dropped their databases
    finally:
        if parent.poll() is None:
            parent.kill()
        for worker in workers_of_leftovers(tmp_path):
            os.kill(worker, signal.SIGKILL)
        parent.communicate(timeout=10)


def workers_of_leftovers(tmp_path: Path) -> list[int]:
    """Processes still running in ``tmp_path`` (a failed test leaves none behind)."""
    import os

    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd") == str(tmp_path):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_a_shared_store_that_stops_mid_soak_exits_2_with_the_cause(
    tmp_path: Path, private_redis: PrivateRedis, workers: int
) -> None:
    """One worker or many, the same event gives the same code: before, two workers
    printed "No findings." and exited 0, one exited 3 with a traceback."""
    import time

    process = soak_process(
        tmp_path, "--duration", "60", "--workers", str(workers), "--shared", private_redis.url
    )
    try:
        wait_for_manifest(tmp_path)
        time.sleep(2)
        private_redis.stop()
        _, errors = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 2, errors
    assert "Traceback" not in errors
    lines = [line for line in errors.splitlines() if line.strip()]
    assert len(lines) == 1 and "went away" in lines[0], errors


@pytest.mark.slow
def test_a_soak_whose_workers_all_died_exits_2(tmp_path: Path) -> None:
    import os
    import signal

    process = soak_process(tmp_path, "--duration", "60", "--workers", "2")
    try:
        workers = workers_of(process.pid, 2)
        wait_for_manifest(tmp_path)
        for worker in workers:
            os.kill(worker, signal.SIGKILL)
        out, errors = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 2, out + errors
    assert "No findings." not in out
    assert "every worker died before the end of the soak" in errors
    assert "worker 1 (exit -9), worker 2 (exit -9)" in errors


# -- a tampered report: one line, exit 2, nothing sent --------------------------------------


@pytest.mark.parametrize("where", ["http://127.0.0.1:9/user/name", "//example.com/x", "user/name"])
def test_a_report_whose_request_path_is_not_a_path_is_refused(tmp_path: Path, where: str) -> None:
    import json

    from fuzzer.model import Gene, Request, Scenario
    from fuzzer.report.json import FORMAT

    request = Request("PUT /user/name", "PUT", where, json={"id": 1, "key": "x"})
    scenario = Scenario(requests=(request,), schedule=(Gene(),))
    report = tmp_path / "tampered.json"
    document = {"format": FORMAT, "target": "targets.profile:buggy", "scenario": scenario.to_json()}
    report.write_text(json.dumps(document))
    line = one_line(cli("replay", str(report)))
    assert f"holds a request whose path is {where!r}" in line and "nothing was sent" in line


def test_the_outcome_of_workers_one_cause_per_event() -> None:
    from fuzzer.errors import FuzzerError
    from fuzzer.modes.nightly.workers import _Parent

    def parent(summaries: dict[int, Any], died: dict[int, Any], errors: dict[int, str]) -> Any:
        made = _Parent("t:x", "x", "sqlite://", 2, 5.0, "reports", lambda *a, **k: None)
        made.summaries, made.died, made.errors = summaries, died, errors
        return made

    gone = "The shared store redis://127.0.0.1:6379/5 went away (refused)"
    with pytest.raises(FuzzerError) as raised:  # said once, not once per worker
        parent({0: {}, 1: {}}, {}, {0: gone, 1: gone}).check_outcome()
    assert str(raised.value) == gone
    with pytest.raises(FuzzerError, match=r"worker 1 \(exit -9\), worker 2 \(exit -9\)"):
        parent({}, {0: -9, 1: -9}, {}).check_outcome()
    parent({0: {"rounds": []}}, {1: -9}, {}).check_outcome()  # one reached the end


def test_a_worker_that_stopped_on_an_error_is_named_in_the_summary() -> None:
    import contextlib
    import io

    from fuzzer.modes.nightly.soak import SoakReport
    from fuzzer.modes.nightly.workers import _merge
    from fuzzer.report import reporting

    class Store:
        where = "a file"

    report = _merge(
        SoakReport, "t:x", {}, 5.0, 5.0, {0: {"rounds": []}, 1: {}}, {}, {1: "boom"}, [], None,
        Store(), 2,
    )  # fmt: skip
    assert [w["exit"] for w in report.workers] == ["finished", "error"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        reporting.soak_summary(report)
    assert "worker 2: 0 examples in 0 rounds, 0 finding(s) reported first, stopped on an " in (
        out.getvalue()
    )


def test_a_command_run_in_process_puts_the_signal_handlers_back(tmp_path: Path) -> None:
    import signal

    from fuzzer.search import interrupt

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    one_line(cli("replay", str(tmp_path / "none.json")))
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert not interrupt.requested()
