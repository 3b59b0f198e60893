"""A bank whose people sign in by email: the login form's fields are ``email`` and
``password`` and the user table has no username. ``flask seed`` makes two customers.

The planted race: ``POST /withdraw`` (a Flask-WTF form with an ``IntegerField``
amount) checks the balance, then writes the balance minus the amount, computed in
Python: two overlapping withdrawals both pass the check, and one is lost or the
balance goes below what serial runs allow. ``create_app(fixed=True)`` is the fixed
twin: one ``UPDATE … WHERE balance >= amount``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify, redirect
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, IntegerField, PasswordField
from wtforms.validators import DataRequired, NumberRange

db = SQLAlchemy()
login = LoginManager()
login.login_view = "sign_in"


class Customer(UserMixin, db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    email = db.Column(db.String(120), unique=True, nullable=False)
    password_hash = db.Column(db.String(200), nullable=False)
    balance = db.Column(db.Integer, nullable=False, default=0)


class SignInForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


class WithdrawForm(FlaskForm):
    amount = IntegerField("Amount", validators=[DataRequired(), NumberRange(min=1, max=5)])


@login.user_loader
def load_user(user_id: str) -> Customer | None:
    return db.session.get(Customer, int(user_id))


def create_app(fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite:///bank.db", SECRET_KEY="bank-dev")
    db.init_app(app)
    login.init_app(app)

    @app.cli.command("seed")
    def seed() -> None:
        """Two customers with 3 each."""
        for name in ("ana", "ben"):
            hashed = generate_password_hash("pass-" + name, method="pbkdf2:sha256:1000")
            db.session.add(Customer(email=f"{name}@bank.test", password_hash=hashed, balance=3))
        db.session.commit()

    @app.route("/sign-in", methods=["GET", "POST"])
    def sign_in() -> Any:
        form = SignInForm()
        if form.validate_on_submit():
            found = db.session.scalar(sa.select(Customer).where(Customer.email == form.email.data))
            if found is not None and check_password_hash(found.password_hash, form.password.data):
                login_user(found)
                return redirect("/balance")
        return "sign in", 200

    @app.get("/balance")
    @login_required
    def balance() -> Any:
        return jsonify(balance=current_user.balance)

    @app.post("/withdraw")
    @login_required
    def withdraw() -> Any:
        form = WithdrawForm()
        if not form.validate_on_submit():
            return jsonify(errors=form.errors), 400
        amount = form.amount.data
        if fixed:
            done = db.session.execute(
                sa.update(Customer)
                .where(Customer.id == current_user.id, Customer.balance >= amount)
                .values(balance=Customer.balance - amount)
            )
            db.session.commit()
            if not done.rowcount:  # type: ignore[attr-defined]
                return jsonify(error="not enough money"), 400
            return jsonify(ok=True)
        customer = db.get_or_404(Customer, current_user.id)
        if customer.balance < amount:
            return jsonify(error="not enough money"), 400
        customer.balance = customer.balance - amount
        db.session.commit()
        return jsonify(balance=customer.balance)

    return app
