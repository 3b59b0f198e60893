"""A ledger's JSON API behind Flask-Login: accounts are keyed by their numbers (7001,
7002), one per member, and a transfer names two of them in ``source`` and ``target``,
fields that name no column. A number it does not know, or a source that is not the
member's own, answers only "unknown account": no one field's value makes a transfer,
nor does the answer say which field is wrong; two rows of ``account.number``, one in
each field, do. ``flask seed`` makes two members and their accounts.

The planted race: ``POST /api/transfers`` (JSON ``{"source", "target", "cents"}``)
reads the source's balance, checks it covers the amount, then writes both balances
computed in Python: two overlapping transfers out of one account both pass the check
(lost-update or limit-overrun). ``create_app(fixed=True)`` is the fixed twin: both rows
locked in the order of their numbers, then ``UPDATE … WHERE balance >= ?``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify, request
from flask_login import LoginManager, UserMixin, current_user, login_required
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
login = LoginManager()


class Member(UserMixin, db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(40), unique=True, nullable=False)


class Account(db.Model):  # type: ignore[name-defined]
    number = db.Column(db.Integer, primary_key=True, autoincrement=False)
    member_id = db.Column(db.Integer, db.ForeignKey("member.id"), nullable=False)
    balance = db.Column(db.Integer, nullable=False)


class Entry(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    source = db.Column(db.Integer, db.ForeignKey("account.number"), nullable=False)
    target = db.Column(db.Integer, db.ForeignKey("account.number"), nullable=False)
    cents = db.Column(db.Integer, nullable=False)


@login.user_loader
def load_user(user_id: str) -> Member | None:
    return db.session.get(Member, int(user_id))


def create_app(fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite:///ledger.db", SECRET_KEY="ledger")
    db.init_app(app)
    login.init_app(app)

    @app.cli.command("seed")
    def seed() -> None:
        """Two members, an account of 3 cents each."""
        for number, name in ((7001, "noor"), (7002, "tariq")):
            member = Member(username=name)
            db.session.add(member)
            db.session.flush()
            db.session.add(Account(number=number, member_id=member.id, balance=3))
        db.session.commit()

    @app.get("/api/accounts")
    @login_required
    def accounts() -> Any:
        mine = db.session.scalars(sa.select(Account).where(Account.member_id == current_user.id))
        return jsonify([{"number": a.number, "balance": a.balance} for a in mine])

    @app.post("/api/transfers")
    @login_required
    def transfer() -> Any:
        data = request.get_json(silent=True) or {}
        try:
            numbers = int(data["source"]), int(data["target"])
            cents = int(data.get("cents", 1))
        except (KeyError, TypeError, ValueError):
            return jsonify(error="source, target and cents must be numbers"), 400
        source, target = (db.session.get(Account, n) for n in numbers)
        if source is None or target is None or source.member_id != current_user.id:
            return jsonify(error="unknown account"), 404
        if source.number == target.number or cents < 1:
            return jsonify(error="nothing to move"), 400
        if fixed:
            db.session.scalars(  # both rows locked in one order: no deadlock
                sa.select(Account)
                .where(Account.number.in_(sorted(numbers)))
                .order_by(Account.number)
                .with_for_update()
            ).all()
            taken = db.session.execute(
                sa.update(Account)
                .where(Account.number == source.number, Account.balance >= cents)
                .values(balance=Account.balance - cents)
            )
            if not taken.rowcount:  # type: ignore[attr-defined]
                db.session.rollback()
                return jsonify(error="not enough money"), 409
            db.session.execute(
                sa.update(Account)
                .where(Account.number == target.number)
                .values(balance=Account.balance + cents)
            )
        else:
            if source.balance < cents:
                return jsonify(error="not enough money"), 409
            source.balance = source.balance - cents
            target.balance = target.balance + cents
        db.session.add(Entry(source=source.number, target=target.number, cents=cents))
        db.session.commit()
        return jsonify(ok=True), 201

    return app
