"""Narrow window: a wallet read-modify-write buried among ten queries per request.

The production story: ``POST /checkout`` loads the customer, their settings, the
cart, each product, the shipping zone and the tax rate (six reads), then reads the
wallet balance (the 7th query), writes the new balance (the 8th), and records the
order (9th, 10th), computing the new balance in Python. Double clicks were a problem
once, so checkout holds a process-wide lock from the wallet read to the commit: two
checkouts never overlap there. ``POST /refund`` credits the wallet with one atomic
UPDATE early (its 2nd query), commits it, and then spends seven queries on the refund's
paperwork; it does not take the lock. A refund that commits between checkout's 7th and
8th query is lost. Fired at the same instant, the two handlers rarely line up like that: the
refund's write happens long before checkout reaches its window.

The fixed twin's checkout writes ``balance = balance - :amount`` in one UPDATE.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import ForeignKey, String, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Target, checkpoint

CHECKOUT_LOCK = threading.Lock()


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Customer(db.Model):  # type: ignore[name-defined]
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    zone: Mapped[str] = mapped_column(String(10))


class Setting(db.Model):  # type: ignore[name-defined]
    __tablename__ = "settings"
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))


class Product(db.Model):  # type: ignore[name-defined]
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(primary_key=True)
    price: Mapped[int]


class CartItem(db.Model):  # type: ignore[name-defined]
    __tablename__ = "cart_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))


class Zone(db.Model):  # type: ignore[name-defined]
    __tablename__ = "zones"
    code: Mapped[str] = mapped_column(String(10), primary_key=True)
    shipping: Mapped[int]
    tax_percent: Mapped[int]


class Wallet(db.Model):  # type: ignore[name-defined]
    __tablename__ = "wallets"
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    balance: Mapped[int]


class Order(db.Model):  # type: ignore[name-defined]
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    total: Mapped[int]


class Ledger(db.Model):  # type: ignore[name-defined]
    __tablename__ = "ledger"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int]
    amount: Mapped[int]
    note: Mapped[str] = mapped_column(String(40))


def create_app(database_url: str, *, atomic: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    def balance_of(customer_id: int) -> int:
        return db.session.execute(
            select(Wallet.balance).filter_by(customer_id=customer_id)
        ).scalar_one()

    def charge(customer_id: int, amount: int, atomic: bool = atomic) -> int:
        """Add ``amount`` (negative: spend) to the wallet; return the new balance."""
        if atomic:
            db.session.execute(
                update(Wallet)
                .where(Wallet.customer_id == customer_id)
                .values(balance=Wallet.balance + amount)
            )
            return balance_of(customer_id)
        balance = balance_of(customer_id)
        db.session.execute(
            update(Wallet).where(Wallet.customer_id == customer_id).values(balance=balance + amount)
        )
        return balance + amount

    @app.post("/checkout")
    def checkout() -> Any:
        customer_id = request.get_json()["customer"]
        customer = db.session.get_one(Customer, customer_id)  # 1
        setting = db.session.get_one(Setting, customer_id)  # 2
        items = db.session.scalars(select(CartItem).filter_by(customer_id=customer_id)).all()  # 3
        prices = [db.session.get_one(Product, item.product_id).price for item in items]  # 4, 5
        zone = db.session.get_one(Zone, customer.zone)  # 6
        subtotal = sum(prices)
        total = subtotal + zone.shipping + subtotal * zone.tax_percent // 100
        checkpoint("checkout lock")
        with CHECKOUT_LOCK:  # no two checkouts at once
            balance = charge(customer_id, -total)  # 7 (read), 8 (write)
            db.session.add(Order(customer_id=customer_id, total=total))
            db.session.add(Ledger(customer_id=customer_id, amount=-total, note="checkout"))
            db.session.commit()  # 9, 10
        return jsonify({"total": total, "currency": setting.currency, "balance": balance})

    @app.post("/refund")
    def refund() -> Any:
        data = request.get_json()
        customer_id, amount = data["customer"], data["amount"]
        customer = db.session.get_one(Customer, customer_id)  # 1
        balance = charge(customer_id, amount, atomic=True)  # 2 (write), 3 (read)
        db.session.commit()  # the money is back at once; the paperwork follows
        db.session.get_one(Setting, customer_id)  # 4
        db.session.get_one(Zone, customer.zone)  # 5
        db.session.scalars(select(Order).filter_by(customer_id=customer_id)).all()  # 6
        db.session.scalars(select(Ledger).filter_by(customer_id=customer_id)).all()  # 7
        db.session.scalars(select(CartItem).filter_by(customer_id=customer_id)).all()  # 8
        db.session.add(Ledger(customer_id=customer_id, amount=amount, note="refund"))
        db.session.commit()  # 9
        return jsonify({"refunded": amount, "balance": balance})

    @app.get("/wallet/<int:customer_id>")
    def wallet(customer_id: int) -> Any:
        return jsonify({"balance": db.session.get_one(Wallet, customer_id).balance})

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, atomic=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all(  # parents first: MariaDB and PostgreSQL check foreign keys
        [
            Customer(id=1, name="Grace", zone="EU"),
            Product(id=1, price=300),
            Product(id=2, price=120),
            Zone(code="EU", shipping=15, tax_percent=20),
        ]
    )
    db.session.commit()
    db.session.add_all(
        [
            Setting(customer_id=1, currency="EUR"),
            CartItem(customer_id=1, product_id=1),
            CartItem(customer_id=1, product_id=2),
            Wallet(customer_id=1, balance=10_000),
        ]
    )
    db.session.commit()


ENDPOINTS = [
    Endpoint("POST", "/checkout", json={"customer": 1}),
    Endpoint(
        "POST",
        "/refund",
        json=st.fixed_dictionaries({"customer": st.just(1), "amount": st.sampled_from([50, 75])}),
    ),
    Endpoint("GET", "/wallet/1"),
]

buggy = Target(
    name="checkout",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    max_init_requests=0,
    expected_findings=frozenset({"lost-update"}),
    description="wallet read-modify-write at the 7th/8th of ten queries (narrow window)",
)

fixed = Target(
    name="checkout-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    max_init_requests=0,
    description="the wallet is updated with one atomic UPDATE",
)
