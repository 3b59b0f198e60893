"""The supported stacks: what pyproject.toml promises is what CI runs, and the seams of
``fuzzer.compat`` work on whichever stack this environment holds (``make test`` runs
the newest, ``make test-oldest`` the oldest: SQLAlchemy 1.4, Flask-SQLAlchemy 2.5)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text

from fuzzer import compat
from fuzzer.db import Databases
from fuzzer.errors import DatabaseError

ROOT = Path(__file__).resolve().parent.parent


def _lower_bounds() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    bounds = {}
    for requirement in project["project"]["dependencies"]:
        match = re.match(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?>=([0-9.]+)", requirement)
        if match:
            bounds[match[1].lower()] = match[2]
    return bounds


def _oldest_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints" / "oldest.txt").read_text(encoding="utf-8").splitlines():
        name, _, version = line.partition("==")
        if version:
            pins[name.strip().lower()] = version.strip()
    return pins


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def test_the_oldest_stack_ci_runs_is_at_pyprojects_lower_bounds() -> None:
    """Every lower bound is tested: constraints/oldest.txt pins each dependency to a
    release of the bound's series (never one below it), and the stack's four are the
    oldest the README names."""
    bounds, pins = _lower_bounds(), _oldest_pins()
    for name in ("flask", "werkzeug", "sqlalchemy", "flask-sqlalchemy", "blinker", "httpcore"):
        assert name in bounds, f"{name} has no lower bound in pyproject.toml"
    for name, bound in bounds.items():
        if name in ("hypothesis", "trio"):
            continue  # engine internals: tested at the newest only, where pip puts them
        assert name in pins, f"constraints/oldest.txt pins no version of {name}"
        pin, low = _release(pins[name]), _release(bound)
        assert pin >= low, f"{name}: oldest.txt pins {pins[name]}, below the bound {bound}"
        assert pin[:2] == (*low, 0)[:2], f"{name}: bound {bound} but CI runs {pins[name]}"
    assert {k: pins[k][:3] for k in ("flask", "werkzeug", "sqlalchemy", "flask-sqlalchemy")} == {
        "flask": "2.0",
        "werkzeug": "2.0",
        "sqlalchemy": "1.4",
        "flask-sqlalchemy": "2.5",
    }


def test_the_fuzzers_own_engine_is_20_style_with_a_pool_on_a_sqlite_file(tmp_path: Any) -> None:
    """SQLAlchemy 1.4 gives a SQLite file NullPool (which refuses pool_size) and a
    Connection without commit/rollback unless future=True: compat gives 2.0's."""
    engine = compat.create_engine(f"sqlite:///{tmp_path / 'x.sqlite'}", pool_size=1, max_overflow=2)
    try:
        with engine.connect() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": 1})
            conn.rollback()
            assert conn.execute(text("SELECT COUNT(*) FROM t")).scalar() == 0
    finally:
        engine.dispose()


def test_a_dialect_hands_out_its_dbapi_module() -> None:
    url = Databases.open("mariadb").backends["default"].own_url
    assert compat.import_dbapi(url.get_dialect()).__name__ == "pymysql"


def _app(tmp_path: Any) -> tuple[Flask, Any]:
    db = SQLAlchemy()

    class Note(db.Model):  # type: ignore[name-defined]
        __tablename__ = "notes"
        id = db.Column(db.Integer, primary_key=True)

    class Event(db.Model):  # type: ignore[name-defined]
        __bind_key__ = "audit"
        __tablename__ = "events"
        id = db.Column(db.Integer, primary_key=True)

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'main.sqlite'}"
    app.config["SQLALCHEMY_BINDS"] = {"audit": f"sqlite:///{tmp_path / 'audit.sqlite'}"}
    app.config["SQLALCHEMY_TRACK_MODIFICATIONS"] = False
    db.init_app(app)
    return app, db


def test_flask_sqlalchemy_its_metadata_per_bind_and_its_engines(tmp_path: Any) -> None:
    """Flask-SQLAlchemy 2.5 registers a state object, 3.x itself; 2.5 keeps one metadata
    for every bind."""
    app, db = _app(tmp_path)
    assert compat.flask_sqlalchemy(app) is db
    assert compat.flask_sqlalchemy(Flask("bare")) is None
    tables = {bind: sorted(m.tables) for bind, m in compat.metadatas(db).items()}
    assert tables == {None: ["notes"], "audit": ["events"]}
    with app.app_context():
        engines = compat.sqlalchemy_engines(app)
        assert {bind: e.url.database for bind, e in engines.items()} == {
            None: str(tmp_path / "main.sqlite"),
            "audit": str(tmp_path / "audit.sqlite"),
        }


def test_the_create_all_line_a_generated_spec_writes_runs(tmp_path: Any) -> None:
    app, _ = _app(tmp_path)
    line = compat.create_all_source()
    with app.app_context():
        exec(line, {"app": app})  # as the spec's setup(app) runs it
    assert (tmp_path / "audit.sqlite").exists()


@pytest.mark.parametrize("module", ["targets.profile", "targets.stock", "targets.tags"])
def test_the_targets_ci_runs_on_the_oldest_stack_use_no_20_only_api(module: str) -> None:
    """What SQLAlchemy 1.4 and Flask-SQLAlchemy 2.5 lack (checked here on every stack, so
    a change that would only fail `make test-oldest` fails `make test` too)."""
    source = (ROOT / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8")
    for name in ("DeclarativeBase", "Mapped", "mapped_column", "get_one", "db.select"):
        assert name not in source, f"{module} uses {name}, which SQLAlchemy 1.4 lacks"


def test_postgres_is_refused_in_one_line_where_sqlalchemy_cannot_speak_psycopg_3() -> None:
    """SQLAlchemy 1.4 has no postgresql+psycopg dialect: before, the fuzzer crashed on it
    as its own bug (exit 3); now --db postgres says why, and SQLite and MariaDB work."""
    for alias in ("sqlite", "mariadb"):
        Databases.open(alias)
    if compat.SQLALCHEMY_2:
        Databases.open("postgres")
        return
    with pytest.raises(DatabaseError, match=r"PostgreSQL needs SQLAlchemy 2\.0 or later"):
        Databases.open("postgres")
