"""``--format json`` and ``--summary-file`` (issue 22, item 5): one versioned JSON document
per command, on stdout alone or in a file, on success, findings and errors alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fuzzer.cli.commands import main
from fuzzer.report.summary import SCHEMA, VERSION


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FUZZER_DB", raising=False)
    return tmp_path


def test_a_run_and_its_replay_as_json(here: Path) -> None:
    ran = cli(
        "run",
        "targets.profile:buggy",
        "-n",
        "8",
        "--seed",
        "4",
        "--format",
        "json",
        "--summary-file",
        "summary.json",
    )
    assert ran.exit_code == 1, ran.stderr
    document = json.loads(ran.stdout)  # stdout holds the JSON and nothing else
    assert json.loads((here / "summary.json").read_text(encoding="utf-8")) == document
    assert (document["schema"], document["version"]) == (SCHEMA, VERSION)
    assert (document["command"], document["target"]) == ("run", "targets.profile:buggy")
    assert document["exit_code"] == 1 and document["seconds"] > 0
    assert document["database"]["dialect"] == "sqlite"
    (finding,) = document["findings"]
    assert finding["kind"] == "lost-update" and finding["requests"] == 2
    assert finding["endpoints"] == ["PUT /user/age", "PUT /user/name"]
    assert finding["fails_run"] is True and Path(finding["json"]).is_file()
    assert document["search"]["examples"] == 8 and document["search"]["seed"] == 4
    assert sum(document["judged"].values()) == 8  # every example is counted once
    assert "endpoint pairs explored" in document["coverage"]["statement"]
    assert "Fuzzing targets.profile:buggy" in ran.stderr  # progress lines go to stderr

    replayed = cli("replay", finding["json"], "--format", "json")
    assert replayed.exit_code == 1, replayed.stderr
    replay = json.loads(replayed.stdout)
    assert replay["command"] == "replay" and replay["target"] == "targets.profile:buggy"
    assert replay["replay"]["status"] == "reproduced" and replay["exit_code"] == 1
    assert replay["replay"]["fingerprint"] == finding["fingerprint"]


def test_the_text_stays_and_the_file_says_no_finding(here: Path) -> None:
    ran = cli("run", "targets.profile:fixed", "-n", "10", "--seed", "1", "--summary-file", "s.json")
    assert ran.exit_code == 0, ran.stderr
    assert "No findings" in ran.stdout or "no finding" in ran.stdout.lower()
    document = json.loads((here / "s.json").read_text(encoding="utf-8"))
    assert document["findings"] == [] and document["exit_code"] == 0
    assert document["directory"] is None  # nothing was written


def test_an_error_is_a_summary_too(here: Path) -> None:
    ran = cli("run", "nope:target", "--format", "json", "--summary-file", "s.json")
    assert ran.exit_code == 2
    assert ran.stderr.strip().startswith("error: Cannot import module 'nope'")
    document = json.loads(ran.stdout)
    assert document["exit_code"] == 2 and document["error"].startswith("Cannot import module")
    assert json.loads((here / "s.json").read_text(encoding="utf-8")) == document


def test_stress_as_json_has_the_runs_schema(tmp_path: Path) -> None:
    ran = cli(
        "stress",
        "targets.profile:fixed",
        "--max-batches",
        "6",
        "--seed",
        "2",
        "--db",
        "sqlite",
        "--report-dir",
        str(tmp_path / "reports"),
        "--format",
        "json",
        "--summary-file",
        str(tmp_path / "s.json"),
    )
    assert ran.exit_code in (0, 2), ran.stderr  # 2: every batch unjudged (a loaded machine)
    document = json.loads(ran.stdout)  # stdout holds the JSON and nothing else
    assert json.loads((tmp_path / "s.json").read_text(encoding="utf-8")) == document
    assert (document["schema"], document["version"]) == (SCHEMA, VERSION)
    assert (document["command"], document["target"]) == ("stress", "targets.profile:fixed")
    assert document["exit_code"] == ran.exit_code and document["findings"] == []
    assert document["search"]["examples"] == 6 and document["search"]["seed"] == 2
    assert sum(document["judged"].values()) == 6
    assert document["database"]["dialect"] == "sqlite"
