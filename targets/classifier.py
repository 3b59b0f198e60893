"""A nondeterministic classifier in every answer, and a counter that loses updates.

The production story: ``POST /posts`` stores a post, asks a language detector what
language it is in and answers it, then counts the post in ``stats.posts`` by reading
the counter and writing it back plus one. The detector is a model that answers
differently on each call (here: ``random.choice``), so two serial runs of the same
requests answer different languages; the oracle masks ``language`` in the answers of
``POST /posts`` and judges the rest. Two posts at once both read the counter before
either writes it: one post is not counted (a lost update).

The fixed twin counts with ``UPDATE stats SET posts = posts + 1``.
"""

from __future__ import annotations

import random
from typing import Any

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import String, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)

LANGUAGES = ("en", "fr", "de", "es", "it", "nl")


class Post(db.Model):  # type: ignore[name-defined]
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(200))


class Stats(db.Model):  # type: ignore[name-defined]
    __tablename__ = "stats"
    id: Mapped[int] = mapped_column(primary_key=True)
    posts: Mapped[int] = mapped_column(default=0)


def detect_language(text: str) -> str:
    """A stand-in for a statistical detector: not the same answer twice."""
    del text
    return random.choice(LANGUAGES)


def create_app(database_url: str, *, atomic: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    @app.post("/posts")
    def create() -> Any:
        text = request.get_json()["body"]
        if atomic:  # the fix: the database adds one to what it holds
            db.session.execute(update(Stats).where(Stats.id == 1).values(posts=Stats.posts + 1))
        else:
            stats = db.session.scalars(select(Stats).where(Stats.id == 1)).one()
            stats.posts = stats.posts + 1  # read, then write back: a lost update
        post = Post(body=text)
        db.session.add(post)
        db.session.commit()
        return jsonify(id=post.id, language=detect_language(text)), 201

    @app.get("/stats")
    def stats() -> Any:
        stats = db.session.get(Stats, 1)
        return jsonify(posts=stats.posts if stats is not None else 0)

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, atomic=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add(Stats(id=1, posts=0))
    db.session.commit()


ENDPOINTS = [
    Endpoint(
        "POST",
        "/posts",
        json=st.fixed_dictionaries({"body": st.sampled_from(["hello world", "bonjour"])}),
    ),
    Endpoint("GET", "/stats"),
]

buggy = Target(
    name="classifier",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    expected_findings=frozenset({"lost-update"}),
    description="a random classifier in the answer; a read-then-write counter",
)

fixed = Target(
    name="classifier-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    description="UPDATE stats SET posts = posts + 1",
)
