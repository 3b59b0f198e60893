"""API tokens from ``secrets``: two concurrent token requests, and one token is dead at once.

Built the way real JSON APIs are, with values that vary on their own: tokens from
``secrets``, ``time()`` floats in a column and in answers, event references from
``secrets.token_urlsafe``.

The production story: ``POST /users/1/token`` is "get or create": it loads the user,
and if the user has no token yet it makes one (``secrets.token_hex``), stamps it with
``time.time()``, stores it and answers it. Two first calls at once both see no token,
both make one, and the second commit overwrites the first: the first caller holds a
token that is dead the moment it gets it (the stored token is the other).

Comparing the tokens as values makes every example unjudgeable (they differ between
serial runs); ignoring them hides the race. The oracle masks them and keeps what they
mean: in every serial run the answered token *is* ``users.token``, so an answer whose
token is not the stored one is a finding (a relation, DESIGN.md §11).

The fixed twin sets the token only where there is none
(``UPDATE … WHERE token IS NULL``, the first statement of its transaction), commits,
and answers the token stored.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from flask import Flask, abort, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import Double, ForeignKey, String, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class User(db.Model):  # type: ignore[name-defined]
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    token_issued: Mapped[float | None] = mapped_column(Double, nullable=True)


class Event(db.Model):  # type: ignore[name-defined]
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(20))
    ref: Mapped[str] = mapped_column(String(40))  # secrets.token_urlsafe
    at: Mapped[float] = mapped_column(Double)  # time.time()


def create_app(database_url: str, *, conditional: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    @app.post("/users/<int:user_id>/token")
    def token(user_id: int) -> Any:
        if conditional:  # the fix: only where there is none, then answer what is stored
            db.session.execute(
                update(User)
                .where(User.id == user_id, User.token.is_(None))
                .values(token=secrets.token_hex(16), token_issued=time.time())
            )
            db.session.commit()
            user = db.session.get(User, user_id)
            if user is None:
                abort(404)
        else:
            user = db.session.get(User, user_id)
            if user is None:
                abort(404)
            if user.token is None:  # get or create
                user.token = secrets.token_hex(16)
                user.token_issued = time.time()
                db.session.commit()
        return jsonify(token=user.token, issued=user.token_issued)

    @app.get("/users/<int:user_id>")
    def show(user_id: int) -> Any:
        user = db.session.get(User, user_id)
        if user is None:
            abort(404)
        return jsonify(name=user.name, has_token=user.token is not None)

    @app.post("/users/<int:user_id>/events")
    def record(user_id: int) -> Any:
        event = Event(
            user_id=user_id,
            kind=request.get_json()["kind"],
            ref=secrets.token_urlsafe(12),
            at=time.time(),
        )
        db.session.add(event)
        db.session.commit()
        return jsonify(id=event.id, ref=event.ref, at=event.at), 201

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, conditional=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add(User(name="ann"))
    db.session.commit()


ENDPOINTS = [
    Endpoint("POST", "/users/1/token"),
    Endpoint("GET", "/users/1"),
    Endpoint(
        "POST",
        "/users/1/events",
        json=st.fixed_dictionaries({"kind": st.sampled_from(["login", "view"])}),
    ),
]

buggy = Target(
    name="apitoken",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    expected_findings=frozenset({"stale-read"}),
    description="get-or-create of a random token: two concurrent calls, one token dead",
)

fixed = Target(
    name="apitoken-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    description="UPDATE … WHERE token IS NULL, then answer the stored token",
)
