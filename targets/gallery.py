"""A photo site of 33 endpoints, mostly reads, and one plain counter race.

The production story: ``POST /photos/<id>/flag`` lets a user report a photo; the view
loads the photo and does ``photo.flags += 1``, which the ORM sends as
``UPDATE photos SET flags = <the value computed in Python>``. Two users reporting the
same photo at once both read 0 flags and both write 1: a report is lost (a
``lost-update``). Around it sit thirty read endpoints (lists, details, counts,
searches over photos, albums, users, comments and tags) and a comment form, as in a
real app: the race is one pair among hundreds.

The fixed twin increments in the database: ``UPDATE photos SET flags = flags + 1``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, abort, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import ForeignKey, String, func, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Identity, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)

NAMES = ["uma", "vic", "wes"]


class User(db.Model):  # type: ignore[name-defined]
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)


class Album(db.Model):  # type: ignore[name-defined]
    __tablename__ = "albums"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(80))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))


class Photo(db.Model):  # type: ignore[name-defined]
    __tablename__ = "photos"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(80))
    album_id: Mapped[int] = mapped_column(ForeignKey("albums.id"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    flags: Mapped[int] = mapped_column(default=0)


class Comment(db.Model):  # type: ignore[name-defined]
    __tablename__ = "comments"
    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(String(200))


class Tag(db.Model):  # type: ignore[name-defined]
    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id"))
    name: Mapped[str] = mapped_column(String(40))


MODELS: dict[str, Any] = {
    "users": User,
    "albums": Album,
    "photos": Photo,
    "comments": Comment,
    "tags": Tag,
}


def _row(obj: Any) -> dict[str, Any]:
    return {c.name: getattr(obj, c.name) for c in obj.__table__.columns}


def create_app(database_url: str, *, atomic: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    def me() -> User:
        name = request.headers.get("X-User")
        found = db.session.execute(select(User).filter_by(name=name)).scalar_one_or_none()
        if found is None:
            abort(401)
        return found

    def add_reads(table: str, model: Any) -> None:
        """Five read views per table: list, detail, count, latest, first page."""

        def listing() -> Any:
            return jsonify([_row(o) for o in db.session.execute(select(model)).scalars()])

        def detail(key: int) -> Any:
            obj = db.session.get(model, key)
            if obj is None:
                abort(404)
            return jsonify(_row(obj))

        def count() -> Any:
            return jsonify(count=db.session.execute(select(func.count(model.id))).scalar_one())

        def latest() -> Any:
            obj = db.session.execute(select(model).order_by(model.id.desc())).scalars().first()
            return jsonify(_row(obj) if obj is not None else None)

        def page() -> Any:
            rows = db.session.execute(select(model).order_by(model.id).limit(2)).scalars()
            return jsonify([_row(o) for o in rows])

        views: list[tuple[str, Callable[..., Any]]] = [
            (f"/{table}", listing),
            (f"/{table}/<int:key>", detail),
            (f"/{table}/count", count),
            (f"/{table}/latest", latest),
            (f"/{table}/page", page),
        ]
        for rule, view in views:
            app.add_url_rule(rule, f"{table}_{view.__name__}", view)

    for table, model in MODELS.items():
        add_reads(table, model)

    @app.get("/albums/<int:key>/photos")
    def album_photos(key: int) -> Any:
        rows = db.session.execute(select(Photo).filter_by(album_id=key)).scalars()
        return jsonify([_row(p) for p in rows])

    @app.get("/photos/<int:key>/comments")
    def photo_comments(key: int) -> Any:
        rows = db.session.execute(select(Comment).filter_by(photo_id=key)).scalars()
        return jsonify([_row(c) for c in rows])

    @app.get("/photos/<int:key>/tags")
    def photo_tags(key: int) -> Any:
        rows = db.session.execute(select(Tag.name).filter_by(photo_id=key)).scalars()
        return jsonify(sorted(rows))

    @app.get("/users/<int:key>/photos")
    def user_photos(key: int) -> Any:
        rows = db.session.execute(select(Photo).filter_by(owner_id=key)).scalars()
        return jsonify([_row(p) for p in rows])

    @app.get("/search")
    def search() -> Any:
        word = request.args.get("q", "")
        rows = db.session.execute(select(Photo).where(Photo.title.contains(word))).scalars()
        return jsonify([p.id for p in rows])

    @app.get("/me")
    def whoami() -> Any:
        return jsonify(_row(me()))

    @app.get("/flagged")
    def flagged() -> Any:
        rows = db.session.execute(select(Photo.id).where(Photo.flags > 0)).scalars()
        return jsonify(sorted(rows))

    @app.post("/photos/<int:key>/comments")
    def comment(key: int) -> Any:
        author = me()
        if db.session.get(Photo, key) is None:
            abort(404)
        db.session.add(Comment(photo_id=key, author_id=author.id, text="nice"))
        db.session.commit()
        return jsonify(commented=key), 201

    @app.post("/photos/<int:key>/flag")
    def flag(key: int) -> Any:
        me()
        photo = db.session.get(Photo, key)
        if photo is None:
            abort(404)
        if atomic:
            db.session.execute(update(Photo).where(Photo.id == key).values(flags=Photo.flags + 1))
        else:
            photo.flags += 1
        db.session.commit()
        return jsonify(flagged=key)

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, atomic=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all(User(id=k + 1, name=name) for k, name in enumerate(NAMES))
    db.session.commit()  # the rows the others' foreign keys name, first
    db.session.add_all(
        [Album(id=1, title="summer", owner_id=1), Album(id=2, title="city", owner_id=2)]
    )
    db.session.add_all(
        Photo(id=k, title=title, album_id=1 + k % 2, owner_id=1 + k % 3)
        for k, title in enumerate(["beach", "bridge", "dunes", "tower"], start=1)
    )
    db.session.commit()
    # no explicit key where requests insert: a PostgreSQL sequence would not know it
    db.session.add_all([Comment(photo_id=1, author_id=2, text="wow")])
    db.session.add_all([Tag(id=1, photo_id=1, name="sea"), Tag(id=2, photo_id=2, name="steel")])
    db.session.commit()


IDENTITIES = [Identity(name, headers={"X-User": name}) for name in NAMES]
KEYS = st.integers(1, 3)


def _endpoints() -> list[Endpoint]:
    reads = []
    for table in MODELS:
        reads += [
            Endpoint("GET", f"/{table}"),
            Endpoint("GET", KEYS.map(f"/{table}/{{}}".format), name=f"GET /{table}/<id>"),
            Endpoint("GET", f"/{table}/count"),
            Endpoint("GET", f"/{table}/latest"),
            Endpoint("GET", f"/{table}/page"),
        ]
    return [
        *reads,
        Endpoint("GET", KEYS.map("/albums/{}/photos".format), name="GET /albums/<id>/photos"),
        Endpoint("GET", KEYS.map("/photos/{}/comments".format), name="GET /photos/<id>/comments"),
        Endpoint("GET", KEYS.map("/photos/{}/tags".format), name="GET /photos/<id>/tags"),
        Endpoint("GET", KEYS.map("/users/{}/photos".format), name="GET /users/<id>/photos"),
        Endpoint("GET", "/search", params={"q": st.sampled_from(["b", "e"])}),
        Endpoint("GET", "/me"),
        Endpoint("GET", "/flagged"),
        Endpoint("POST", KEYS.map("/photos/{}/comments".format), name="POST /photos/<id>/comments"),
        Endpoint("POST", KEYS.map("/photos/{}/flag".format), name="POST /photos/<id>/flag"),
    ]


ENDPOINTS = _endpoints()

buggy = Target(
    name="gallery",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    identities=IDENTITIES,
    max_requests=2,
    expected_findings=frozenset({"lost-update"}),
    description="33 endpoints, mostly reads; photo.flags += 1 loses a report",
)

fixed = Target(
    name="gallery-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    identities=IDENTITIES,
    max_requests=2,
    description="the flag counter incremented in the database",
)
