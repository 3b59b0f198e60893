"""The pytest plugin (issue 22, item 1), run as a user's suite would run it: pytester
starts pytest on a suite of two tests, one fuzzing a buggy target and one its fixed twin."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

SUITE = """
import pytest
from fuzzer import Target
from targets import profile

# a Target object, defined in the user's suite
buggy = Target(name="profile-in-a-suite", app=profile.create_app, setup=profile.setup,
               endpoints=profile.ENDPOINTS)


def test_buggy(fuzzer_run):
    fuzzer_run(buggy, max_examples=100)


@pytest.mark.fuzzer(max_examples=30)
def test_fixed(fuzzer_run, pytestconfig):
    report = fuzzer_run("targets.profile:fixed", max_examples=400)
    # the command line's budget over the marker's, the marker's over the call's
    assert report.result.examples == (pytestconfig.getoption("fuzzer_examples") or 30)
"""

# in process, the fuzzer is imported already: pytest cannot rewrite the plugin's asserts
QUIET = ("-W", "ignore::pytest.PytestAssertRewriteWarning")


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("FUZZER_DB", raising=False)
    pytester.makepyfile(test_user=SUITE)
    return pytester


def test_a_users_suite_fails_on_the_buggy_target_with_the_replay_command(
    suite: pytest.Pytester,
) -> None:
    options = ["--fuzzer-seed", "4", "--fuzzer-examples", "10", "-p", "no:cacheprovider"]
    result = suite.runpytest_inprocess(*options, "-k", "buggy", *QUIET)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "1 finding(s) in test_user:buggy after" in out
    assert "= Lost update =   lost-update · PUT /user/age + PUT /user/name" in out
    # the section attached to the failing test: where the reports are, how to replay
    assert re.search(r"^-+ fuzzer -+$", out, re.MULTILINE), "no fuzzer section"
    where = re.search(r"^Reports in (\S+)/$", out, re.MULTILINE)
    assert where, "the section does not say where the reports are"
    reports = Path(where.group(1))  # under the test's own temporary directory
    assert reports.parent.name == "fuzzer-reports" and reports.parent.parent.name == "test_buggy0"
    (written,) = reports.glob("01-lost-update.json")
    assert f"  fuzzer replay {written}" in out
    assert json.loads(written.read_text())["target"] == "test_user:buggy"
    # nothing written into the working directory: the reports are under the test's tmp dir
    assert sorted(p.name for p in suite.path.iterdir()) == ["test_user.py"]


@pytest.mark.slow
def test_the_report_dir_option_and_the_example_database_keyed_by_node_id(
    suite: pytest.Pytester, tmp_path: Path
) -> None:
    reports = tmp_path / "ci-reports"
    # no seed: a seeded run is repeatable, and so neither reads nor saves examples
    result = suite.runpytest_inprocess("--fuzzer-report-dir", str(reports), *QUIET)
    result.assert_outcomes(passed=1, failed=1)
    assert list(reports.glob("profile-in-a-suite-*/01-lost-update.json"))
    examples = suite.path / ".pytest_cache" / "d" / "fuzzer-examples"
    assert examples.is_dir() and any(examples.iterdir()), "the failure was not saved"
    from hypothesis.database import DirectoryBasedExampleDatabase

    from fuzzer.search.conjecture import database_key

    store = DirectoryBasedExampleDatabase(str(examples))
    node = "test_user.py::test_buggy|sqlite|conflict"  # node id | dialect | schedule
    assert list(store.fetch(database_key(node))), "not saved under the test's node id"
    assert not list(store.fetch(database_key("test_user:buggy|sqlite|conflict")))


def test_the_plugin_costs_nothing_until_a_test_fuzzes(pytester: pytest.Pytester) -> None:
    """pytest imports the plugin in every session of an environment the fuzzer is in."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, fuzzer.cli.pytest_plugin; print(sorted(sys.modules))"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    modules = set(ast.literal_eval(loaded.stdout))
    assert "fuzzer.cli.pytest_plugin" in modules
    assert not modules & {"fuzzer.api", "hypothesis", "sqlalchemy", "trio", "flask"}
    help_text = pytester.runpytest_inprocess("--help", *QUIET).stdout.str()
    for option in ("--fuzzer-db", "--fuzzer-seed", "--fuzzer-examples", "--fuzzer-report-dir"):
        assert option in help_text
