"""The nightly GitHub Actions workflow, read for what it does: scheduled, MariaDB up, the
soak run by several machines of one campaign, exit codes judged per target, the campaign
merged at the end, reports kept. Its shell steps run here under bash, as the runner runs
them, with a stand-in ``fuzzer`` whose arguments the real command line then parses."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"
EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")
SHARED = "redis://campaign.example:6379/3"
STAND_IN = '#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_FILE"\nexit "$STAND_IN_EXIT"\n'


def load() -> dict[Any, Any]:
    document = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def cells(job: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's matrix, expanded as Actions does: every combination, then ``include``
    entries extend the combinations they match (or stand alone)."""
    matrix = dict(job["strategy"]["matrix"])
    include = matrix.pop("include", [])
    combos: list[dict[str, Any]] = [{}]
    for key, options in matrix.items():
        combos = [{**combo, key: option} for combo in combos for option in options]
    for extra in include:
        matching = [c for c in combos if c and all(c.get(k, v) == v for k, v in extra.items())]
        for combo in matching:
            combo.update(extra)
        if not matching:
            combos.append(dict(extra))
    return [c for c in combos if c]


def step(job: dict[str, Any], command: str) -> dict[str, Any]:
    (found,) = [s for s in job["steps"] if command in s.get("run", "")]
    return found


def run_step(
    script: str, tmp_path: Path, cell: dict[str, Any], env: dict[str, str], exit_code: int
) -> tuple[int, dict[str, Any]]:
    """Run a step's script as the runner does (bash -eo pipefail, expressions filled in)
    with a stand-in ``.venv/bin/fuzzer`` exiting ``exit_code``; the step's exit status
    and the options the real ``fuzzer`` would have read from the stand-in's arguments."""
    stand_in = tmp_path / ".venv" / "bin" / "fuzzer"
    stand_in.parent.mkdir(parents=True, exist_ok=True)
    stand_in.write_text(STAND_IN, encoding="utf-8")
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IXUSR)
    values = {f"matrix.{key}": value for key, value in cell.items()}
    path = tmp_path / "step.sh"
    path.write_text(EXPRESSION.sub(lambda m: str(values[m.group(1)]), script), encoding="utf-8")
    arguments = tmp_path / "arguments"
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)],
        cwd=tmp_path,
        env={
            "PATH": os.environ["PATH"],
            **env,
            "ARGS_FILE": str(arguments),
            "STAND_IN_EXIT": str(exit_code),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, parsed(arguments.read_text(encoding="utf-8").splitlines())


def parsed(arguments: list[str]) -> dict[str, Any]:
    """What ``fuzzer soak`` reads from these arguments (the real command's parser)."""
    from fuzzer.cli.commands import main

    assert arguments[0] == "soak", arguments
    command = main.commands["soak"]
    with command.make_context("soak", arguments[1:]) as context:
        return dict(context.params)


def test_the_nightly_workflow_is_scheduled_by_cron() -> None:
    document = load()
    triggers: dict[str, Any] = document.get("on", document.get(True))  # YAML 1.1: `on` is true
    (schedule,) = triggers["schedule"]
    fields = schedule["cron"].split()
    assert len(fields) == 5 and fields[2:] == ["*", "*", "*"]  # every day
    assert "workflow_dispatch" in triggers


def test_each_target_runs_on_several_machines_with_mariadb_up() -> None:
    job = load()["jobs"]["soak"]
    machines: dict[str, int] = {}
    for cell in cells(job):
        machines[cell["target"]] = machines.get(cell["target"], 0) + 1
    assert machines == {"targets.profile:buggy": 3, "targets.profile:fixed": 3}
    mariadb = job["services"]["mariadb"]
    assert mariadb["image"].startswith("mariadb:10.11")
    assert "3306:3306" in mariadb["ports"]
    assert "--health-cmd" in mariadb["options"]  # the steps start once it answers
    steps = job["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/checkout@") for u in uses)
    assert any(u.startswith("actions/setup-python@") for u in uses)
    setup = next(s for s in steps if s.get("run", "").strip() == "make setup")
    assert steps.index(setup) < steps.index(step(job, "fuzzer soak"))


@pytest.mark.parametrize("shared", ["", SHARED], ids=["alone", "shared"])
def test_the_soak_step_runs_the_campaign_and_judges_its_exit_code(
    tmp_path: Path, shared: str
) -> None:
    document = load()
    job = document["jobs"]["soak"]
    duration = EXPRESSION.sub(
        lambda m: m.group(1).split("||")[1].strip(" '"), job["env"]["DURATION"]
    )
    assert float(duration) + 10 * 60 <= job["timeout-minutes"] * 60  # fits, with setup
    assert document["env"]["FUZZER_SHARED"] == "${{ secrets.FUZZER_REDIS_URL }}"
    script = step(job, "fuzzer soak")["run"]
    for cell in cells(job):
        env = {"DURATION": duration, "FUZZER_SHARED": shared}
        for code in (0, 1, 2, 3):
            status, options = run_step(script, tmp_path, cell, env, code)
            assert options["target"] == cell["target"]
            assert (options["db"], options["duration"]) == ("mariadb", float(duration))
            assert options["workers"] >= 2 and options["shared"] == (shared or None)
            # the expected code passes; with a shared campaign a machine may find nothing
            # new because another reported it first
            passes = code == cell["expect"] or (bool(shared) and code == 0)
            assert (status == 0) == passes, (cell, code, shared, status)


def test_the_merge_job_replays_the_campaign_once_every_machine_is_done(tmp_path: Path) -> None:
    document = load()
    merge = document["jobs"]["merge"]
    assert merge["needs"] == "soak" and merge["if"] == "always()"
    merged = step(merge, "fuzzer soak")
    assert merged["if"] == "env.FUZZER_SHARED != ''"  # without a campaign there is none
    for cell in cells(merge):
        for code in (0, 1, 2):
            status, options = run_step(
                merged["run"], tmp_path, cell, {"FUZZER_SHARED": SHARED}, code
            )
            assert options["target"] == cell["target"] and options["known_only"]
            assert options["shared"] == SHARED and options["db"] == "mariadb"
            assert (status == 0) == (code == cell["expect"]), (cell, code, status)
    upload = next(s for s in merge["steps"] if s.get("uses", "").startswith("actions/upload"))
    assert upload["with"]["path"].rstrip("/") == options["report_dir"].rstrip("/")


def test_every_soak_keeps_its_reports_even_when_it_fails() -> None:
    job = load()["jobs"]["soak"]
    soak = step(job, "fuzzer soak")
    upload = next(
        s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")
    )
    assert upload["if"] == "always()"  # a red night keeps its reports too
    written = parsed(["soak", "targets.profile:buggy", "--duration", "1"])["report_dir"]
    assert upload["with"]["path"].rstrip("/") == written  # where `fuzzer soak` writes
    assert job["steps"].index(upload) > job["steps"].index(soak)


def test_make_soak_passes_duration_target_db_and_seed_through() -> None:
    result = subprocess.run(
        ["make", "-n", "soak", "TARGET=pkg.mod:t", "DB=mariadb", "DURATION=7", "SEED=3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "fuzzer soak pkg.mod:t --db mariadb --duration 7 --seed 3" in result.stdout
