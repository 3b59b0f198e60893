"""Packaging like a library (issue 22, item 2): one top-level package in the wheel, the
strategies under ``fuzzer``, typed, optional drivers as extras, one version."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_package_list_names_every_package_under_fuzzer() -> None:
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    found = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "fuzzer").rglob("__init__.py")
    }
    assert found <= listed, f"add to pyproject's packages: {sorted(found - listed)}"
    assert listed - found == {"fuzzer.strategies"}  # the repository's strategies/, mapped
    assert _pyproject()["tool"]["setuptools"]["package-dir"] == {"fuzzer.strategies": "strategies"}


def test_the_version_is_written_once() -> None:
    import fuzzer

    project = _pyproject()["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    from importlib.metadata import version

    assert version("flask-race-fuzzer") == fuzzer.__version__


def test_the_strategies_are_the_fuzzers() -> None:
    import fuzzer.strategies

    assert Path(fuzzer.strategies.__file__).parent == ROOT / "strategies"


@pytest.mark.slow
def test_the_wheel_installs_only_fuzzer(tmp_path: Path) -> None:
    """Build the wheel and install it into a fresh environment: what lands in
    site-packages is ``fuzzer`` and its dist-info (no ``strategies``, no ``targets``)."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        check=True,
        cwd=tmp_path,
        timeout=600,
    )
    (wheel,) = wheels.glob("flask_race_fuzzer-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
        names = set(archive.namelist())
    assert {t for t in tops if not t.endswith(".dist-info")} == {"fuzzer"}
    assert {"fuzzer/py.typed", "fuzzer/strategies/__init__.py"} <= names
    assert "fuzzer/report/report.html.j2" in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, cwd=tmp_path, timeout=300)
    python = venv / "bin" / "python"
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FUZZER_DB")}
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        cwd=tmp_path,
        env=environment,
        timeout=900,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
    ).stdout.strip()
    ours = sorted(p for p in os.listdir(site) if p == "fuzzer" or p.startswith("flask_race"))
    assert ours[0] == "flask_race_fuzzer-" + _installed_version(python, environment) + ".dist-info"
    assert ours[1:] == ["fuzzer"]
    for name in ("strategies", "targets"):
        assert not (Path(site) / name).exists(), f"{name} installed into site-packages"
    print("installed:", ours)
    check = subprocess.run(
        [str(python), "-m", "fuzzer", "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert check.returncode == 0 and "fuzzer" in check.stdout, check.stderr
    strategies = subprocess.run(
        [str(python), "-c", "import fuzzer.strategies, fuzzer.api; print('ok')"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert strategies.stdout.strip() == "ok", strategies.stderr


def _installed_version(python: Path, environment: dict[str, str]) -> str:
    return subprocess.run(
        [str(python), "-c", "import fuzzer; print(fuzzer.__version__)"],
        check=True,
        capture_output=True,
        text=True,
        env=environment,
        cwd="/",
    ).stdout.strip()


def test_a_nightly_job_tries_the_newest_hypothesis_on_the_adapters_tests() -> None:
    import yaml

    workflow = ROOT / ".github" / "workflows" / "hypothesis-newest.yml"
    document = yaml.safe_load(workflow.read_text(encoding="utf-8"))
    triggers = document.get("on", document.get(True))  # YAML 1.1: `on` is true
    assert triggers["schedule"][0]["cron"].split()[2:] == ["*", "*", "*"]  # every night
    (job,) = document["jobs"].values()
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert "pip install --upgrade hypothesis" in runs  # past pyproject's upper bound
    named = {word for word in runs.split() if word.startswith("tests/test_")}
    assert "tests/test_budgets.py" in named and "tests/test_user_suite.py" in named
    for path in named:
        assert (ROOT / path).is_file(), f"{path} named by the workflow does not exist"
