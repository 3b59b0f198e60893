"""A shop whose checkout acts on rows that only other requests make: a cart is filled
by ``POST /api/cart/items`` (JSON ``{"product_id": …, "quantity": …}``), and ``POST
/api/checkout`` turns the signed-in user's cart into an order. Setup makes users and
products, never carts, so the checkout sent alone after setup answers 400 ("your cart
is empty") and writes nothing. ``fuzzer init`` finds the prerequisite by sending the
app's creating endpoints first, and makes each identity's cart in setup through the
app's own endpoint.

The planted race: the checkout reads the cart and the stock, then writes the stock
computed in Python, the order, and empties the cart: a double click on "check out"
orders twice and sells what is not there (limit-overrun, lost-update).
``create_app(fixed=True)`` is the fixed twin: it empties the cart first and goes on
only if it did, and takes the stock with ``UPDATE … WHERE stock >= ?``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask, abort, jsonify, request
from flask_login import LoginManager, UserMixin, current_user, login_required
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
login = LoginManager()


class Shopper(UserMixin, db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(40), unique=True, nullable=False)


class Product(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(80), nullable=False)
    stock = db.Column(db.Integer, nullable=False)


class CartItem(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    shopper_id = db.Column(db.Integer, db.ForeignKey("shopper.id"), nullable=False)
    product_id = db.Column(db.Integer, db.ForeignKey("product.id"), nullable=False)
    quantity = db.Column(db.Integer, nullable=False)


class Order(db.Model):  # type: ignore[name-defined]
    __tablename__ = "orders"
    id = db.Column(db.Integer, primary_key=True)
    shopper_id = db.Column(db.Integer, db.ForeignKey("shopper.id"), nullable=False)
    items = db.Column(db.Integer, nullable=False)


@login.user_loader
def load_user(user_id: str) -> Shopper | None:
    return db.session.get(Shopper, int(user_id))


def create_app(fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite:///cart.db", SECRET_KEY="cart")
    db.init_app(app)
    login.init_app(app)

    @app.cli.command("seed")
    def seed() -> None:
        db.session.add_all([Shopper(username="uma"), Shopper(username="vic")])
        db.session.add_all([Product(title="lamp", stock=1), Product(title="desk", stock=2)])
        db.session.commit()

    @app.post("/api/cart/items")
    @login_required
    def add_item() -> Any:
        data = request.get_json() or {}
        product = db.session.get(Product, int(data["product_id"]))
        quantity = int(data.get("quantity", 1))
        if product is None or quantity < 1:
            abort(400)
        db.session.add(
            CartItem(shopper_id=current_user.id, product_id=product.id, quantity=quantity)
        )
        db.session.commit()
        return jsonify(ok=True), 201

    @app.post("/api/checkout")
    @login_required
    def checkout() -> Any:
        mine = CartItem.shopper_id == current_user.id
        items = list(db.session.scalars(sa.select(CartItem).where(mine)))
        if not items:
            return jsonify(error="your cart is empty"), 400
        if fixed:
            emptied = db.session.execute(sa.delete(CartItem).where(mine))
            if emptied.rowcount != len(items):  # type: ignore[attr-defined]
                db.session.rollback()
                return jsonify(error="your cart is empty"), 400
            for item in items:
                taken = db.session.execute(
                    sa.update(Product)
                    .where(Product.id == item.product_id, Product.stock >= item.quantity)
                    .values(stock=Product.stock - item.quantity)
                )
                if not taken.rowcount:  # type: ignore[attr-defined]
                    db.session.rollback()
                    return jsonify(error="sold out"), 400
        else:
            for item in items:
                product = db.session.get(Product, item.product_id)
                if product is None or product.stock < item.quantity:
                    return jsonify(error="sold out"), 400
                product.stock = product.stock - item.quantity
            db.session.execute(sa.delete(CartItem).where(mine))
        db.session.add(Order(shopper_id=current_user.id, items=len(items)))
        db.session.commit()
        return jsonify(ordered=len(items))

    return app
