"""One ``Settings`` for every way in (issue 18, items 3 and 4): checked when made, the
library's defaults write nothing into the working directory, and a ``Session`` is a
context manager that instruments the process only while it is open."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from fuzzer import Settings, fuzz
from fuzzer.errors import DatabaseError, InvalidOption
from fuzzer.execute import gates, instrument
from fuzzer.execute.instrument import load_target
from fuzzer.execute.runner import Serial
from fuzzer.model import Gene, Request, Scenario
from fuzzer.modes.session import Session

ROOT = Path(__file__).resolve().parent.parent


def test_the_library_defaults_write_nothing() -> None:
    settings = Settings()
    assert settings.report_dir is None and settings.example_db is None
    cli = Settings.for_cli()
    assert (cli.report_dir, cli.example_db) == ("reports", str(Path(".fuzzer", "examples")))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_examples": 0}, "max_examples must be an integer at least 1, not 0"),
        ({"hang_timeout": -1}, "hang_timeout must be a number above 0, not -1"),
        ({"isolation": "snapshot"}, "isolation 'snapshot' is not a level; give one of"),
        ({"schedule": "dfs"}, "schedule 'dfs' is not a schedule mode"),
        ({"seed": "7"}, "seed must be an integer or None, not '7'"),
        ({"port": 70000}, "port 70000 is not a TCP port"),
    ],
)
def test_a_bad_setting_is_one_line_saying_what_to_give(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidOption) as error:
        Settings(**changes)  # type: ignore[arg-type]
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_an_unknown_setting_names_the_known_ones() -> None:
    with pytest.raises(TypeError, match=r"unknown setting\(s\) max_exampels; the settings are: db"):
        Settings().replace(max_exampels=3)


def test_settings_from_the_environment_take_the_database(tmp_path: Path) -> None:
    assert Settings.from_environment(environ={"FUZZER_DB": "mariadb"}).db == "mariadb"
    assert Settings.from_environment(environ={}).db == "sqlite"
    given = Settings(max_examples=5, report_dir=tmp_path)  # type: ignore[arg-type]
    assert given.report_dir == str(tmp_path)  # a Path is welcome, kept as a string
    assert Settings.from_environment(given, environ={"FUZZER_DB": "postgres"}).max_examples == 5


def test_fuzz_writes_nothing_into_the_working_directory(tmp_path: Path) -> None:
    """In a fresh process (Hypothesis caches what it reads from the modules it scans in
    ``.hypothesis/``, once per process): no reports/, no .fuzzer/, no .hypothesis/."""
    script = (
        "from fuzzer import Settings, fuzz\n"
        "try:\n"
        "    fuzz('targets.profile:buggy', Settings(max_examples=8, seed=4))\n"
        "except AssertionError:\n"
        "    print('found')\n"
    )
    environment = {k: v for k, v in os.environ.items() if k != "FUZZER_DB"}
    environment["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stdout.strip() == "found", done.stderr
    assert list(tmp_path.iterdir()) == []


def test_fuzz_reads_the_database_from_fuzzer_db(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUZZER_DB", "oracle://127.0.0.1/x")
    with pytest.raises(DatabaseError, match="Unsupported database 'oracle'"):
        fuzz("targets.profile:fixed", max_examples=1)


@pytest.fixture
def uninstrumented(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process as a user's suite has it: no instrumentation installed for good."""
    permanent = instrument._permanent
    monkeypatch.setattr(instrument, "_permanent", False)
    instrument._remove()
    yield
    if permanent:
        instrument.install()


def _instrumented() -> bool:
    from redis.connection import ConnectionPool

    return (
        time.sleep is gates._sleep
        and event.contains(Engine, "before_cursor_execute", gates._before_cursor_execute)
        and hasattr(ConnectionPool.__init__, "__wrapped__")  # the Redis pools recorded
    )


def _uninstrumented() -> bool:
    from redis.connection import ConnectionPool

    return (
        time.sleep is gates._real_sleep
        and not event.contains(Engine, "before_cursor_execute", gates._before_cursor_execute)
        and not hasattr(ConnectionPool.__init__, "__wrapped__")
    )


def test_a_session_is_ready_inside_its_block_and_undoes_the_instrumentation(
    uninstrumented: None,
) -> None:
    target = load_target("targets.profile:buggy")
    assert _uninstrumented()
    session = Session(target, Settings(max_examples=1))
    with session as s:
        assert s is session and _instrumented()
        assert s.oracle is not None and s.database_info["dialect"] == "sqlite"
        scenario = Scenario((Request("GET /user/1", "GET", "/user/1"),), (Gene(),))
        execution = s.execute(scenario, Serial((0,)))
        assert [r.status for r in execution.responses] == [200]
        assert any(step.kind == "sql" for step in execution.trace)
    assert _uninstrumented()
    with pytest.raises(RuntimeError, match="outside `with Session"):
        session.execute(scenario, Serial((0,)))


def test_a_session_that_fails_to_start_undoes_the_instrumentation(uninstrumented: None) -> None:
    from fuzzer.errors import TargetSetupError

    target = load_target("targets.profile:buggy")

    def broken(app: object) -> None:
        raise RuntimeError("no tables")

    from dataclasses import replace

    with pytest.raises(TargetSetupError, match="no tables"), Session(replace(target, setup=broken)):
        pass
    assert _uninstrumented()
