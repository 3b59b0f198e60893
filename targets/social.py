"""Follow behind a ``before_request`` stamp: a double click on "follow" answers 500.

The production story, as Flask-Login apps write it: a ``before_request`` hook loads
the signed-in user and stamps ``users.last_seen``, then commits, on every request.
``POST /follow/<name>`` then looks the other user up, refuses to follow oneself,
checks whether the follow exists and inserts it. The ``follows`` table has a unique
key on (follower, followed). Two clicks of one user overlap: both checks find no
follow, both insert, and the second insert fails with an ``IntegrityError``: a 500
that no serial order gives (the second click alone answers "already following").

Every request writes the stamp first, the same way: a search that yields at a
request's first write lands on the stamp, seven statements before the check that
races. ``DELETE /follow/<name>`` (unfollow) and the reads are bystanders.

The fixed twin treats the unique key as the check: an ``IntegrityError`` on the
insert rolls back and answers as "already following" does.
"""

from __future__ import annotations

import datetime
from typing import Any

from flask import Flask, abort, g, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import DateTime, ForeignKey, String, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Identity, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)

NAMES = ["alice", "bob", "carol"]


class User(db.Model):  # type: ignore[name-defined]
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    last_seen: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)


class Follow(db.Model):  # type: ignore[name-defined]
    __tablename__ = "follows"
    __table_args__ = (UniqueConstraint("follower_id", "followed_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    follower_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    followed_id: Mapped[int] = mapped_column(ForeignKey("users.id"))


def now() -> datetime.datetime:
    """The app's clock, fixed: a replay compares every statement's parameters, and a real
    app's ``datetime.now()`` stamp differs on every run (its column is ignored anyway)."""
    return datetime.datetime(2026, 1, 1, 12, 0)


def create_app(database_url: str, *, unique_is_the_check: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    @app.before_request
    def stamp() -> None:
        name = request.headers.get("X-User")
        g.user = db.session.execute(select(User).filter_by(name=name)).scalar_one_or_none()
        if g.user is not None:
            g.user.last_seen = now()
            db.session.commit()

    def other(name: str) -> User:
        if g.user is None:
            abort(401)
        user = db.session.execute(select(User).filter_by(name=name)).scalar_one_or_none()
        if user is None:
            abort(404)
        return user

    def existing(user: User) -> Follow | None:
        query = select(Follow).filter_by(follower_id=g.user.id, followed_id=user.id)
        return db.session.execute(query).scalar_one_or_none()

    @app.post("/follow/<name>")
    def follow(name: str) -> Any:
        user = other(name)
        if user.id == g.user.id:
            return jsonify(error="you cannot follow yourself"), 400
        if existing(user) is not None:
            return jsonify(following=name, new=False)
        db.session.add(Follow(follower_id=g.user.id, followed_id=user.id))
        try:
            db.session.commit()
        except IntegrityError:
            if not unique_is_the_check:
                raise
            db.session.rollback()
            return jsonify(following=name, new=False)
        return jsonify(following=name, new=True)

    @app.delete("/follow/<name>")
    def unfollow(name: str) -> Any:
        user = other(name)
        found = existing(user)
        if found is not None:
            db.session.delete(found)
            db.session.commit()
        return jsonify(unfollowed=name)

    @app.get("/users/<name>/followers")
    def followers(name: str) -> Any:
        user = other(name)
        query = select(User.name).join(Follow, Follow.follower_id == User.id)
        rows = db.session.execute(query.where(Follow.followed_id == user.id)).scalars()
        return jsonify(sorted(rows))

    @app.get("/me")
    def me() -> Any:
        if g.user is None:
            abort(401)
        return jsonify(name=g.user.name)

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, unique_is_the_check=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all(User(id=k + 1, name=name) for k, name in enumerate(NAMES))
    db.session.commit()


IDENTITIES = [Identity(name, headers={"X-User": name}) for name in NAMES]
WHO = st.sampled_from(NAMES)

ENDPOINTS = [
    Endpoint("GET", "/me"),
    Endpoint("GET", WHO.map("/users/{}/followers".format)),
    Endpoint("POST", WHO.map("/follow/{}".format)),
    Endpoint("DELETE", WHO.map("/follow/{}".format)),
]

buggy = Target(
    name="social",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    identities=IDENTITIES,
    ignore_columns=frozenset({"users.last_seen"}),
    max_requests=2,
    expected_findings=frozenset({"concurrency-error"}),
    description="a before_request stamp, then check-then-insert of a follow: IntegrityError",
)

fixed = Target(
    name="social-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    identities=IDENTITIES,
    ignore_columns=frozenset({"users.last_seen"}),
    max_requests=2,
    description="the unique key is the check: an IntegrityError answers 'already following'",
)
