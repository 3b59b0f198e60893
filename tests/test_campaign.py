"""The campaign's store (fuzzer/modes/nightly/campaign.py) and soaks that share one: several
workers on this machine, and soaks in several directories joined through Redis."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fuzzer.errors import FuzzerError
from fuzzer.modes.nightly.campaign import Campaign, LocalCampaign
from fuzzer.modes.nightly.sharedstore import RedisCampaign, open_campaign

KEY = "targets.profile:buggy|sqlite|conflict"


@pytest.fixture(params=["local", "redis"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """Where a campaign's store lives: a directory, or a Redis database claimed for the
    test (tests/conftest.py ``redis_db``: never one in use, never flushed blindly)."""
    if request.param == "local":
        return "local", str(tmp_path)
    return "redis", request.getfixturevalue("redis_db")


@pytest.fixture
def store(place: tuple[str, str]) -> Campaign:
    kind, where = place
    return LocalCampaign(where, KEY) if kind == "local" else RedisCampaign(where, KEY)


def _claim_seeds(kind: str, where: str, count: int, out: multiprocessing.Queue) -> None:
    key = "k|sqlite|conflict"
    store = LocalCampaign(where, key) if kind == "local" else RedisCampaign(where, key)
    out.put([store.claim_seed() for _ in range(count)])


@pytest.mark.slow
def test_every_seed_is_handed_out_once_across_processes(place: tuple[str, str]) -> None:
    kind, where = place
    store_type = LocalCampaign if kind == "local" else RedisCampaign
    store_type(where, "k|sqlite|conflict").start_rotation(1000)
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = context.Queue()
    workers = [context.Process(target=_claim_seeds, args=(kind, where, 25, out)) for _ in range(4)]
    for worker in workers:
        worker.start()
    seeds = [seed for _ in workers for seed in out.get(timeout=60)]
    for worker in workers:
        worker.join(timeout=30)
    assert sorted(seeds) == list(range(1000, 1100))


def test_a_finding_is_claimed_by_the_first_worker_only(store: Campaign) -> None:
    scenario = {"requests": []}
    assert store.report("lost-update:a", scenario, {"by": "w0", "kind": "lost-update"})
    assert not store.report("lost-update:a", scenario, {"by": "w1", "kind": "lost-update"})
    assert store.reported()["lost-update:a"]["by"] == "w0"
    store.forget("lost-update:a")  # it no longer reproduced: it may be reported anew
    assert store.report("lost-update:a", scenario, {"by": "w1", "kind": "lost-update"})


def test_a_dead_workers_unit_is_taken_up_when_its_lease_runs_out(store: Campaign) -> None:
    assert store.claim("opening:1", "w0", lease=0.3)
    assert not store.claim("opening:1", "w1", lease=0.3)  # w0 holds it
    time.sleep(0.5)  # w0 died: nobody renewed the lease
    assert store.claim("opening:1", "w1", lease=0.3)
    store.finish("opening:1")
    assert not store.claim("opening:1", "w2", lease=0.3)  # done for the whole campaign
    assert store.done() == {"opening:1"}
    store.contribute("w1", examples=5, rounds=1)
    store.contribute("w1", examples=2)
    assert store.contributions()["w1"] == {"examples": 7, "rounds": 1}


def test_a_shared_store_that_is_not_redis_or_not_up_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FuzzerError, match="not a Redis URL"):
        open_campaign("postgres://127.0.0.1/x", str(tmp_path), "k")
    with pytest.raises(FuzzerError, match="cannot reach the shared store"):
        open_campaign("redis://127.0.0.1:1/0", str(tmp_path), "k")


def _soak(cwd: Path, *args: str, duration: int = 12) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "fuzzer", "soak", "targets.profile:buggy"]
    command += ["--duration", str(duration), "--no-progress", *args]
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=240, env=env, check=False
    )


def _finding_files(cwd: Path) -> list[Path]:
    return sorted(p for p in (cwd / "reports").glob("*/*.json") if p.name != "manifest.json")


@pytest.mark.slow
def test_two_workers_split_the_campaign_and_report_a_finding_once(tmp_path: Path) -> None:
    done = _soak(tmp_path, "--workers", "2", "--seed", "7")
    assert done.returncode == 1, done.stdout + done.stderr
    files = _finding_files(tmp_path)
    kinds = [json.loads(p.read_text())["kind"] for p in files]
    assert kinds.count("lost-update") == 1, kinds  # one worker reports it, once
    manifest = json.loads(next((tmp_path / "reports").glob("*/manifest.json")).read_text())
    workers = manifest["summary"]["workers"]
    assert [w["worker"] for w in workers] == [0, 1]
    assert all(w["examples"] > 0 for w in workers), workers  # both did work
    seeds = [r["seed"] for r in manifest["summary"]["rounds"] if r["seed"] is not None]
    assert len(seeds) == len(set(seeds)), seeds  # no seed searched twice
    assert "worker 2:" in done.stdout


@pytest.mark.slow
def test_two_soaks_sharing_redis_replay_the_first_ones_finding_and_add_no_duplicate(
    tmp_path: Path, redis_db: str
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    one = _soak(first, "--shared", redis_db)
    assert one.returncode == 1, one.stdout + one.stderr
    two = _soak(second, "--shared", redis_db, duration=6)
    assert two.returncode == 1, two.stdout + two.stderr
    assert "1 known failure(s) found again first" in two.stdout
    import redis

    client = redis.Redis.from_url(redis_db)
    reported = {
        k.decode(): json.loads(v)
        for k, v in client.hgetall(next(k for k in client.keys("fuzzer:*:reported"))).items()
    }
    assert [m["kind"] for m in reported.values()] == ["lost-update"]  # no duplicate
    merged = _soak(tmp_path, "--shared", redis_db, "--known-only", duration=60)
    assert merged.returncode == 1, merged.stdout + merged.stderr  # the campaign's findings
    assert "1 known failure(s) found again first" in merged.stdout
    assert (tmp_path / "reports").is_dir() and _finding_files(tmp_path)
    # the store holds no database URL (no password can reach it)
    for key in client.keys("*"):
        kind = client.type(key).decode()
        values = {
            "string": lambda k: [client.get(k)],
            "hash": lambda k: list(client.hgetall(k).values()),
            "set": lambda k: list(client.smembers(k)),
        }.get(kind, lambda k: [])(key)
        assert not any(b"://" in (v or b"") for v in values), key


@pytest.mark.slow
def test_a_killed_worker_is_reported_and_the_others_go_on(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "fuzzer", "soak", "targets.profile:buggy", "--duration"]
    command += ["15", "--no-progress", "--workers", "2", "--lease", "1"]
    parent = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while time.monotonic() < deadline and len(workers) < 2:
            time.sleep(0.5)
            children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
            workers = [
                int(pid)
                for pid in children
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
            ]
        assert len(workers) == 2, workers
        time.sleep(3)  # both are working
        os.kill(max(workers), 9)  # the second worker dies as under `kill -9`
        out, _ = parent.communicate(timeout=180)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 1, out  # the live worker still found the lost update
    assert "died (exit -9)" in out
    assert len(_finding_files(tmp_path)) == 1


@pytest.mark.slow
def test_sigterm_stops_every_worker_and_keeps_the_reports(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "fuzzer", "soak", "targets.profile:fixed", "--duration"]
    command += ["120", "--no-progress", "--workers", "2"]
    parent = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not list(tmp_path.glob("reports/*/manifest.json")):
            time.sleep(0.5)  # the parent writes the manifest once a worker has set up
        time.sleep(2)
        parent.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        out, _ = parent.communicate(timeout=60)
        took = time.monotonic() - stopped
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 130, out
    assert took < 60, f"it ran on for {took:.0f} s of its --duration"
    (directory,) = tmp_path.glob("reports/*/")
    assert (directory / "junit.xml").exists() and (directory / "report.html").exists()
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["summary"]["state"] == "interrupted"
