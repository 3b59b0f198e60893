"""A warehouse's JSON API without accounts. Products are keyed by the integer codes on
their shelves (4711, 4712), and an order names its product in the JSON field ``item``,
which names no table or column: by names alone a spec would send ``item`` 1, 2 or 3,
and every order would answer 404. ``flask seed`` makes two products.

The planted race: ``POST /api/orders`` (JSON ``{"item": …, "quantity": …}``) reads the
product's stock, checks it covers the quantity, then writes the stock minus the
quantity computed in Python and inserts the order: two overlapping orders of the last
units both pass the check (limit-overrun or lost-update). ``create_app(fixed=True)`` is
the fixed twin: one ``UPDATE … SET stock = stock - ? WHERE code = ? AND stock >= ?``
first.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()


class Product(db.Model):  # type: ignore[name-defined]
    code = db.Column(db.Integer, primary_key=True, autoincrement=False)
    name = db.Column(db.String(80), unique=True, nullable=False)
    stock = db.Column(db.Integer, nullable=False)


class OrderLine(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    product_code = db.Column(db.Integer, db.ForeignKey("product.code"), nullable=False)
    quantity = db.Column(db.Integer, nullable=False)


def create_app(fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite:///warehouse.db")
    db.init_app(app)

    @app.cli.command("seed")
    def seed() -> None:
        """Two products, three units each."""
        db.session.add_all(
            [Product(code=4711, name="hammer", stock=3), Product(code=4712, name="saw", stock=3)]
        )
        db.session.commit()

    @app.get("/api/products")
    def products() -> Any:
        rows = db.session.scalars(sa.select(Product).order_by(Product.code))
        return jsonify([{"code": p.code, "name": p.name, "stock": p.stock} for p in rows])

    @app.post("/api/orders")
    def order() -> Any:
        data = request.get_json(silent=True) or {}
        try:
            code, quantity = int(data["item"]), int(data.get("quantity", 1))
        except (KeyError, TypeError, ValueError):
            return jsonify(error="item and quantity must be numbers"), 400
        product = db.session.get(Product, code)
        if product is None:
            return jsonify(error=f"no product {code}"), 404
        if quantity < 1:
            return jsonify(error="order one at least"), 400
        if fixed:
            taken = db.session.execute(
                sa.update(Product)
                .where(Product.code == code, Product.stock >= quantity)
                .values(stock=Product.stock - quantity)
            )
            if not taken.rowcount:  # type: ignore[attr-defined]
                db.session.rollback()
                return jsonify(error="not enough stock"), 409
        else:
            if product.stock < quantity:
                return jsonify(error="not enough stock"), 409
            product.stock = product.stock - quantity
        line = OrderLine(product_code=code, quantity=quantity)
        db.session.add(line)
        db.session.commit()
        return jsonify(order=line.id), 201

    return app
