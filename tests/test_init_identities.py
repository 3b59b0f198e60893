"""Who init's spec acts as (issue 20, item 3): a second user beside the one setup made
(a setup wizard's admin), and API tokens from the app's own token endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_first_try import _built


def test_a_second_user_signs_up_through_the_apps_own_form() -> None:
    """After a wizard made the admin: a second user through the sign-up form, posted as
    a visitor would, kept only because it made a row in the user table."""
    from flask import Flask, request
    from flask_sqlalchemy import SQLAlchemy

    from fuzzer.init.setup.wizard import sign_up

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    db = SQLAlchemy(app)
    users = db.Table("users", db.Column("name", db.String(40), primary_key=True))

    @app.post("/auth/register")
    def register() -> tuple[str, int]:
        name = request.form["username"]
        if request.form.get("password") != request.form.get("password2"):
            return "passwords differ", 400
        db.session.execute(users.insert().values(name=name))
        db.session.commit()
        return "", 302

    @app.post("/posts/new")
    def new_post() -> str:  # not a sign-up: never posted
        raise AssertionError("posted")

    with app.app_context():
        db.create_all()

        def count() -> int:
            return len(db.session.execute(users.select()).all())

        path, form = sign_up(app, count) or ("", {})
        assert path == "/auth/register"
        assert form["username"] == "user2" and form["password"] == form["password2"]
        assert [tuple(r) for r in db.session.execute(users.select())] == [("user2",)]


def test_an_api_token_from_the_apps_token_endpoint_is_proven_by_a_page_that_needs_it(
    tmp_path: Any,
) -> None:
    from fuzzer import bearer_token
    from fuzzer.errors import TargetSetupError
    from fuzzer.init.factory import load_factory
    from fuzzer.init.plan import Plan
    from fuzzer.init.setup.credentials import plan_credentials
    from fuzzer.init.setup.seeding import read_all_rows, step_constants

    url = f"sqlite:///{tmp_path}/tokens.db"
    module, app = _built("tokens", url)
    with app.app_context():
        module.db.create_all()
    app.test_cli_runner().invoke(args=["seed"])
    plan = Plan(load_factory("targets.tokens:create_app"), "tokens")
    constants = step_constants(app, [("command", "seed")])
    assert plan_credentials(app, plan, read_all_rows({"default": url}), constants)
    assert plan.identities == [
        'Identity("ann", headers=bearer_token("/api/tokens", basic=("ann", "wallet-pass")))',
        'Identity("bob", headers=bearer_token("/api/tokens", basic=("bob", "wallet-pass")))',
        'Identity("anonymous")',
    ]
    with app.app_context():
        headers = bearer_token("/api/tokens", basic=("bob", "wallet-pass"))(app)
    assert app.test_client().get("/api/me", headers=headers).get_json()["username"] == "bob"
    assert app.test_client().get("/api/me").status_code == 401
    with app.app_context(), pytest.raises(TargetSetupError, match=r"answered 401, not a token"):
        bearer_token("/api/tokens", basic=("bob", "wrong"))(app)


def test_flask_login_users_carry_the_token_the_apps_endpoint_issues(tmp_path: Any) -> None:
    """Signed in with a session for the pages, and a token for the API from its own
    endpoint (no model method issues one): both in the identity's headers."""
    from flask import Flask

    from fuzzer import bearer_token, flask_login_session
    from fuzzer.init.factory import load_factory
    from fuzzer.init.plan import Plan
    from fuzzer.init.setup.identities import plan_identities
    from fuzzer.init.setup.seeding import read_all_rows
    from fuzzer.target.apps import pinned_config
    from tests.fixtures import token_login

    url = f"sqlite:///{tmp_path}/token_login.db"
    with pinned_config(SQLALCHEMY_DATABASE_URI=url):
        app: Flask = token_login.create_app()
    with app.app_context():
        token_login.db.create_all()
    app.test_cli_runner().invoke(args=["seed"])
    plan = Plan(load_factory("tests.fixtures.token_login:create_app"), "token_login")
    plan.setup = [("command", "seed")]
    plan_identities(app, plan, read_all_rows({"default": url}))
    assert plan.identities == [
        'Identity("vic", headers=flask_login_session(2, token=bearer_token("/api/tokens", '
        'basic=("vic", "api-pass"))))',
        'Identity("uma", headers=flask_login_session(1, token=bearer_token("/api/tokens", '
        'basic=("uma", "api-pass"))))',
        'Identity("anonymous")',
    ]
    with app.app_context():
        headers = flask_login_session(
            2, token=bearer_token("/api/tokens", basic=("vic", "api-pass"))
        )(app)
    client = app.test_client(use_cookies=False)  # the cookie as the fuzzer sends it
    assert client.get("/api/me", headers=headers).get_json() == {"username": "vic"}
    assert client.get("/profile", headers=headers).status_code == 200
    assert client.get("/api/me").status_code == 401


def test_an_api_key_a_row_holds_is_sent_as_a_bearer_token_read_after_each_setup(
    tmp_path: Any,
) -> None:
    from fuzzer import stored_token
    from fuzzer.errors import TargetSetupError
    from fuzzer.init.factory import load_factory
    from fuzzer.init.plan import Plan
    from fuzzer.init.setup.credentials import plan_credentials
    from fuzzer.init.setup.seeding import read_all_rows

    url = f"sqlite:///{tmp_path}/kudos.db"
    _, app = _built("tryout_kudos", url)
    app.test_cli_runner().invoke(args=["load-fixtures"])  # random keys, printed
    plan = Plan(load_factory("targets.tryout_kudos:create_app"), "kudos")
    assert plan_credentials(app, plan, read_all_rows({"default": url}), [])
    assert plan.identities == [  # named by the member each key belongs to
        'Identity("mara", headers=stored_token("api_keys.key", 1))',
        'Identity("tomas", headers=stored_token("api_keys.key", 2))',
        'Identity("anonymous")',
    ]
    with app.app_context():
        headers = stored_token("api_keys.key", 2)(app)
        assert headers["Authorization"].startswith("Bearer ")
        with pytest.raises(TargetSetupError, match=r"setup made no such row"):
            stored_token("api_keys.key", 9)(app)
        with pytest.raises(TargetSetupError, match=r"no table 'keys'"):
            stored_token("keys.key", 1)(app)
    assert app.test_client().get("/api/me", headers=headers).get_json()["handle"] == "tomas"
    assert app.test_client().get("/api/me").status_code == 401
