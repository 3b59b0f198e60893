"""`fuzzer init` writes a spec from the app itself that runs as written and finds races."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fuzzer import api
from fuzzer.errors import FuzzerError, InvalidTarget
from fuzzer.execute.instrument import load_target
from fuzzer.init.spec import write_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_written(path: str) -> Any:
    directory, name = os.path.split(path)
    sys.path.insert(0, directory)
    try:
        sys.modules.pop(name[:-3], None)
        return load_target(f"{name[:-3]}:target")
    finally:
        sys.path.remove(directory)


@pytest.mark.slow
def test_init_on_the_demo_writes_a_spec_that_runs_as_written_and_finds_races(
    tmp_path: Any,
) -> None:
    path = str(tmp_path / "fuzz_demo.py")
    result = subprocess.run(
        [sys.executable, "-m", "fuzzer", "init", "targets.demo.app:create_app", "-o", path],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Wrote " in result.stdout and "6 endpoints (6 more listed in a comment)" in result.stdout
    assert "POST /user/<username>/unfollow: 302; writes follows" in result.stdout
    source = Path(path).read_text(encoding="utf-8")
    for expected in (
        # the development config: pinned to the scratch database, CSRF off
        "pinned_config(SQLALCHEMY_DATABASE_URI=database_url, WTF_CSRF_ENABLED=False)",
        'flask_command(app, "init-db")',  # the app's own commands
        'flask_command(app, "seed")',
        # the second user first: the first username a request draws is someone else
        'Identity("bob", headers=flask_login_session(2))',
        'Identity("alice", headers=flask_login_session(1))',
        'paths("/post/<int:post_id>", post_id=values_of("posts.id", otherwise=[1, 2]))',
        # a new name first: the simplest request creates the tag
        'form={"name": st.one_of(st.just("alpha"), values_of("tags.name", limit=1))}',
        # pages that only read are listed, not sent; the view counter's GET writes
        "#   GET /user/<username>: 200 as bob; read only (follows, users)",
        'as_=["bob", "alice"]',  # login_required views
        'ignore_columns=frozenset({"users.password_hash"})',  # salted: differs between setups
    ):
        assert expected in source, expected
    formatted = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--line-length", "88", path],
        cwd=tmp_path,
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_init_builds_an_app_whose_factory_runs_once_per_process_and_finds_its_seed(
    tmp_path: Any,
) -> None:
    """The forum's factory raises when called twice in one process; its tables come from
    a command in a CLI group and its users from a module function no command calls."""
    path = str(tmp_path / "fuzz_forum.py")
    result = subprocess.run(
        # a real process: the forum's factory raises when called twice in one process
        [sys.executable, "-m", "fuzzer", "init", "tests.fixtures.forum_app:create_app", "-o", path],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "setup: flask forum init-db, create_test_data()" in result.stdout
    source = Path(path).read_text(encoding="utf-8")
    forum = Path(ROOT, "tests", "fixtures", "forum_app.py").read_text(encoding="utf-8")
    line = forum.splitlines().index('    @app.post("/api/topics")') + 1
    post = forum.splitlines().index("    def post(self) -> Any:") + 1
    for expected in (
        'flask_command(app, "forum", "init-db")  # the app\'s own `flask forum init-db`',
        "create_test_data()  # the app's own seed function",
        "from tests.fixtures.forum_app import create_app, create_test_data",
        # the second user first: the first user a request names is someone else
        'Identity("ben", headers=flask_login_session(2))',
        # <photo_id> from photo.id, though the segment before it says "tag"
        'photo_id=values_of("photo.id", otherwise=[1, 2])',
        'tag_id=values_of("tag.id", otherwise=[1, 2])',
        # JSON fields from the view's code: int(request.json.get("delta", 1))
        'json={"delta": st.integers(1, 3)}',
        'json={"title": st.sampled_from(["alpha", "bravo"])}',
        # the view's own line, through a decorator written without functools.wraps
        f"new_topic() in tests.fixtures.forum_app, line {line}",
        # a class-based view: its post() method's line, body and login
        f"# POST /api/tags: post() in tests.fixtures.forum_app, line {post}",
        'json={"name": st.one_of(st.just("alpha"), values_of("tag.name", limit=1))}',
        # a float filled by time.time() is a timestamp
        'ignore_columns=frozenset({"user.password_hash", "topic.touched"})',
    ):
        assert expected in source, expected
    assert "POST /api/topics/<int:topic_id>/vote: 200; writes topic" in result.stdout


def test_setup_prefers_the_seed_that_creates_users(tmp_path: Any) -> None:
    from fuzzer.init.factory import load_factory
    from fuzzer.init.setup.seeding import setup_steps

    code = textwrap.dedent(
        """
        import click
        from flask import Flask
        from flask_sqlalchemy import SQLAlchemy

        db = SQLAlchemy()

        def seed_tag_rows():  # the seed-tags command calls it: not called again
            db.session.execute(db.text("SELECT 1"))

        def populate_roles():  # no command calls it
            db.session.execute(db.text("SELECT 'role'"))

        def create_app():
            app = Flask(__name__)
            app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
            db.init_app(app)

            @app.cli.command("seed-tags")
            def seed_tags():
                seed_tag_rows()

            @app.cli.command("seed-users")
            def seed_users():
                user = User(name="ann")
                user.set_password("secret")

            return app
        """
    )
    (tmp_path / "seeding_app.py").write_text(code, encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        factory = load_factory("seeding_app:create_app")
        steps = setup_steps(factory.build(), factory)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("seeding_app", None)
    assert steps == [
        ("create_all", ""),
        ("command", "seed-users"),  # its code names a password: users first
        ("call", "seeding_app:populate_roles"),  # then roles
        ("command", "seed-tags"),
    ]


def test_only_random_looking_columns_that_differ_between_setups_are_ignored() -> None:
    """A seed that draws random data (Faker) makes every column differ between two
    setups; the quantities and foreign keys the requests act on must stay compared."""
    from fuzzer.init.inputs.varies import differing_columns
    from fuzzer.init.plan import Table

    columns = ("id", "user_id", "quantity", "password_hash")
    types = ("INTEGER", "INTEGER", "INTEGER", "VARCHAR")
    first = {"orders": Table(columns, ("id",), types, [(1, 3, 7, "pbkdf2:sha256$a1b2c3d4e5f6$99")])}
    again = {"orders": Table(columns, ("id",), types, [(1, 2, 4, "pbkdf2:sha256$f6e5d4c3b2a1$11")])}
    assert differing_columns(first, again) == ["orders.password_hash"]


def test_json_fields_come_from_the_views_code() -> None:
    from flask import request

    from fuzzer.init.inputs.viewcode import json_fields

    def indexed() -> Any:
        return request.get_json()["title"]

    def through_json() -> Any:
        return request.json.get("note"), int(request.json.get("delta", 1))  # type: ignore[union-attr]

    def named() -> Any:
        data = request.get_json() or {}
        if "username" not in data:
            return None
        return data["username"], data.get("about_me"), float(data["price"])

    assert json_fields(indexed) == {"title": False}
    assert json_fields(through_json) == {"note": False, "delta": True}
    assert json_fields(named) == {"username": False, "about_me": False, "price": True}


def test_without_a_seed_setup_makes_users_from_the_models_and_signs_in_as_them(
    tmp_path: Any,
) -> None:
    """No seed command or function: before, no users, so every view behind
    login_required answered 302 and the spec said why; now setup makes the rows from the
    models (fill_tables) and the spec signs in as the users it made."""
    code = textwrap.dedent(
        """
        from flask import Flask
        from flask_login import LoginManager, UserMixin, login_required
        from flask_sqlalchemy import SQLAlchemy

        db = SQLAlchemy()
        login = LoginManager()
        login.login_view = "sign_in"

        class User(UserMixin, db.Model):
            id = db.Column(db.Integer, primary_key=True)
            username = db.Column(db.String(20), unique=True, nullable=False)

        class Note(db.Model):
            id = db.Column(db.Integer, primary_key=True)
            owner_id = db.Column(db.ForeignKey("user.id"), nullable=False)

        @login.user_loader
        def load(user_id):
            return db.session.get(User, int(user_id))

        def create_app():
            app = Flask(__name__)
            app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
            app.config["SECRET_KEY"] = "x"
            db.init_app(app)
            login.init_app(app)

            @app.get("/sign-in")
            def sign_in():
                return "sign in"

            @app.post("/notes")
            @login_required
            def notes():
                db.session.add(Note(owner_id=1))
                db.session.commit()
                return "noted"

            return app
        """
    )
    (tmp_path / "lonely_app.py").write_text(code, encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        written = write_spec("lonely_app:create_app", str(tmp_path / "fuzz_lonely.py"))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("lonely_app", None)
    assert written.survey["POST /notes"] == "200; writes note; reads user"
    source = Path(written.path).read_text(encoding="utf-8")
    assert "    fill_tables(app)  # rows made from the models" in source
    assert 'Identity("user2", headers=flask_login_session(2))' in source
    assert "No seed made rows in user: fill_tables() makes two rows" in " ".join(
        line.strip("# ") for line in source.splitlines()
    )


def test_json_fields_come_from_a_marshmallow_schema_the_view_loads() -> None:
    from flask import request
    from marshmallow import Schema, fields

    from fuzzer.init.inputs.values import schema_value
    from fuzzer.init.inputs.viewcode import Declared, schema_fields
    from fuzzer.init.plan import Table
    from fuzzer.init.pysource import flat

    class TopicSchema(Schema):
        id = fields.Integer(dump_only=True)
        title = fields.String(required=True)
        votes = fields.Integer()
        pinned = fields.Boolean()
        contact = fields.Email(data_key="email")

    topic_schema = TopicSchema()

    def create() -> Any:
        return topic_schema.load(request.get_json())

    def uses_the_class() -> Any:
        return TopicSchema().load(request.get_json())

    expected = {"title": "str", "votes": "int", "pinned": "bool", "email": "email"}
    assert {k: d.kind for k, d in (schema_fields(create) or {}).items()} == expected
    assert schema_fields(uses_the_class) == schema_fields(create)
    rows = {"topic": Table(("id", "title"), ("id",), ("INTEGER", "VARCHAR"), [(1, "Hi")])}
    assert flat(schema_value("votes", Declared("int"), rows)) == "st.integers(1, 3)"
    assert flat(schema_value("pinned", Declared("bool"), rows)) == "st.booleans()"
    assert flat(schema_value("title", Declared("str"), rows)) == (
        'st.one_of(st.just("alpha"), values_of("topic.title", limit=1))'
    )


@pytest.mark.slow  # init builds the app in three processes
def test_a_check_that_fails_leaves_the_spec_written_with_exit_0_and_says_what_failed(
    cli: Any, tmp_path: Any
) -> None:
    """Every sign-up of this app calls a Redis server the fuzzer does not own: init's
    check stops. The spec stays (the starting point to edit), its first comment and a
    warning say what failed, and init exits 0; `fuzzer run` then stops the same way."""
    init = cli("init", "tests.fixtures.limited:create_app", "-o", "fuzz_limited.py", cwd=tmp_path)
    assert init.returncode == 0, init.stdout + init.stderr
    assert "warning: fuzzer init's check of the spec failed:" in init.stderr
    assert "Redis client for 127.0.0.1:6379/3" in init.stderr
    source = (tmp_path / "fuzz_limited.py").read_text(encoding="utf-8")
    assert "# CHECK FIRST: fuzzer init's check of this spec failed:" in source
    assert "It runs as written" not in source
    run = cli("run", "fuzz_limited:target", "-n", "5", "--report-dir", "r", cwd=tmp_path)
    assert run.returncode == 2 and "Redis client for 127.0.0.1:6379/3" in run.stderr


def test_a_spec_that_keeps_no_endpoint_is_not_said_to_run(cli: Any, tmp_path: Any) -> None:
    """Every request of this app needs a signature init cannot make: the spec keeps no
    endpoint, which `fuzzer run` refuses. init says so instead of "Next: fuzzer run"."""
    (tmp_path / "signed.py").write_text(
        textwrap.dedent(
            """
            from flask import Flask, request
            from flask_sqlalchemy import SQLAlchemy

            db = SQLAlchemy()


            class Thing(db.Model):
                id = db.Column(db.Integer, primary_key=True)


            def create_app():
                app = Flask(__name__)
                app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
                db.init_app(app)

                @app.post("/things")
                def add():
                    if request.headers.get("X-Signature") != "signed-by-the-gateway":
                        return {"error": "unsigned"}, 401
                    db.session.add(Thing())
                    db.session.commit()
                    return {}, 201

                return app
            """
        ),
        encoding="utf-8",
    )
    init = cli("init", "signed:create_app", cwd=tmp_path)
    assert init.returncode == 0, init.stdout + init.stderr
    assert "Wrote fuzz_signed.py: 0 endpoints (1 more listed in a comment)" in init.stdout
    assert "Next: fuzzer run" not in init.stdout + init.stderr
    assert "warning: the spec keeps no endpoint: none of the 1 wrote" in init.stderr
    assert "Declare identities that sign in" in init.stderr
    source = (tmp_path / "fuzz_signed.py").read_text(encoding="utf-8")
    assert "It runs as written" not in source and "It does not run yet" in source
    sys.modules.pop("fuzz_signed", None)  # init's check loaded it, every endpoint kept
    run = cli("run", "fuzz_signed:target", "-n", "5", cwd=tmp_path)
    assert run.returncode == 2 and "Target.endpoints is empty" in run.stderr
