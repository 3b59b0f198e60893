"""Check-then-act on stock: two orders for the last item both go through.

The production story: a shop's ``POST /orders`` reads the item's stock, refuses the
order (422) if there is not enough, and otherwise records the order and decrements
the stock. The decrement itself is done right, as one atomic
``UPDATE items SET stock = stock - :qty``, so no decrement is ever lost; but the
*check* ran on a value read earlier, in Python. Two orders for the last mug both
read "1 in stock", both pass the check, both decrement: two orders are recorded,
the stock ends at -1, and one customer will get an apology. One order after the
other, the second is refused. That is a ``limit-overrun``.

The fixed twin makes the check part of the write: ``UPDATE … SET stock = stock -
:qty WHERE sku = :sku AND stock >= :qty``, and refuses the order when that matched
no row. The database evaluates the condition under the row's write lock, on every
database.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import Column, ForeignKey, Integer, String, select, update

from fuzzer import Endpoint, Target

# Models in the style SQLAlchemy 1.4 with Flask-SQLAlchemy 2.5 and SQLAlchemy 2 with
# Flask-SQLAlchemy 3 both run: CI runs this target on the oldest supported stack too.
db = SQLAlchemy()


class Item(db.Model):  # type: ignore[name-defined]
    __tablename__ = "items"
    sku = Column(String(20), primary_key=True)
    name = Column(String(80), nullable=False)
    stock = Column(Integer, nullable=False)


class Order(db.Model):  # type: ignore[name-defined]
    __tablename__ = "orders"
    id = Column(Integer, primary_key=True)
    sku = Column(String(20), ForeignKey("items.sku"), nullable=False)
    quantity = Column(Integer, nullable=False)


def create_app(database_url: str, *, check_in_update: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    def refuse(item: Item) -> Any:
        return jsonify(error=f"only {item.stock} {item.name} left"), 422

    @app.post("/orders")
    def place_order() -> Any:
        data = request.get_json()
        sku, quantity = data["sku"], int(data["quantity"])
        item = db.session.get(Item, sku)
        if item is None:
            return jsonify(error="no such item"), 404
        if not check_in_update and item.stock < quantity:
            return refuse(item)
        which = [Item.sku == sku]
        if check_in_update:
            which.append(Item.stock >= quantity)
        taken = db.session.execute(
            update(Item)
            .where(*which)
            .values(stock=Item.stock - quantity)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if not taken:
            db.session.rollback()
            item = db.session.get(Item, sku)  # the latest stock, for the message
            assert item is not None
            return refuse(item)
        order = Order(sku=sku, quantity=quantity)
        db.session.add(order)
        db.session.commit()
        return jsonify(order=order.id, sku=sku, quantity=quantity), 201

    @app.get("/items/<sku>")
    def show(sku: str) -> Any:
        stock = db.session.scalar(select(Item.stock).where(Item.sku == sku))
        if stock is None:
            return jsonify(error="no such item"), 404
        return jsonify(sku=sku, in_stock=stock > 0)

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, check_in_update=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all(
        [Item(sku="mug", name="mugs", stock=1), Item(sku="tee", name="tees", stock=5)]
    )
    db.session.commit()


ENDPOINTS = [
    Endpoint(
        "POST",
        "/orders",
        json=st.fixed_dictionaries(
            {"sku": st.sampled_from(["mug", "tee"]), "quantity": st.sampled_from([1, 3])}
        ),
    ),
    Endpoint("GET", st.sampled_from(["/items/mug", "/items/tee"]), name="GET /items/<sku>"),
]

buggy = Target(
    name="stock",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    expected_findings=frozenset({"limit-overrun"}),
    description="the stock is checked in Python, then decremented atomically",
)

fixed = Target(
    name="stock-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    description="the check is the UPDATE's WHERE clause",
)
