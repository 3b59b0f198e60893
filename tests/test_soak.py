"""The soak, as CI runs it: killed midway it loses nothing, the next soak resumes from its
example database, it writes JUnit XML, the HTML report and the JSON, and it reports
memory and database connections that it counts for real."""

from __future__ import annotations

import glob
import io
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import create_engine

from fuzzer.execute.instrument import load_target
from fuzzer.kinds import KINDS
from fuzzer.modes.nightly.vitals import Trend, measure
from fuzzer.modes.session import Session
from fuzzer.report import json as report_json
from fuzzer.report.reporting import SearchProgress
from fuzzer.search.events import Example, RoundStarted, Start

ROOT = Path(__file__).resolve().parent.parent


def soak(target: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "fuzzer", "soak", target, "--no-progress", *args]


def environment(tmp_path: Path) -> dict[str, str]:
    """Scratch SQLite files under ``tmp_path``: a killed soak cannot drop them."""
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(scratch)}


def wait_for_finding(tmp_path: Path, seconds: float) -> list[str]:
    """The JSON files a running soak's manifest lists, once it lists one shrunk (each is
    first written unshrunk, the moment it is seen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for manifest in glob.glob(str(tmp_path / "reports/profile-soak-*/manifest.json")):
            with open(manifest, encoding="utf-8") as handle:
                files = [f["file"] for f in json.load(handle)["findings"] if f["shrunk"]]
            if files:
                return [os.path.join(os.path.dirname(manifest), f) for f in files]
        time.sleep(0.2)
    return []


@pytest.mark.slow
def test_a_killed_soak_keeps_its_findings_and_the_next_one_resumes(tmp_path: Path) -> None:
    with subprocess.Popen(
        soak("targets.profile:buggy", "--duration", "90", "--seed", "11"),
        cwd=tmp_path,
        env=environment(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as killed:
        try:
            found = wait_for_finding(tmp_path, 60)
            assert found, "no finding was written within 60 s"
        finally:
            killed.send_signal(signal.SIGKILL)  # no chance to clean up: the harshest stop
            killed.wait(10)
    assert killed.returncode == -signal.SIGKILL
    first = Path(found[0]).parent
    document = report_json.load(found[0])  # complete and readable
    assert document["kind"] == "lost-update" and document["seed"] == 11
    manifest = json.loads((first / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["summary"]["state"] == "running"
    assert [f["file"] for f in manifest["findings"]] == ["01-lost-update.json"]
    assert (first / "test_01_lost_update.py").exists()
    assert not list(first.glob(".tmp-*"))

    resumed = subprocess.run(
        soak("targets.profile:buggy", "--duration", "3"),
        cwd=tmp_path,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    out = resumed.stdout
    assert "replaying the known failures: what earlier soaks reported" in out
    (second,) = [
        Path(p) for p in glob.glob(str(tmp_path / "reports/profile-soak-*")) if Path(p) != first
    ]
    summary = json.loads((second / "manifest.json").read_text(encoding="utf-8"))["summary"]
    assert summary["state"] == "finished"
    replay, *searches = summary["rounds"]
    assert replay["seed"] is None and replay["examples"] >= 1
    assert replay["findings"] == 1  # found again by replaying, before any new search
    assert searches and searches[0]["seed"] >= 12  # the seed rotation went on
    assert sorted(os.listdir(second)) == [
        "01-lost-update.json",
        "junit.xml",
        "manifest.json",
        "report.html",
        "test_01_lost_update.py",
    ]
    assert "= Lost update =" in out and "Reproduce with:" in out
    vitals = summary["vitals"]
    for moment in ("setup", "start", "end"):
        assert vitals[moment]["memory_mib"] > 10
        assert isinstance(vitals[moment]["connections"], int)
    assert f"memory: {vitals['start']['memory_mib']:.1f} MiB at start" in out
    trend = vitals["memory"]
    assert trend["verdict"] in ("flat", "growing", "too short to tell")
    assert "memory over the second half of the soak: " in out or "memory trend: " in out
    assert (
        f"database connections: {vitals['start']['connections']} at start, "
        f"{vitals['end']['connections']} at end" in out
    )


@pytest.mark.slow
def test_a_clean_soak_exits_0_and_still_writes_junit_and_html(tmp_path: Path) -> None:
    result = subprocess.run(
        soak("targets.profile:fixed", "--duration", "2", "--seed", "5"),
        cwd=tmp_path,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings." in result.stdout
    assert "endpoint pairs explored at depth ≤ 2 at conflict points" in result.stdout
    (directory,) = glob.glob(str(tmp_path / "reports/profile-fixed-soak-*"))
    root = ET.parse(os.path.join(directory, "junit.xml")).getroot()
    assert root.get("failures") == "0" and root.get("tests") == str(len(KINDS))  # one a kind
    html = Path(directory, "report.html").read_text(encoding="utf-8")
    assert "No findings" in html


@pytest.mark.slow
def test_a_terminated_soak_stops_cleanly_and_drops_its_scratch_database(tmp_path: Path) -> None:
    with subprocess.Popen(
        soak("targets.profile:fixed", "--duration", "60"),
        cwd=tmp_path,
        env=environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("searching with seed"):
                break
        assert os.listdir(tmp_path / "scratch"), "the scratch database is not where expected"
        process.send_signal(signal.SIGTERM)  # what a CI job's timeout sends
        _, errors = process.communicate(timeout=30)
    assert process.returncode == 130, errors
    assert errors.strip().splitlines() == [
        "error: interrupted; findings written so far are kept in their reports"
    ]
    assert os.listdir(tmp_path / "scratch") == []


def test_connections_are_counted_for_real() -> None:
    target = load_target("targets.profile:buggy")

    def work(session: Session) -> tuple[int | None, int | None, int | None]:
        url = session.databases.factory_argument()
        assert isinstance(url, str)
        before = measure(session.databases).connections
        engine = create_engine(url)
        with engine.connect():
            during = measure(session.databases).connections
        engine.dispose()
        for _ in range(10):  # churn: opened and closed connections must not add up
            engine = create_engine(url)
            with engine.connect():
                pass
            engine.dispose()
        return before, during, measure(session.databases).connections

    before, during, after = Session(target).run(work)
    assert isinstance(before, int) and before >= 1
    assert during == before + 1
    assert after is not None and before <= after <= during


def test_progress_shows_examples_rate_findings_and_time_left() -> None:
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=120, color_system=None)
    progress = SearchProgress(delay=0, out=terminal)
    database = {"server_version": "SQLite 3.40.1", "isolation_level": "SERIALIZABLE"}
    progress(Start(target="t:x", database=database, max_examples=None, time_budget=60))
    progress(RoundStarted(seed=7, left=60))
    for n in range(1, 6):
        progress(Example(examples=n, findings=1))
    progress.stop()
    shown = screen.getvalue()
    assert "seed 7" in shown and "5 examples" in shown and "ex/s" in shown
    assert "1 finding(s)" in shown
    assert "60 s left" in shown or "59 s left" in shown

    log = io.StringIO()
    plain = Console(file=log, force_terminal=False, width=120)
    beats = SearchProgress(heartbeat=0, out=plain)  # a CI log: lines instead of a bar
    beats(Start(target="t:x", database=database, max_examples=200, time_budget=None))
    beats(Example(examples=3, findings=0))
    assert "searching: 3/200 examples," in log.getvalue()
    assert "ex/s, 0 finding(s)" in log.getvalue()


def test_a_growing_allocation_is_reported_as_growth_and_a_warm_up_is_not() -> None:
    """Issue 14, item 8: memory grew 83 → 117 MiB over a soak's first ten minutes, then
    levelled off; start and end alone called that growth, or hid a leak that began late.
    The trend judges the second half, with the process's real resident memory."""
    held: list[bytearray] = []
    leak = Trend(interval=0)
    for step in range(20):  # a leak: 2 MiB more at every sample, to the end
        held.append(bytearray(b"\x01") * (2 * 2**20))
        leak.sample(float(step))
    assert leak.verdict() == "growing"
    growth = leak.growth()
    assert growth is not None and growth >= 10

    warm = Trend(interval=0)
    for step in range(30):  # a warm-up: 30 MiB over the first third, then level
        if step < 10:
            held.append(bytearray(b"\x01") * (3 * 2**20))
        warm.sample(float(step))
    assert warm.verdict() == "flat", warm.samples
    held.clear()


def test_a_trend_keeps_its_shape_when_it_drops_samples() -> None:
    trend = Trend(interval=0)
    for step in range(1000):  # 1000 s of a level memory, then a leak in the last 200 s
        trend.sample(float(step), 100.0 + max(0, step - 800) * 0.1)
    assert len(trend.samples) <= 256 and trend.samples[-1][0] == 999.0
    assert trend.verdict() == "growing"
    flat = Trend(interval=0)
    for step in range(1000):
        flat.sample(float(step), 100.0 + (step % 7) * 0.3)  # noise, no growth
    assert flat.verdict() == "flat"
    assert Trend().verdict() == "too short to tell"


@pytest.mark.parametrize(
    "delay", [0.0, 3.0, *(pytest.param(d, marks=pytest.mark.slow) for d in (0.5, 1.5, 4.5))]
)
def test_a_terminated_single_soak_writes_junit_html_and_an_interrupted_manifest(
    tmp_path: Path, delay: float
) -> None:
    """As the workers' parent does (issue 21 item 5): before, the manifest still said
    "running" and listed junit.xml and report.html, which were never written (the
    SIGTERM raised in the main thread ended the process under the soak's thread)."""
    with subprocess.Popen(
        soak("targets.profile:buggy", "--duration", "60"),
        cwd=tmp_path,
        env=environment(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not glob.glob(
            str(tmp_path / "reports/profile-soak-*/manifest.json")
        ):
            time.sleep(0.05)
        time.sleep(delay)  # as it starts searching; as it shrinks or writes its finding
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    assert process.returncode == 130, errors
    (directory,) = glob.glob(str(tmp_path / "reports/profile-soak-*"))
    ET.parse(os.path.join(directory, "junit.xml"))
    assert "<html" in Path(directory, "report.html").read_text(encoding="utf-8")
    manifest = json.loads(Path(directory, "manifest.json").read_text(encoding="utf-8"))
    assert manifest["summary"]["state"] == "interrupted"
