"""`fuzzer init` writes a spec from the app itself that runs as written and finds races."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fuzzer import api
from fuzzer.errors import FuzzerError, InvalidTarget
from fuzzer.spec import write_spec
from fuzzer.target import load_target

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_written(path: str) -> Any:
    directory, name = os.path.split(path)
    sys.path.insert(0, directory)
    try:
        sys.modules.pop(name[:-3], None)
        return load_target(f"{name[:-3]}:target")
    finally:
        sys.path.remove(directory)


def test_init_on_the_demo_writes_a_spec_that_runs_as_written_and_finds_races(
    tmp_path: Any,
) -> None:
    path = str(tmp_path / "fuzz_demo.py")
    result = subprocess.run(
        [sys.executable, "-m", "fuzzer", "init", "targets.demo.app:create_app", "-o", path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Wrote " in result.stdout and "12 endpoints, 3 identities" in result.stdout
    assert "POST /user/<username>/unfollow: 302; writes follows" in result.stdout
    source = Path(path).read_text(encoding="utf-8")
    for expected in (
        # the development config: pinned to the scratch database, CSRF off
        "pinned_config(SQLALCHEMY_DATABASE_URI=database_url, WTF_CSRF_ENABLED=False)",
        'flask_command(app, "init-db")',  # the app's own commands
        'flask_command(app, "seed")',
        'Identity("alice", headers=flask_login_session(1))',  # the first users after setup
        'paths("/post/<int:post_id>", post_id=values_of("posts.id", otherwise=[1, 2]))',
        'form={"name": st.one_of(values_of("tags.name", limit=1), st.just("alpha"))}',
        'as_=["alice", "bob"]',  # login_required views
        'ignore_columns=frozenset({"users.password_hash"})',  # salted: differs between setups
    ):
        assert expected in source, expected
    formatted = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--line-length", "88", path],
        capture_output=True,
        text=True,
    )
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr  # reads as written
    # the survey above sent every endpoint of the spec as written; now a short search on
    # the view counter, with the spec's own setup, identities and domains
    target = load_written(path)
    views = [e for e in target.endpoints if e.name == "GET /post/<int:post_id>"]
    report = api.run(
        replace(target, endpoints=views), max_examples=10, seed=2, report_dir=None, example_db=None
    )
    assert [(f.kind, len(f.scenario.requests)) for f in report.findings] == [("lost-update", 2)]


def test_an_openapi_document_drives_the_json_bodies(tmp_path: Any) -> None:
    path = str(tmp_path / "fuzz_wallet.py")
    written = write_spec("tests.fixtures.wallet_api:create_app", path)
    source = Path(path).read_text(encoding="utf-8")
    assert written.plan.openapi == "/api/openapi.json"
    assert 'json={"amount": st.integers(1, 3)}' in source  # required only, a small range
    assert '"/api/openapi.json"' not in source.split("ENDPOINTS")[1]
    report = api.run(load_written(path), max_examples=10, seed=1, report_dir=None, example_db=None)
    assert [(f.kind, f.endpoints) for f in report.findings] == [
        ("lost-update", ("POST /api/accounts/<int:account_id>/deposit",))
    ]
    with pytest.raises(InvalidTarget, match="exists; pass --force"):
        write_spec("tests.fixtures.wallet_api:create_app", path)


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("targets.demo.app", "Expected an app factory like 'package.module:create_app'"),
        (
            "targets.demo.app:make_app",
            "Module 'targets.demo.app' has no attribute 'make_app'; factories in it: create_app",
        ),
        ("targets.demo.app:login_manager", "is not callable, not an app factory"),
        ("targets.demo.app:create_app(Nope)", "cannot find 'Nope' in targets.demo.app"),
        (
            "targets.demo.app:create_app('staging')",
            "the app factory raised KeyError: 'staging' at app.py:",
        ),
    ],
)
def test_a_bad_factory_reference_is_one_clear_line(
    reference: str, expected: str, tmp_path: Any
) -> None:
    with pytest.raises(FuzzerError) as failure:
        write_spec(reference, str(tmp_path / "fuzz_x.py"))
    assert expected in str(failure.value) and "\n" not in str(failure.value)
    assert not (tmp_path / "fuzz_x.py").exists()


def test_every_bind_goes_to_a_scratch_database(tmp_path: Any) -> None:
    """The app's config points both of its databases at a server; init and the spec it
    writes must use scratch databases for both (a real server would not even answer)."""
    path = str(tmp_path / "fuzz_binds.py")
    write_spec("tests.fixtures.binds_app:create_app", path)
    source = Path(path).read_text(encoding="utf-8")
    assert 'databases=("default", "audit")' in source
    assert 'SQLALCHEMY_BINDS={"audit": database_url["audit"]}' in source
    assert 'values_of("default.notes.id", otherwise=[1, 2])' in source
    assert api.check(load_written(path)) == {
        "POST /notes/<int:note_id>/touch": "200; writes audit.events"
    }
