"""Get-or-create on a unique column: two bookmarks create the same new tag.

The production story: a bookmarking app files every bookmark under a tag, and tag
names are unique (a unique constraint on ``tags.name``). ``POST /bookmarks`` uses the
classic helper: look the tag up by name, create it if it is missing, then save the
bookmark. When two people bookmark under a brand-new tag at the same time, both
look it up, both miss, both insert it: the second INSERT violates the unique
constraint, ``IntegrityError`` escapes, and the user gets a 500. One after the
other, the second request finds the tag and succeeds. That is a
``concurrency-error``. (Without the constraint it would be a ``duplicate-insert``,
see ``targets.jobs``.)

The fixed twin lets the constraint decide: when its insert loses the race
(``IntegrityError``) it rolls the whole transaction back and runs it again, which
now finds the winner's tag; both requests succeed. (Committing the tag in a
transaction of its own first would not do: a reader could then see the new tag
without its bookmark, a state no serial order shows, and the fuzzer says so.)
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import Column, ForeignKey, Integer, String, func, select
from sqlalchemy.exc import IntegrityError

from fuzzer import Endpoint, Target

# Models in the style SQLAlchemy 1.4 with Flask-SQLAlchemy 2.5 and SQLAlchemy 2 with
# Flask-SQLAlchemy 3 both run: CI runs this target on the oldest supported stack too.
db = SQLAlchemy()


class Tag(db.Model):  # type: ignore[name-defined]
    __tablename__ = "tags"
    id = Column(Integer, primary_key=True)
    name = Column(String(40), nullable=False, unique=True)


class Bookmark(db.Model):  # type: ignore[name-defined]
    __tablename__ = "bookmarks"
    id = Column(Integer, primary_key=True)
    url = Column(String(200), nullable=False)
    tag_id = Column(Integer, ForeignKey("tags.id"), nullable=False)


def find_tag(name: str) -> Tag | None:
    return db.session.execute(select(Tag).where(Tag.name == name)).scalar_one_or_none()


def get_or_create_tag(name: str) -> Tag:
    """The classic helper: fine alone, wrong under concurrency."""
    tag = find_tag(name)
    if tag is None:
        tag = Tag(name=name)
        db.session.add(tag)
        db.session.flush()  # the INSERT: IntegrityError if another request just made it
    return tag


def create_app(database_url: str, *, retry: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    def save(data: dict[str, Any]) -> Bookmark:
        tag = get_or_create_tag(data["tag"])
        bookmark = Bookmark(url=data["url"], tag_id=tag.id)
        db.session.add(bookmark)
        db.session.commit()
        return bookmark

    @app.post("/bookmarks")
    def add_bookmark() -> Any:
        data = request.get_json()
        if not retry:
            bookmark = save(data)
        else:
            try:
                bookmark = save(data)
            except IntegrityError:  # another request created the tag first:
                db.session.rollback()  # start over, and this time find it
                bookmark = save(data)
        return jsonify(id=bookmark.id, url=data["url"], tag=data["tag"]), 201

    @app.get("/tags")
    def tags() -> Any:
        rows: Any = db.session.execute(
            select(Tag.name, func.count(Bookmark.id))
            .join(Bookmark, Bookmark.tag_id == Tag.id, isouter=True)
            .group_by(Tag.name)
            .order_by(Tag.name)
        ).all()
        return jsonify({name: count for name, count in rows})

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, retry=True)


def setup(app: Flask) -> None:
    db.create_all()
    python = Tag(name="python")  # generated keys, as the app makes them (on PostgreSQL
    db.session.add(python)  # an explicit id would leave the sequence behind)
    db.session.flush()  # the tag first: the bookmark's foreign key refers to it
    db.session.add(Bookmark(url="https://docs.python.org", tag_id=python.id))
    db.session.commit()


ENDPOINTS = [
    Endpoint(
        "POST",
        "/bookmarks",
        json=st.fixed_dictionaries(
            {
                "url": st.sampled_from(["https://trio.readthedocs.io", "https://sqlalchemy.org"]),
                "tag": st.sampled_from(["async", "python", "databases"]),
            }
        ),
    ),
    Endpoint("GET", "/tags"),
]

buggy = Target(
    name="tags",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    expected_findings=frozenset({"concurrency-error"}),
    description="get-or-create on a unique column: SELECT, then INSERT",
)

fixed = Target(
    name="tags-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    description="on IntegrityError, roll back and run the transaction again",
)
