"""Transfers between accounts, chosen from a select field whose choices the form
computes when it is made (``TransferForm.__init__`` reads the accounts): the class
holds no choices, and its field names no table (``source``, ``target``). ``fuzzer
init`` makes the form in a request context after setup and draws from the choices it
holds.

The planted race: ``POST /transfer`` checks the source account's balance, then writes
both balances computed in Python: two overlapping transfers out of one account both
pass the check (limit-overrun or lost-update). ``create_app(fixed=True)`` is the fixed
twin: ``UPDATE … SET balance = balance - ? WHERE id = ? AND balance >= ?`` first.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify
from flask_login import LoginManager, UserMixin, login_required
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField
from wtforms.validators import NumberRange

db = SQLAlchemy()
login = LoginManager()


class Owner(UserMixin, db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(40), unique=True, nullable=False)


class Account(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    number = db.Column(db.String(20), unique=True, nullable=False)
    owner_id = db.Column(db.Integer, db.ForeignKey("owner.id"), nullable=False)
    balance = db.Column(db.Integer, nullable=False)


class TransferForm(FlaskForm):
    source = SelectField("From", coerce=int)
    target = SelectField("To", coerce=int)
    amount = IntegerField("Amount", validators=[NumberRange(min=1, max=3)])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        numbers = [(a.id, a.number) for a in db.session.scalars(sa.select(Account))]
        self.source.choices = numbers
        self.target.choices = list(reversed(numbers))


@login.user_loader
def load_user(user_id: str) -> Owner | None:
    return db.session.get(Owner, int(user_id))


def create_app(fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite:///transfers.db", SECRET_KEY="money")
    db.init_app(app)
    login.init_app(app)

    @app.cli.command("sample-data")
    def sample_data() -> None:
        for i, name in enumerate(("ola", "per"), start=1):
            owner = Owner(username=name)
            db.session.add(owner)
            db.session.flush()
            db.session.add(Account(number=f"NO-{i:04}", owner_id=owner.id, balance=3))
        db.session.commit()

    @app.post("/transfer")
    @login_required
    def transfer() -> Any:
        form = TransferForm()
        if not form.validate_on_submit():
            return jsonify(errors=form.errors), 400
        source = db.get_or_404(Account, form.source.data)
        target = db.get_or_404(Account, form.target.data)
        amount = form.amount.data or 0
        if source.id == target.id:
            return jsonify(error="same account"), 400
        if fixed:
            # both rows locked in the order of their keys: two transfers in opposite
            # directions would otherwise each hold one and wait for the other
            first, second = sorted((source.id, target.id))
            db.session.scalars(
                sa.select(Account)
                .where(Account.id.in_((first, second)))
                .order_by(Account.id)
                .with_for_update()
            ).all()
            taken = db.session.execute(
                sa.update(Account)
                .where(Account.id == source.id, Account.balance >= amount)
                .values(balance=Account.balance - amount)
            )
            if not taken.rowcount:  # type: ignore[attr-defined]
                db.session.rollback()
                return jsonify(error="not enough money"), 400
            db.session.execute(
                sa.update(Account)
                .where(Account.id == target.id)
                .values(balance=Account.balance + amount)
            )
            db.session.commit()
            return jsonify(ok=True)
        if source.balance < amount:
            return jsonify(error="not enough money"), 400
        source.balance = source.balance - amount
        target.balance = target.balance + amount
        db.session.commit()
        return jsonify(ok=True)

    return app
