"""Sign-up on server-rendered pages: a duplicate user when two sign-ups of one name race.

Built the way real Flask apps are, with everything that varies on its own:

* every page renders a fresh CSRF token (``csrf_token()`` of Flask-WTF's
  ``CSRFProtect``, rendered although the checks are off, as apps do in tests);
* the user row a sign-up creates holds a salted password hash
  (``werkzeug.security.generate_password_hash``: a new salt on every call);
* a sign-up redirects to ``/welcome?name=…&t=<random token>`` (``secrets``), and logs
  the new user in with Flask-Login.

The production story: ``POST /signup`` validates a Flask-WTF form whose
``validate_username`` looks the name up, then inserts the user. Two sign-ups of one
name both pass the lookup before either inserts: two users named ``ann``.

The fixed twin has a unique constraint on ``username`` and turns the
``IntegrityError`` of the second insert into the same form error the lookup gives.

The spec declares no ignore lists: the oracle masks the CSRF token's span of each
page, ``users.password_hash`` and the redirect's ``t`` on its own (DESIGN.md §11).
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask, redirect, render_template_string, url_for
from flask_login import LoginManager, UserMixin, login_user
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect, FlaskForm
from hypothesis import strategies as st
from sqlalchemy import String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from werkzeug.security import generate_password_hash
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length, ValidationError

from fuzzer import Endpoint, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class User(UserMixin, db.Model):  # type: ignore[name-defined]
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(200))


class UniqueUser(UserMixin, db.Model):  # type: ignore[name-defined]
    """The fixed twin's table: the same, with a unique username."""

    __tablename__ = "members"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))


TAKEN = "Please use a different username."

PAGE = """<!doctype html>
<html><head><title>{{ title }}</title></head><body>
<form method="post" action="/signup">
  <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
  {% if form %}{% for error in form.username.errors %}<p class="error">{{ error }}</p>{% endfor %}
  {% endif %}<input name="username"> <input name="password" type="password">
  <button>Sign up</button>
</form>
<p>{{ count }} members</p>
<ul>{% for name in names %}<li>{{ name }}</li>{% endfor %}</ul>
</body></html>"""


def create_app(database_url: str, *, unique: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url,
        SECRET_KEY="signup-secret",
        WTF_CSRF_ENABLED=False,  # the token is rendered, not checked (as in tests)
    )
    db.init_app(app)
    CSRFProtect(app)
    login = LoginManager(app)
    model: Any = UniqueUser if unique else User

    @login.user_loader
    def load(user_id: str) -> Any:
        return db.session.get(model, int(user_id))

    class SignupForm(FlaskForm):
        username = StringField("Username", validators=[DataRequired(), Length(1, 32)])
        password = PasswordField("Password", validators=[DataRequired()])

        def validate_username(self, field: Any) -> None:
            if db.session.scalar(select(model).where(model.username == field.data)):
                raise ValidationError(TAKEN)

    def page(title: str, form: Any = None, status: int = 200) -> Any:
        names = db.session.scalars(select(model.username).order_by(model.username)).all()
        html = render_template_string(PAGE, title=title, form=form, names=names, count=len(names))
        return html, status

    @app.get("/")
    def home() -> Any:
        return page("Welcome")

    @app.post("/signup")
    def signup() -> Any:
        form = SignupForm()
        if not form.validate_on_submit():
            return page("Sign up", form)
        user = model(
            username=form.username.data,
            # salted: a new hash on every call (few iterations: the story is the salt)
            password_hash=generate_password_hash(form.password.data, method="pbkdf2:sha256:1000"),
        )
        db.session.add(user)
        try:
            db.session.commit()
        except IntegrityError:  # the fix: the database says what the lookup could not
            db.session.rollback()
            form.username.errors = [TAKEN]
            return page("Sign up", form)
        login_user(user)
        return redirect(url_for("welcome", name=user.username, t=secrets.token_urlsafe(12)))

    @app.get("/welcome")
    def welcome() -> Any:
        return page("Welcome aboard")

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, unique=True)


def setup(app: Flask) -> None:
    db.create_all()
    for model in (User, UniqueUser):
        db.session.add(model(username="root", password_hash=generate_password_hash("x")))
    db.session.commit()


ENDPOINTS = [
    Endpoint(
        "POST",
        "/signup",
        form=st.fixed_dictionaries(
            {
                "username": st.sampled_from(["ann", "bob"]),
                "password": st.sampled_from(["correct horse", "battery staple"]),
            }
        ),
    ),
    Endpoint("GET", "/"),
]

buggy = Target(
    name="signup",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    expected_findings=frozenset({"duplicate-insert"}),
    description="a Flask-WTF lookup, then an insert: two users of one name",
)

fixed = Target(
    name="signup-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    description="a unique username; the IntegrityError becomes the form's error",
)
