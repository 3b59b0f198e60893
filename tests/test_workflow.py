"""The nightly GitHub Actions workflow: scheduled, MariaDB up, the soak run, reports kept."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"


def load() -> dict[Any, Any]:
    document = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def test_the_nightly_workflow_is_scheduled_by_cron() -> None:
    document = load()
    triggers: dict[str, Any] = document.get("on", document.get(True))  # YAML 1.1: `on` is true
    (schedule,) = triggers["schedule"]
    fields = schedule["cron"].split()
    assert len(fields) == 5 and fields[2:] == ["*", "*", "*"]  # every day
    assert "workflow_dispatch" in triggers


def test_it_starts_mariadb_runs_the_soak_and_uploads_the_reports() -> None:
    job = load()["jobs"]["soak"]
    assert job["timeout-minutes"] <= 90
    mariadb = job["services"]["mariadb"]
    assert mariadb["image"].startswith("mariadb:10.11")
    assert "3306:3306" in mariadb["ports"]
    assert "health-cmd" in mariadb["options"]
    steps = job["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/checkout@") for u in uses)
    assert any(u.startswith("actions/setup-python@") for u in uses)
    setup = next(s for s in steps if s.get("run", "").strip() == "make setup")
    soak = next(s for s in steps if "fuzzer soak" in s.get("run", ""))
    assert steps.index(setup) < steps.index(soak)
    assert (
        ".venv/bin/fuzzer soak ${{ matrix.target }} --db mariadb --duration $DURATION "
        "--workers 2 $shared" in soak["run"]
    )
    # the exit code is checked against what each target must give
    expected = {entry["target"]: entry["expect"] for entry in job["strategy"]["matrix"]["include"]}
    assert expected == {"targets.profile:buggy": 1, "targets.profile:fixed": 0}
    assert 'test "$code" -eq "${{ matrix.expect }}"' in soak["run"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"  # a red night keeps its reports too
    assert upload["with"]["path"] == "reports/"
    assert steps.index(upload) > steps.index(soak)


def test_make_soak_passes_duration_target_db_and_seed_through() -> None:
    result = subprocess.run(
        ["make", "-n", "soak", "TARGET=pkg.mod:t", "DB=mariadb", "DURATION=7", "SEED=3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "fuzzer soak pkg.mod:t --db mariadb --duration 7 --seed 3" in result.stdout


def test_several_machines_join_one_campaign_and_the_last_job_merges_it() -> None:
    document = load()
    assert document["env"]["FUZZER_SHARED"] == "${{ secrets.FUZZER_REDIS_URL }}"
    soak = document["jobs"]["soak"]
    assert len(soak["strategy"]["matrix"]["machine"]) >= 2  # several machines per target
    run = next(s for s in soak["steps"] if "fuzzer soak" in s.get("run", ""))["run"]
    assert "--shared $FUZZER_SHARED" in run
    merge = document["jobs"]["merge"]
    assert merge["needs"] == "soak" and merge["if"] == "always()"
    step = next(s for s in merge["steps"] if "fuzzer soak" in s.get("run", ""))
    assert "--known-only" in step["run"] and '--shared "$FUZZER_SHARED"' in step["run"]
    upload = next(s for s in merge["steps"] if s.get("uses", "").startswith("actions/upload"))
    assert upload["with"]["path"] == "merged/"
