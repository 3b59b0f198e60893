"""Identity map and snapshot: a quote that mixes an old price and a new one.

The production story: a shop's ``GET /quote/<sku>?qty=N`` loads the product through
the ORM to check that it is on sale, then asks two helpers written by different
people: one reads the unit price with ``session.get(Product, sku)``, the other
computes the total with a Core query (``SELECT price * :qty``, so the database does
the arithmetic). Meanwhile a merchant changes the price. ``session.get`` returns
the object already in the session's identity map, with the price loaded before the
change, without asking the database; the Core query reads the row again and sees
the new price. The quote says "3 × 12.00 = 45.00": a response no serial order
produces. That is a ``stale-read``.

Where it shows depends on what the second read sees:

* SQLite: every statement reads the latest committed data (a read does not keep a
  snapshot open), so the Core query sees the new price: found.
* PostgreSQL at READ COMMITTED (its default), MariaDB at READ COMMITTED: each
  statement takes a new snapshot: found.
* MariaDB at REPEATABLE READ (its default) and PostgreSQL at REPEATABLE READ or
  SERIALIZABLE: the transaction's first read fixes its snapshot, so the Core query
  sees the old price too; the quote is consistently old, which is serializable
  (PostgreSQL there has its own story: two price changes at once, and the second
  fails with a serialization failure, 40001, that the app does not retry); MariaDB
  at SERIALIZABLE reads with locks, and a quote waits for the price change.

The fixed twin computes the total from the price it already loaded: one read, one
answer.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import Numeric, String, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Product(db.Model):  # type: ignore[name-defined]
    __tablename__ = "products"
    sku: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    on_sale: Mapped[bool] = mapped_column(default=True)


def unit_price(sku: str) -> Decimal:
    """The pricing team's helper."""
    product = db.session.get(Product, sku)  # the identity map answers: no SELECT
    assert product is not None
    return product.price


def total_price(sku: str, quantity: int) -> Decimal:
    """The checkout team's helper: let the database do the arithmetic."""
    query = select(Product.price * quantity).where(Product.sku == sku)
    return Decimal(db.session.execute(query).scalar_one())


def create_app(database_url: str, *, one_read: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    @app.get("/quote/<sku>")
    def quote(sku: str) -> Any:
        quantity = int(request.args.get("qty", "1"))
        product = db.session.get(Product, sku)
        if product is None or not product.on_sale:
            return jsonify(error="not for sale"), 404
        price = unit_price(sku)
        total = product.price * quantity if one_read else total_price(sku, quantity)
        return jsonify(sku=sku, qty=quantity, unit_price=str(price), total=str(total))

    @app.put("/products/<sku>/price")
    def set_price(sku: str) -> Any:
        price = Decimal(request.get_json()["price"])
        changed = db.session.execute(
            update(Product).where(Product.sku == sku).values(price=price)
        ).rowcount  # type: ignore[attr-defined]
        db.session.commit()
        if not changed:
            return jsonify(error="no such product"), 404
        return jsonify(sku=sku, price=str(price))

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, one_read=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all(
        [
            Product(sku="mug", name="Mug", price=Decimal("12.00")),
            Product(sku="tee", name="T-shirt", price=Decimal("20.00")),
        ]
    )
    db.session.commit()


SKUS = st.sampled_from(["mug", "tee"])

ENDPOINTS = [
    Endpoint(
        "GET",
        SKUS.map(lambda s: f"/quote/{s}"),
        params=st.fixed_dictionaries({"qty": st.sampled_from(["3", "1"])}),
        name="GET /quote/<sku>",
    ),
    Endpoint(
        "PUT",
        SKUS.map(lambda s: f"/products/{s}/price"),
        json=st.fixed_dictionaries({"price": st.sampled_from(["15.00", "9.50"])}),
        name="PUT /products/<sku>/price",
    ),
]

buggy = Target(
    name="pricing",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    expected_findings=frozenset({"stale-read"}),
    expected_on={  # at REPEATABLE READ and above the second read sees the snapshot too
        "mariadb": frozenset(),
        "mariadb/read-committed": frozenset({"stale-read"}),
        "mysql": frozenset(),
        "mysql/read-committed": frozenset({"stale-read"}),
        # and two price changes at once fail with a serialization failure (40001)
        "postgres/repeatable-read": frozenset({"concurrency-error"}),
        "postgres/serializable": frozenset({"concurrency-error"}),
    },
    description="identity map answers session.get() while a Core query reads the new row",
)

fixed = Target(
    name="pricing-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    description="the total is computed from the one price read",
)
