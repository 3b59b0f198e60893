"""A journal with pages for people (Flask-Login, a login form) and a JSON API for
scripts: ``POST /api/tokens`` with HTTP Basic ``username:password`` answers ``{"token":
…}``, and the API's endpoints want ``Authorization: Bearer <token>`` (401 without, a
session cookie is not enough). The user model has no method that issues a token: only
the endpoint does. ``fuzzer init`` signs its identities in with a session for the pages
and asks the token endpoint for their tokens, with the password the seed's code sets.

The planted race: ``POST /api/entries/<int:entry_id>/star`` reads the entry's stars,
adds one in Python and writes it back: two stars at once count one (lost-update).
``create_app(fixed=True)`` is the fixed twin: the star added in SQL.
"""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa
from flask import Flask, abort, jsonify, request
from flask_login import LoginManager, UserMixin, current_user, login_required
from flask_sqlalchemy import SQLAlchemy
from werkzeug.security import check_password_hash, generate_password_hash

db = SQLAlchemy()
login = LoginManager()


class Writer(UserMixin, db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(40), unique=True, nullable=False)
    password_hash = db.Column(db.String(256), nullable=False)
    api_token = db.Column(db.String(64), unique=True)


class Entry(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    writer_id = db.Column(db.Integer, db.ForeignKey("writer.id"), nullable=False)
    text = db.Column(db.String(200), nullable=False)
    stars = db.Column(db.Integer, nullable=False, default=0)


@login.user_loader
def load_user(user_id: str) -> Writer | None:
    return db.session.get(Writer, int(user_id))


def _api_writer() -> Writer:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    writer = (
        db.session.scalar(sa.select(Writer).where(Writer.api_token == token)) if token else None
    )
    if scheme != "Bearer" or writer is None:
        abort(401)
    return writer


def create_app(fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite:///journal.db", SECRET_KEY="journal")
    db.init_app(app)
    login.init_app(app)

    @app.cli.command("seed")
    def seed() -> None:
        for name in ("ida", "jon"):
            digest = generate_password_hash("journal-pass", "pbkdf2:sha256:1000")
            writer = Writer(username=name, password_hash=digest)
            db.session.add(writer)
            db.session.flush()
            db.session.add(Entry(writer_id=writer.id, text=f"{name}'s first entry"))
        db.session.commit()

    @app.get("/entries")
    @login_required
    def entries() -> Any:
        mine = sa.select(Entry).where(Entry.writer_id == current_user.id)
        return jsonify([e.text for e in db.session.scalars(mine)])

    @app.post("/api/tokens")
    def tokens() -> Any:
        given = request.authorization
        writer = db.session.scalar(
            sa.select(Writer).where(Writer.username == (given.username if given else None))
        )
        if given is None or writer is None:
            abort(401)
        if not check_password_hash(writer.password_hash, given.password or ""):
            abort(401)
        writer.api_token = secrets.token_hex(16)
        db.session.commit()
        return jsonify(token=writer.api_token)

    @app.get("/api/entries")
    def api_entries() -> Any:
        _api_writer()
        return jsonify(
            [{"id": e.id, "stars": e.stars} for e in db.session.scalars(sa.select(Entry))]
        )

    @app.post("/api/entries/<int:entry_id>/star")
    def star(entry_id: int) -> Any:
        _api_writer()
        entry = db.get_or_404(Entry, entry_id)
        if fixed:
            db.session.execute(
                sa.update(Entry).where(Entry.id == entry.id).values(stars=Entry.stars + 1)
            )
        else:
            entry.stars = entry.stars + 1
        db.session.commit()
        return jsonify(ok=True)

    return app
