"""A reading list with no seed at all: no command, no seed function, only the models.

``fuzzer init`` makes the rows from the schema (``fill_tables``: user1 and user2 with a
password set through ``User.set_password``, two items, two bookmarks) and signs in as
the users it made.

The planted race: ``POST /items/<int:item_id>/save`` checks that the user has not
saved the item yet, then inserts the bookmark and counts it on the item: a double click
saves it twice (duplicate-insert). ``create_app(fixed=True)`` is the fixed twin: a
unique constraint on (user, item), and the second insert taken as "already saved".
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify
from flask_login import LoginManager, UserMixin, current_user, login_required
from flask_sqlalchemy import SQLAlchemy
from werkzeug.security import check_password_hash, generate_password_hash

db = SQLAlchemy()
login = LoginManager()


class User(UserMixin, db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(40), unique=True, nullable=False)
    password_hash = db.Column(db.String(200), nullable=False)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password, method="pbkdf2:sha256:1000")

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class Item(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(80), nullable=False)
    saves = db.Column(db.Integer, nullable=False, default=0)


class Bookmark(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("user.id"), nullable=False)
    item_id = db.Column(db.Integer, db.ForeignKey("item.id"), nullable=False)


class FixedBookmark(db.Model):  # type: ignore[name-defined]
    """The fixed twin's table: one bookmark per user and item."""

    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("user.id"), nullable=False)
    item_id = db.Column(db.Integer, db.ForeignKey("item.id"), nullable=False)
    __table_args__ = (sa.UniqueConstraint("user_id", "item_id"),)


@login.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


def create_app(fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite:///bookmarks.db", SECRET_KEY="dev")
    db.init_app(app)
    login.init_app(app)
    model = FixedBookmark if fixed else Bookmark

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        found = db.get_or_404(Item, item_id)
        return jsonify(title=found.title, saves=found.saves)

    @app.post("/items/<int:item_id>/save")
    @login_required
    def save(item_id: int) -> Any:
        found = db.get_or_404(Item, item_id)
        mine = sa.select(model).where(model.user_id == current_user.id, model.item_id == item_id)
        if db.session.scalar(mine) is not None:
            return jsonify(saved=False, reason="already saved")
        db.session.add(model(user_id=current_user.id, item_id=found.id))
        try:
            db.session.flush()
        except sa.exc.IntegrityError:
            db.session.rollback()
            return jsonify(saved=False, reason="already saved")
        db.session.execute(sa.update(Item).where(Item.id == item_id).values(saves=Item.saves + 1))
        db.session.commit()
        return jsonify(saved=True)

    return app
