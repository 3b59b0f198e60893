"""The app's own test helpers as setup candidates (issue 20, item 1): the fixtures of
the conftest.py its package ships and the row-making functions of its factories, found,
tried and run in setup with the fuzzer's app and database in place of the tests' own."""

from __future__ import annotations

from typing import Any

import pytest

from fuzzer import pytest_fixture
from fuzzer.errors import TargetSetupError
from fuzzer.init.factory import load_factory
from fuzzer.init.setup.helpers import helper_steps
from fuzzer.target.apps import pinned_config

CONFTEST = "targets.helpers.tests.conftest"


def test_the_fixtures_and_helpers_the_package_ships_are_candidates() -> None:
    notes: list[str] = []
    steps = helper_steps(load_factory("targets.helpers:create_app"), notes)
    # app, db and client are the fuzzer's own, never run; the fuzzer's own tests/ (at
    # the project's root, not importing targets.helpers) are not the app's
    assert steps == [
        ("fixture", f"{CONFTEST}:item"),
        ("fixture", f"{CONFTEST}:users"),
        ("helper", "targets.helpers.tests.factories:create_item"),
        ("helper", "targets.helpers.tests.factories:create_user"),
    ]
    assert notes == []


def test_an_app_without_test_helpers_has_none() -> None:
    assert helper_steps(load_factory("targets.cart:create_app"), []) == []


def _app() -> Any:
    from targets import helpers

    with pinned_config(SQLALCHEMY_DATABASE_URI="sqlite://"):
        app = helpers.create_app()
    return helpers, app


def test_a_fixture_runs_with_the_fuzzers_app_and_database_and_its_rows_stay() -> None:
    helpers, app = _app()
    with app.app_context():
        helpers.db.create_all()
        made = pytest_fixture(app, f"{CONFTEST}:users")  # asks for db, which asks for app
        assert [u.username for u in made] == ["alice", "bob"]
        # the conftest's db fixture was not run: its teardown would drop the tables
        assert helpers.db.session.query(helpers.User).count() == 2
        assert app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite://"


def test_a_fixture_that_asks_for_one_nobody_gives_is_one_clear_error(tmp_path: Any) -> None:
    import sys

    (tmp_path / "needy_conftest.py").write_text(
        "import pytest\n\n@pytest.fixture\ndef row(db, tmp_path):\n    return 1\n",
        encoding="utf-8",
    )
    sys.path.insert(0, str(tmp_path))
    try:
        _, app = _app()
        with app.app_context(), pytest.raises(TargetSetupError) as failure:
            pytest_fixture(app, "needy_conftest:row")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("needy_conftest", None)
    assert "the fixture 'tmp_path', which row asks for, is not one of the module's" in str(
        failure.value
    )
