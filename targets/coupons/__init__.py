"""A shop whose factory can run only once per process, and needs pins to be fuzzed.

Its routes are added in the factory to a blueprint made at import, so a second
``create_app()`` in one process raises ``AssertionError: The setup method 'route' can
no longer be called on the blueprint 'shop'``. Its config turns CSRF on (Flask-WTF)
and sets a ``SERVER_NAME``: ``fuzzer init`` must pin both off, which it does by
building the app again in a fresh process, never in the same one.

The planted race: ``POST /redeem`` (a form with the coupon's code) counts the coupon's
redemptions, then inserts one when the count is under the coupon's limit: two
overlapping redemptions of a coupon with one use left both pass (limit-overrun).
``create_app(fixed=True)`` is the fixed twin: it takes the use with ``UPDATE … SET
left = left - 1 WHERE left > 0`` before inserting.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Flask, jsonify
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired

db = SQLAlchemy()
shop = Blueprint("shop", __name__)


class Coupon(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    code = db.Column(db.String(20), unique=True, nullable=False)
    uses = db.Column(db.Integer, nullable=False)  # how many redemptions it allows
    left = db.Column(db.Integer, nullable=False)


class Redemption(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    coupon_id = db.Column(db.Integer, db.ForeignKey("coupon.id"), nullable=False)


class RedeemForm(FlaskForm):
    code = StringField("Code", validators=[DataRequired()])


def create_app(fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI="sqlite:///coupons.db",
        SECRET_KEY="coupons-dev",
        SERVER_NAME="shop.example.com",
        WTF_CSRF_ENABLED=True,
    )
    db.init_app(app)

    @app.cli.command("init-db")
    def init_db() -> None:
        db.create_all()

    @app.cli.command("seed")
    def seed() -> None:
        db.session.add_all(
            [Coupon(code="WELCOME", uses=1, left=1), Coupon(code="SPRING", uses=2, left=2)]
        )
        db.session.commit()

    @shop.post("/redeem")
    def redeem() -> Any:
        form = RedeemForm()
        if not form.validate_on_submit():
            return jsonify(errors=form.errors), 400
        coupon = db.session.scalar(sa.select(Coupon).where(Coupon.code == form.code.data))
        if coupon is None:
            return jsonify(error="no such coupon"), 404
        if fixed:
            taken = db.session.execute(
                sa.update(Coupon)
                .where(Coupon.id == coupon.id, Coupon.left > 0)
                .values(left=Coupon.left - 1)
            )
            if not taken.rowcount:  # type: ignore[attr-defined]
                db.session.rollback()
                return jsonify(error="used up"), 400
        else:
            used = db.session.scalar(
                sa.select(sa.func.count(Redemption.id)).where(Redemption.coupon_id == coupon.id)
            )
            if used >= coupon.uses:
                return jsonify(error="used up"), 400
        db.session.add(Redemption(coupon_id=coupon.id))
        db.session.commit()
        return jsonify(ok=True)

    @shop.get("/coupons")
    def coupons() -> Any:
        return jsonify(codes=[c.code for c in db.session.scalars(sa.select(Coupon))])

    app.register_blueprint(shop)
    return app
