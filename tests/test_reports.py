"""What a person gets from a run: the finding's JSON, the text, JUnit XML, the HTML page
(looked at in a real headless Chromium), and a pytest regression test that runs as is."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fuzzer import api
from fuzzer.errors import InvalidReport
from fuzzer.findings import KINDS, label
from fuzzer.report import json as report_json

from .conftest import Cli

ROOT = Path(__file__).resolve().parent.parent
# the module's tests share one run (the fixture below): they run on one xdist worker
pytestmark = pytest.mark.xdist_group("reports")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working directory of the run: its report paths are relative to it."""
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="module")
def run(home: Path) -> Iterator[api.RunReport]:
    """One search of the default target, writing its reports under ``home`` (its working
    directory while it runs: the paths it reports are relative to it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(home)
        yield api.run(
            "targets.profile:buggy",
            max_examples=60,
            seed=3,
            example_db=None,
            report_dir="reports",  # relative: under the working directory
        )


@pytest.fixture
def workdir(run: api.RunReport, home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(home)
    return home


def test_every_file_of_a_run_is_written_with_relative_paths(
    run: api.RunReport, workdir: Path
) -> None:
    assert run.directory is not None and not os.path.isabs(run.directory)
    assert run.directory.startswith("reports" + os.sep + "profile-")
    names = sorted(os.listdir(run.directory))
    assert names == [
        "01-lost-update.json",
        "junit.xml",
        "manifest.json",
        "report.html",
        "test_01_lost_update.py",
    ]
    (entry,) = run.written
    assert entry.json == os.path.join(run.directory, "01-lost-update.json")
    assert not any(name.startswith(".tmp-") for name in names)  # atomic writes left nothing


def test_the_finding_json_holds_everything_a_replay_and_a_reader_need(
    run: api.RunReport, workdir: Path
) -> None:
    document = report_json.load(run.written[0].json)
    assert document["format"] == report_json.FORMAT == 1
    assert document["tool"] == {"name": "flask-race-fuzzer", "version": "0.1.0"}
    assert document["target"] == "targets.profile:buggy"
    database = document["database"]
    assert database["dialect"] == "sqlite"
    assert database["server_version"].startswith("SQLite 3.")
    assert database["isolation_level"] == "SERIALIZABLE"
    assert database["settings"] == {"journal_mode": "wal"}
    assert database["url"] == "sqlite://"
    scenario = document["scenario"]
    assert sorted(r["endpoint"] for r in scenario["requests"]) == [
        "PUT /user/age",
        "PUT /user/name",
    ]
    assert len(scenario["schedule"]) == 2 and {"priority", "yields"} <= set(scenario["schedule"][0])
    assert document["trace"] and document["trace"][0]["kind"] == "start"
    assert document["verdict"]["status"] == "violation"
    assert document["verdict"]["differences"][0]["column"] in ("age", "name")
    explanation = document["explanation"]
    assert explanation["conflicts"] and explanation["text"].endswith("a contradiction!")
    assert document["fingerprint"].startswith("lost-update:")
    assert document["seed"] == 3
    assert document["tables"] == {"users": ["id", "name", "age"]}
    path = run.written[0].json
    assert document["reproduce"]["replay"] == f"fuzzer replay {path}"
    assert document["reproduce"]["pytest"] == f"pytest {run.written[0].test}"
    assert document["reproduce"]["curl"].startswith("curl -sS -X PUT http://127.0.0.1:5000/user/")
    manifest = json.loads(Path(run.directory or "", "manifest.json").read_text())
    assert manifest["findings"][0]["file"] == "01-lost-update.json"
    assert manifest["findings"][0]["test"] == "test_01_lost_update.py"
    assert manifest["summary"]["seed"] == 3


def test_the_text_report_shows_the_schedule_and_how_to_reproduce(run: api.RunReport) -> None:
    text = run.text()
    assert text.startswith("= Lost update =   lost-update · PUT /user/age + PUT /user/name")
    # "[priority …]" once vanished as rich markup
    assert re.search(r"R1 .*→ 200 .*\[priority \d+, (yields after step [\d, ]+|no yields)\]", text)
    assert "Reproduce with:\n  fuzzer replay reports/profile-" in text
    assert "  pytest reports/profile-" in text and "test_01_lost_update.py" in text
    assert "\n  curl -sS -X PUT" in text
    assert not any(line != line.rstrip() for line in text.splitlines())  # no trailing blanks


def test_junit_has_one_case_per_kind_and_the_failure_carries_the_report(
    run: api.RunReport, workdir: Path
) -> None:
    root = ET.parse(Path(run.directory or "", "junit.xml")).getroot()
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "targets.profile:buggy"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == list(KINDS)
    assert suite.get("tests") == str(len(KINDS)) and suite.get("failures") == "1"
    failed = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["lost-update"]
    failure = failed[0].find("failure")
    assert failure is not None
    assert failure.get("message") == "Lost update: PUT /user/age + PUT /user/name"
    assert (failure.text or "").startswith("= Lost update =")
    assert "Reproduce with:" in (failure.text or "")
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["seed"] == "3" and properties["database"].startswith("SQLite 3.")


@pytest.mark.slow
def test_the_generated_regression_test_fails_on_the_bug_and_passes_on_the_fixed_twin(
    run: api.RunReport, workdir: Path
) -> None:
    generated = Path(run.written[0].test)
    source = generated.read_text(encoding="utf-8")
    assert "TARGET = 'targets.profile:buggy'" in source
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(generated)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    buggy = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=env)
    assert buggy.returncode == 1, buggy.stdout + buggy.stderr
    assert "1 failed" in buggy.stdout
    assert "the pinned schedule still fails" in buggy.stdout
    assert "= Lost update =" in buggy.stdout

    twin = generated.with_name("test_fixed_twin.py")
    twin.write_text(source.replace("targets.profile:buggy", "targets.profile:fixed"), "utf-8")
    command[-1] = str(twin)
    fixed = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=env)
    twin.unlink()
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "1 passed" in fixed.stdout


def test_replay_on_the_command_line_says_reproduced_n_of_n(
    cli: Cli, run: api.RunReport, workdir: Path
) -> None:
    result = cli("replay", run.written[0].json, "--times", "3", cwd=workdir)
    assert result.returncode == 1, result.stderr
    assert "reproduced 3/3: lost-update on SQLite 3." in result.stdout


def test_replay_of_a_fixed_bug_says_fixed_and_exits_0(
    cli: Cli, run: api.RunReport, workdir: Path
) -> None:
    document = json.loads(Path(run.written[0].json).read_text(encoding="utf-8"))
    document["target"] = "targets.profile:fixed"  # the bug is fixed: same scenario, new code
    path = workdir / "fixed.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    result = cli("replay", str(path), "--times", "2", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "fixed: lost-update did not reproduce in 2 replay(s) on SQLite 3." in result.stdout


@pytest.mark.parametrize(
    ("status", "reproduced", "code"), [("reproduced", 4, 1), ("fixed", 0, 0), ("flaky", 3, 4)]
)
def test_replay_status_and_exit_codes(status: str, reproduced: int, code: int) -> None:
    result = api.ReplayResult("r.json", "fp", "lost-update", 4, reproduced, True, {}, None)
    assert (result.status, result.exit_code) == (status, code)


def test_bad_report_files_are_one_clear_line(cli: Cli, run: api.RunReport, workdir: Path) -> None:
    corrupt = workdir / "corrupt.json"
    corrupt.write_text('{"format": 1, "target": ', encoding="utf-8")
    other = json.loads(Path(run.written[0].json).read_text(encoding="utf-8"))
    other["format"] = 2
    newer = workdir / "newer.json"
    newer.write_text(json.dumps(other), encoding="utf-8")
    cases = {
        str(corrupt): "Cannot read report corrupt.json: Expecting value",
        str(newer): "has report format 2; this fuzzer reads format 1",
        os.path.join(run.directory or "", "manifest.json"): "is not a finding report",
    }
    for path, expected in cases.items():
        with pytest.raises(InvalidReport, match=re.escape(expected.split(": ")[0])):
            report_json.load(os.path.relpath(path))
    result = cli("replay", "newer.json", cwd=workdir)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "has report format 2; this fuzzer reads format 1" in lines[0]


def test_replay_refuses_an_isolation_level_sqlite_cannot_set(
    cli: Cli, run: api.RunReport, workdir: Path
) -> None:
    result = cli("replay", run.written[0].json, "--isolation", "read-committed", cwd=workdir)
    assert result.returncode == 2
    assert "--isolation read-committed is not supported on sqlite" in result.stderr


# -- the HTML report, in a real browser -----------------------------------------------------

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no headless Chromium: install Debian's chromium package (.ci/run does)")


class _Elements(HTMLParser):
    """Every element with its classes and data attributes, as the browser's DOM has them."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, set[str], dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.elements.append((tag, set(values.get("class", "").split()), values))

    def having(self, *classes: str) -> list[dict[str, str]]:
        return [attrs for _, names, attrs in self.elements if set(classes) <= names]


def browse(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_html_report_shows_swimlanes_in_headless_chromium(
    run: api.RunReport, workdir: Path, tmp_path: Path
) -> None:
    page = (workdir / (run.directory or "") / "report.html").resolve()
    source = page.read_text(encoding="utf-8")
    assert "<script" not in source and not re.search(r"(src|href)=\"(https?:)?//", source)

    dom = browse(page, tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr
    parsed = _Elements()
    parsed.feed(dom.stdout)
    finding = run.findings[0]
    (section,) = parsed.having("finding")
    assert section["data-kind"] == "lost-update"
    lanes = parsed.having("lane")
    requests = len(finding.scenario.requests)
    assert [lane["data-request"] for lane in lanes] == [str(i) for i in range(requests)]
    steps = parsed.having("step")
    assert len(steps) == len(finding.execution.trace)  # one box per step
    assert [s["data-request"] for s in steps] == [str(s.request) for s in finding.execution.trace]
    conflicts = [int(s["data-position"]) - 1 for s in parsed.having("step", "conflict")]
    assert conflicts == list(finding.explanation.conflicts)
    commits = parsed.having("step", "commit")
    assert len(commits) == sum(1 for s in finding.execution.trace if s.kind == "commit")
    assert parsed.having("switch")  # the context switch is drawn
    assert finding.verdict is not None
    assert finding.verdict.differences[0].describe(label) in dom.stdout
    assert "a contradiction!" in dom.stdout

    shot = tmp_path / "report.png"
    taken = browse(page, tmp_path, "--window-size=1280,1700", f"--screenshot={shot}", page.as_uri())
    assert taken.returncode == 0, taken.stderr
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1280, 1700)
    assert len(png) > 50_000  # a rendered page, not a blank one
    keep = os.environ.get("FUZZER_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)
