"""The test suite's fixtures: its own app and tables, and rows made by the factories."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from targets.helpers import create_app
from targets.helpers import db as _db
from targets.helpers.tests.factories import create_item, create_user


@pytest.fixture
def app() -> Iterator[Flask]:
    app = create_app()
    app.config.update(TESTING=True, SQLALCHEMY_DATABASE_URI="sqlite://")
    with app.app_context():
        yield app


@pytest.fixture
def db(app: Flask) -> Iterator[Any]:
    _db.create_all()
    yield _db
    _db.drop_all()


@pytest.fixture
def users(db: Any) -> list[Any]:
    return [create_user("alice"), create_user("bob")]


@pytest.fixture
def item(db: Any) -> Any:
    return create_item("lamp", stock=1)


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()
