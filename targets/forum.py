"""A read tracker after two commits: opening a topic twice at once answers 500.

The production story, a forum's topic page: a ``before_request`` hook stamps the
signed-in user's ``last_seen`` and commits (one); the view counts the visit with an
atomic ``UPDATE topics SET views = views + 1`` and commits (two); then it marks the
topic read for the user with a get-or-create of a ``topic_reads`` row, unique on
(user, topic), and commits (three). Two tabs of one user open the topic at once:
both find no ``topic_reads`` row after their second commit, both insert it, and the
second insert fails with an ``IntegrityError``: a 500 no serial order gives.

The race is in the request's third transaction: yields placed in its first one (the
stamp) or before its first write (the counter) never reach it.

The fixed twin lets the unique key decide: when it refuses the insert, the other tab
marked the topic first, and this visit was not the first.
"""

from __future__ import annotations

import datetime
from typing import Any

from flask import Flask, abort, g, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import DateTime, ForeignKey, String, UniqueConstraint, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Identity, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)

NAMES = ["alice", "bob"]


class User(db.Model):  # type: ignore[name-defined]
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    last_seen: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)


class Topic(db.Model):  # type: ignore[name-defined]
    __tablename__ = "topics"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(80))
    views: Mapped[int] = mapped_column(default=0)


class TopicRead(db.Model):  # type: ignore[name-defined]
    __tablename__ = "topic_reads"
    __table_args__ = (UniqueConstraint("user_id", "topic_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id"))


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

    def read_of(topic_id: int) -> TopicRead | None:
        query = select(TopicRead).filter_by(user_id=g.user.id, topic_id=topic_id)
        return db.session.execute(query).scalar_one_or_none()

    @app.get("/topics/<int:topic_id>")
    def show(topic_id: int) -> Any:
        topic = db.session.get(Topic, topic_id)
        if topic is None or g.user is None:
            abort(404)
        title = topic.title
        db.session.execute(update(Topic).where(Topic.id == topic_id).values(views=Topic.views + 1))
        db.session.commit()
        first_visit = read_of(topic_id) is None
        if first_visit:
            db.session.add(TopicRead(user_id=g.user.id, topic_id=topic_id))
            try:
                db.session.commit()
            except IntegrityError:
                if not unique_is_the_check:
                    raise
                db.session.rollback()
                first_visit = False  # the other tab marked it first
        return jsonify(title=title, first_visit=first_visit)

    @app.get("/topics")
    def topics() -> Any:
        rows = db.session.execute(select(Topic.id, Topic.title).order_by(Topic.id)).all()
        return jsonify([{"id": i, "title": t} for i, t in rows])

    @app.get("/unread")
    def unread() -> Any:
        if g.user is None:
            abort(401)
        seen = select(TopicRead.topic_id).filter_by(user_id=g.user.id)
        rows = db.session.execute(select(Topic.id).where(Topic.id.not_in(seen))).scalars()
        return jsonify(sorted(rows))

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, unique_is_the_check=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all(User(id=k + 1, name=name) for k, name in enumerate(NAMES))
    db.session.add_all([Topic(id=1, title="welcome"), Topic(id=2, title="rules")])
    db.session.commit()


IDENTITIES = [Identity(name, headers={"X-User": name}) for name in NAMES]

ENDPOINTS = [
    Endpoint("GET", "/topics"),
    Endpoint("GET", "/unread"),
    Endpoint("GET", st.sampled_from(["/topics/1", "/topics/2"])),
]

buggy = Target(
    name="forum",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    identities=IDENTITIES,
    ignore_columns=frozenset({"users.last_seen"}),
    max_requests=2,
    expected_findings=frozenset({"concurrency-error"}),
    description="three commits per request, a get-or-create of a read marker after the second",
)

fixed = Target(
    name="forum-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    identities=IDENTITIES,
    ignore_columns=frozenset({"users.last_seen"}),
    max_requests=2,
    description="the unique key decides: refused means another tab marked the topic first",
)
