"""Bad input gets one clear line and exit code 2, never a traceback, and touches nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import Cli, Ran


@pytest.fixture
def fuzzer(cli: Cli, tmp_path: Path) -> Cli:
    """The command line in process, in a scratch directory holding a file, README.md."""
    (tmp_path / "README.md").write_text("a file, not a directory\n", encoding="utf-8")

    def run(*args: str) -> Ran:
        return cli(*args, cwd=tmp_path)

    return run  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "no_such_package.app:target"], "Cannot import module 'no_such_package.app'"),
        (["run", "targets.profile"], "Expected a target reference like 'package.module:attribute'"),
        (["run", "targets.profile:nope"], "has no attribute 'nope'; targets in it: buggy, fixed"),
        (["run", "tests.fixtures.bad_targets:not_a_target"], "is a list, expected a fuzzer.Target"),
        (
            ["run", "tests.fixtures.bad_targets:factory_raises"],
            "the app factory raising_factory() raised RuntimeError: cannot read config",
        ),
        (
            ["run", "tests.fixtures.bad_targets:setup_raises"],
            "setup raising_setup(app) raised ValueError: table users already exists",
        ),
        (
            ["run", "tests.fixtures.bad_targets:foreign_key_to_nothing"],
            "After setup, a foreign key refers to table 'users', which does not exist",
        ),
        (
            ["run", "targets.profile:buggy", "--db", "mysql+pymysql://root@10.1.2.3:3306/fuzz_x"],
            "Refusing database host '10.1.2.3'",
        ),
        (
            ["run", "targets.profile:buggy", "--db", "oracle://scott@127.0.0.1/x"],
            "Unsupported database 'oracle'",
        ),
        (["run", "targets.profile:buggy", "--db", "::not a url::"], "Cannot parse --db"),
        (
            ["run", "targets.profile:buggy", "--db", "mysql+pymysql://root@[::1"],
            "Cannot parse --db 'mysql+pymysql://root@[::1'",
        ),
        (
            ["run", "targets.profile:buggy", "--db", "mysql+pymysql://root@127.0.0.1:notaport/"],
            "Cannot parse --db 'mysql+pymysql://root@127.0.0.1:notaport/'",
        ),
        (
            ["run", "targets.profile:buggy", "--db", "mysql+pymysql://root@127.0.0.1:70000/x"],
            "Cannot use port 70000",
        ),
        (
            [
                "run",
                "targets.profile:buggy",
                "--db",
                "postgresql+psycopg://postgres@/?host=192.0.2.1",
            ],
            "Refusing query parameter host='192.0.2.1'",
        ),
        (
            ["run", "targets.profile:buggy", "--report-dir", "README.md"],
            "Cannot write reports to --report-dir README.md: it is a file, not a directory",
        ),
        (
            ["soak", "targets.profile:buggy", "--duration", "5", "--report-dir", "README.md/x"],
            "it is a file, not a directory",
        ),
        (
            ["stress", "targets.profile:buggy", "--report-dir", "README.md"],
            "it is a file, not a directory",
        ),
        (["init", "targets.demo.app"], "Expected an app factory like 'package.module:create_app'"),
        (["replay", "reports/does-not-exist.json"], "No report at reports/does-not-exist.json"),
        (
            ["run", "tests.fixtures.bad_targets:wrong_password"],
            "the login of identity 'alice' (POST /auth/login) answered 302 but did not log in: "
            "the session it set has no Flask-Login user (the app said: 'Invalid username or "
            "password'); check the credentials",
        ),
        (
            ["run", "tests.fixtures.bad_targets:wrong_path"],
            "endpoint 'POST /users' answered 404 to all 1 requests tried (e.g. POST /users); "
            "check its method and path against the app's routes: GET /",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(fuzzer: Cli, args: list[str], expected: str) -> None:
    result = fuzzer(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("error: ")
    assert expected in " ".join(result.stderr.split()), result.stderr


def test_a_port_in_use_is_named(fuzzer: Cli) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = fuzzer(
            "run", "tests.fixtures.bad_targets:healthy", "--port", str(port), "--max-examples", "1"
        )
    assert result.returncode == 2
    assert f"Port {port} on 127.0.0.1 is in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2(fuzzer: Cli) -> None:
    result = fuzzer("run")
    assert result.returncode == 2
    assert "Missing argument 'TARGET'" in result.stderr


def test_a_report_dir_that_cannot_be_written_stops_before_the_search(fuzzer: Cli) -> None:
    result = fuzzer("run", "targets.profile:buggy", "--report-dir", "README.md/reports")
    assert result.returncode == 2
    assert result.stdout == ""  # nothing searched: not even the "Fuzzing …" line
    assert "README.md is" in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to any directory")
def test_a_report_dir_without_write_permission_is_refused(fuzzer: Cli, tmp_path: Path) -> None:
    locked = os.path.join(tmp_path, "locked")
    os.mkdir(locked, 0o555)
    result = fuzzer("run", "targets.profile:buggy", "--report-dir", os.path.join(locked, "r"))
    assert result.returncode == 2
    assert "is not writable" in result.stderr
