"""A photo-sharing app whose seed is a command with an arbitrary name in a click group.

Its commands are ``flask content init-app`` (creates the roles), ``flask content lorem``
(users and photos; it needs the roles first, so alone it fails) and ``flask content
stats`` (prints, makes nothing): no name says "seed", and which to run shows only in
what each does. ``fuzzer init`` tries each one on a scratch database and keeps
``init-app`` then ``lorem``.

The planted race: ``POST /photo/<int:photo_id>/like`` reads the photo's count and
writes it back plus one, so two overlapping likes count one (lost-update).
``create_app(fixed=True)`` is the fixed twin: ``likes = likes + 1`` in SQL.
"""

from __future__ import annotations

from typing import Any

import click
import sqlalchemy as sa
from flask import Flask, abort, jsonify
from flask.cli import AppGroup
from flask_login import LoginManager, UserMixin, login_required
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
login = LoginManager()


class Role(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(20), unique=True, nullable=False)


class User(UserMixin, db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(40), unique=True, nullable=False)
    role_id = db.Column(db.Integer, db.ForeignKey("role.id"), nullable=False)


class Photo(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(40), nullable=False)
    owner_id = db.Column(db.Integer, db.ForeignKey("user.id"), nullable=False)
    likes = db.Column(db.Integer, nullable=False, default=0)


@login.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


content = AppGroup("content", help="Content of the site.")


@content.command("init-app")
def init_app_command() -> None:
    """Create the roles."""
    db.session.add_all([Role(name="admin"), Role(name="member")])
    db.session.commit()


@content.command("lorem")
@click.option("--count", default=2, help="photos per user")
def lorem(count: int) -> None:
    """Users and their photos, as a demo site has."""
    member = db.session.scalar(sa.select(Role).where(Role.name == "member"))
    if member is None:
        raise click.ClickException("run `flask content init-app` first")
    for name in ("ada", "grace"):
        user = User(username=name, role_id=member.id)
        db.session.add(user)
        db.session.flush()
        for i in range(count):
            db.session.add(Photo(title=f"{name} {i}", owner_id=user.id))
    db.session.commit()


@content.command("stats")
def stats() -> None:
    """How many photos there are."""
    click.echo(db.session.scalar(sa.select(sa.func.count(Photo.id))))


def create_app(fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI="sqlite:///photos.db", SECRET_KEY="photos-development-key"
    )
    db.init_app(app)
    login.init_app(app)
    app.cli.add_command(content)

    @app.get("/photo/<int:photo_id>")
    def show(photo_id: int) -> Any:
        photo = db.get_or_404(Photo, photo_id)
        return jsonify(title=photo.title, likes=photo.likes)

    @app.post("/photo/<int:photo_id>/like")
    @login_required
    def like(photo_id: int) -> Any:
        if fixed:
            done = db.session.execute(
                sa.update(Photo).where(Photo.id == photo_id).values(likes=Photo.likes + 1)
            )
            if not done.rowcount:  # type: ignore[attr-defined]
                abort(404)
            db.session.commit()
            return jsonify(ok=True)
        photo = db.get_or_404(Photo, photo_id)
        photo.likes = photo.likes + 1
        db.session.commit()
        return jsonify(likes=photo.likes)

    return app
