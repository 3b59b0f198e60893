"""A shop laid out like the cookiecutter-flask template: no seed command and no seed
function, only the test suite's own helpers: ``tests/conftest.py`` with pytest fixtures
(``app`` and ``db`` for the tests' own app and tables, ``users`` and ``item`` that make
rows through ``tests/factories.py``), and ``factories.create_user``. A user signs in
only once activated (``active``, which the factories set): rows made from the models
(``fill_tables``) would give users the app's user loader refuses. ``fuzzer init`` tries
the fixtures and the helpers as setup candidates, keeps what makes users and items, and
says what each made.

The planted race: ``POST /items/<int:item_id>/buy`` reads the stock, checks there is
one left and writes the count back minus one, computed in Python, then records the
purchase: two buyers of the last one both get it (limit-overrun, lost-update).
``create_app(fixed=True)`` is the fixed twin: the stock taken with ``UPDATE … WHERE
stock > 0``, the purchase recorded only if it did.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify
from flask_login import LoginManager, UserMixin, current_user, login_required
from flask_sqlalchemy import SQLAlchemy
from werkzeug.security import generate_password_hash

db = SQLAlchemy()
login = LoginManager()


class User(UserMixin, db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(40), unique=True, nullable=False)
    password_hash = db.Column(db.String(256), nullable=False)
    active = db.Column(db.Boolean, nullable=False, default=False)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password, "pbkdf2:sha256:1000")


class Item(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False)
    stock = db.Column(db.Integer, nullable=False)


class Purchase(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("user.id"), nullable=False)
    item_id = db.Column(db.Integer, db.ForeignKey("item.id"), nullable=False)


@login.user_loader
def load_user(user_id: str) -> User | None:
    user = db.session.get(User, int(user_id))
    return user if user is not None and user.active else None


def create_app(fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite:///helpers.db", SECRET_KEY="helpers")
    db.init_app(app)
    login.init_app(app)

    @app.post("/items/<int:item_id>/buy")
    @login_required
    def buy(item_id: int) -> Any:
        item = db.get_or_404(Item, item_id)
        if fixed:
            taken = db.session.execute(
                sa.update(Item)
                .where(Item.id == item.id, Item.stock > 0)
                .values(stock=Item.stock - 1)
            )
            if not taken.rowcount:  # type: ignore[attr-defined]
                db.session.rollback()
                return jsonify(error="sold out"), 409
        else:
            if item.stock < 1:
                return jsonify(error="sold out"), 409
            item.stock = item.stock - 1
        db.session.add(Purchase(user_id=current_user.id, item_id=item.id))
        db.session.commit()
        return jsonify(bought=item.name), 201

    @app.get("/items/<int:item_id>")
    def show(item_id: int) -> Any:
        item = db.get_or_404(Item, item_id)
        return jsonify(name=item.name, stock=item.stock)

    return app
