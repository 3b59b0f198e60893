"""Optimistic version counter without handling: two people save the same wiki page.

The production story: the wiki's ``Page`` model has a version column
(SQLAlchemy's ``version_id_col``), so that a save made from a stale copy cannot
silently overwrite a newer one. Every save loads the page, changes the body, records
a revision and commits; the UPDATE says ``WHERE id = ? AND version = ?``. When two
saves overlap, the second UPDATE matches no row (the first one bumped the version)
and SQLAlchemy raises ``StaleDataError``. The protection works, but nobody handles
the exception: the loser of the race gets a 500, where one save after the other
both succeed. That is a ``concurrency-error``.

The fixed twin catches ``StaleDataError``, rolls back and answers 409 Conflict ("the
page changed while you were saving, reload it"): an aborted request that left
nothing behind, which is what the version column is for.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import ForeignKey, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.orm.exc import StaleDataError

from fuzzer import Endpoint, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Page(db.Model):  # type: ignore[name-defined]
    __tablename__ = "pages"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    body: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(nullable=False)
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012

    def to_dict(self) -> dict[str, Any]:
        return {"slug": self.slug, "body": self.body, "version": self.version}


class Revision(db.Model):  # type: ignore[name-defined]
    __tablename__ = "revisions"
    id: Mapped[int] = mapped_column(primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id"))
    version: Mapped[int]
    body: Mapped[str] = mapped_column(Text)


def create_app(database_url: str, *, handle_conflicts: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    def find(slug: str) -> Page | None:
        return db.session.execute(select(Page).where(Page.slug == slug)).scalar_one_or_none()

    @app.get("/pages/<slug>")
    def show(slug: str) -> Any:
        page = find(slug)
        if page is None:
            return jsonify(error="no such page"), 404
        return jsonify(page.to_dict())

    @app.put("/pages/<slug>")
    def save(slug: str) -> Any:
        page = find(slug)
        if page is None:
            return jsonify(error="no such page"), 404
        page.body = request.get_json()["body"]
        db.session.flush()  # UPDATE … WHERE id = ? AND version = ?: bumps the version
        db.session.add(Revision(page_id=page.id, version=page.version, body=page.body))
        result = page.to_dict()
        db.session.commit()
        return jsonify(result)

    if handle_conflicts:  # the buggy app lets StaleDataError become a 500

        @app.errorhandler(StaleDataError)
        def conflict(exc: StaleDataError) -> Any:
            db.session.rollback()
            return jsonify(error="the page changed while you were saving it; reload it"), 409

    @app.get("/pages/<slug>/history")
    def history(slug: str) -> Any:
        page = find(slug)
        if page is None:
            return jsonify(error="no such page"), 404
        revisions = db.session.execute(
            select(Revision.version, Revision.body)
            .where(Revision.page_id == page.id)
            .order_by(Revision.version)
        ).all()
        return jsonify([{"version": v, "body": b} for v, b in revisions])

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, handle_conflicts=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all(
        [
            Page(slug="home", body="Welcome!"),
            Page(slug="faq", body="Ask away."),
        ]
    )
    db.session.commit()


ENDPOINTS = [
    Endpoint(
        "PUT",
        st.sampled_from(["/pages/home", "/pages/faq"]),
        json=st.fixed_dictionaries({"body": st.sampled_from(["Hello", "Hi there", "Bonjour"])}),
        name="PUT /pages/<slug>",
    ),
    Endpoint("GET", st.sampled_from(["/pages/home", "/pages/faq"]), name="GET /pages/<slug>"),
    Endpoint("GET", "/pages/home/history"),
]

buggy = Target(
    name="wiki",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    expected_findings=frozenset({"concurrency-error"}),
    description="a version counter whose StaleDataError nobody handles",
)

fixed = Target(
    name="wiki-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    description="StaleDataError answered with 409 Conflict",
)
