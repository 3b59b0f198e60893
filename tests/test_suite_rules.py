"""The test suite's own rules: a server that is down fails the tests under
``FUZZER_REQUIRE_SERVERS=1`` (CI) and skips them otherwise; no test changes the working
directory of the process (the xdist workers share nothing but that would leak); every
subprocess a test starts says where it runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from . import conftest

TESTS = Path(__file__).resolve().parent


def test_a_server_that_is_down_skips_or_fails_when_servers_are_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(conftest, "unavailable", lambda alias: "Connection refused")
    monkeypatch.delenv(conftest.REQUIRE_SERVERS, raising=False)
    skipped = r"MariaDB at 127\.0\.0\.1:3306 is not available"
    with pytest.raises(pytest.skip.Exception, match=skipped):
        conftest.need("mariadb")
    monkeypatch.setenv(conftest.REQUIRE_SERVERS, "1")
    for alias in ("mariadb", "postgres", "redis"):
        with pytest.raises(pytest.fail.Exception, match=r"Connection refused.*REQUIRE_SERVERS=1"):
            conftest.need(alias)
    monkeypatch.setenv(conftest.REQUIRE_SERVERS, "0")
    with pytest.raises(pytest.skip.Exception):
        conftest.need("redis")


def test_ci_requires_the_servers() -> None:
    script = (TESTS.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert f"export {conftest.REQUIRE_SERVERS}=1" in script.splitlines()


def _calls(path: Path) -> list[tuple[str, ast.Call]]:
    calls = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name):
                calls.append((f"{owner.id}.{node.func.attr}", node))
    return calls


def test_no_test_changes_the_working_directory_of_the_process() -> None:
    # monkeypatch.chdir (undone after the test) or a subprocess's cwd= instead
    found = [
        f"{path.name}:{call.lineno}"
        for path in sorted(TESTS.glob("*.py"))
        for name, call in _calls(path)
        if name == "os.chdir"
    ]
    assert found == []


def test_every_subprocess_a_test_starts_says_where_it_runs() -> None:
    found = [
        f"{path.name}:{call.lineno}"
        for path in sorted(TESTS.glob("*.py"))
        for name, call in _calls(path)
        if name in ("subprocess.run", "subprocess.Popen")
        and not any(k.arg in ("cwd", None) for k in call.keywords)  # None: **options
    ]
    assert found == []
