"""An API without Flask-Login whose clients sign in with a token: ``POST /api/tokens``
with HTTP Basic ``username:password`` answers ``{"token": …}`` (kept in the account's
row), and every other endpoint wants ``Authorization: Bearer <token>`` (401 without).
``fuzzer init`` finds no Flask-Login and no page that takes Basic credentials; it asks
the token endpoint for a token with the password the seed's code sets, and proves it
with a page that turns the visitor away.

The planted race: ``POST /api/wallet/topup`` (JSON ``{"amount": …}``) reads the
balance, adds the amount in Python and writes it back: two top-ups at once lose one
(lost-update). ``create_app(fixed=True)`` is the fixed twin: the balance is added in SQL.
"""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa
from flask import Flask, abort, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from werkzeug.security import check_password_hash, generate_password_hash

db = SQLAlchemy()


class Account(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(40), unique=True, nullable=False)
    password_hash = db.Column(db.String(256), nullable=False)
    token = db.Column(db.String(64), unique=True)
    balance = db.Column(db.Integer, nullable=False, default=0)


def _bearer() -> Account:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme != "Bearer" or not token:
        abort(401)
    account = db.session.scalar(sa.select(Account).where(Account.token == token))
    if account is None:
        abort(401)
    return account


def create_app(fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite:///tokens.db")
    db.init_app(app)

    @app.cli.command("seed")
    def seed() -> None:
        for name in ("ann", "bob"):
            digest = generate_password_hash("wallet-pass", "pbkdf2:sha256:1000")
            db.session.add(Account(username=name, password_hash=digest, balance=10))
        db.session.commit()

    @app.post("/api/tokens")
    def issue() -> Any:
        given = request.authorization
        account = db.session.scalar(
            sa.select(Account).where(Account.username == (given.username if given else None))
        )
        if given is None or account is None:
            abort(401)
        if not check_password_hash(account.password_hash, given.password or ""):
            abort(401)
        account.token = secrets.token_hex(16)
        db.session.commit()
        return jsonify(token=account.token)

    @app.get("/api/me")
    def me() -> Any:
        account = _bearer()
        return jsonify(username=account.username, balance=account.balance)

    @app.post("/api/wallet/topup")
    def topup() -> Any:
        account = _bearer()
        amount = int((request.get_json() or {}).get("amount", 0))
        if amount < 1:
            return jsonify(error="amount must be positive"), 400
        if fixed:
            db.session.execute(
                sa.update(Account)
                .where(Account.id == account.id)
                .values(balance=Account.balance + amount)
            )
        else:
            account.balance = account.balance + amount
        db.session.commit()
        return jsonify(ok=True)

    return app
