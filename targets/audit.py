"""A switch at one exact statement: an audit that reads two balances in two queries.

The production story: ``GET /audit`` reports a customer's total money. It loads the
customer, their limits, the currency and recent activity, then reads the checking
balance and, in the next query, the savings balance, and adds them up.
``POST /transfer`` moves money from checking to savings in one transaction. Only a
transfer that commits exactly between the audit's two balance queries makes the
audit report money that does not exist — a total no serial order produces. Without
a transaction around the reads (SQLite's driver, READ COMMITTED) that switch point is
one statement wide; inside a REPEATABLE READ snapshot the two reads agree.

The fixed twin adds both balances up in one query.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import String, func, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Customer(db.Model):  # type: ignore[name-defined]
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))


class Limit(db.Model):  # type: ignore[name-defined]
    __tablename__ = "limits"
    customer_id: Mapped[int] = mapped_column(primary_key=True)
    daily: Mapped[int]


class Activity(db.Model):  # type: ignore[name-defined]
    __tablename__ = "activity"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int]
    what: Mapped[str] = mapped_column(String(40))


class Account(db.Model):  # type: ignore[name-defined]
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int]
    kind: Mapped[str] = mapped_column(String(10))
    balance: Mapped[int]


def create_app(database_url: str, *, one_query: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    def balance(customer_id: int, kind: str) -> int:
        return db.session.execute(
            select(Account.balance).filter_by(customer_id=customer_id, kind=kind)
        ).scalar_one()

    @app.get("/audit/<int:customer_id>")
    def audit(customer_id: int) -> Any:
        customer = db.session.get_one(Customer, customer_id)
        limit = db.session.get_one(Limit, customer_id)
        recent = db.session.scalars(select(Activity).filter_by(customer_id=customer_id)).all()
        if one_query:
            total = db.session.execute(
                select(func.sum(Account.balance)).filter_by(customer_id=customer_id)
            ).scalar_one()
        else:
            total = balance(customer_id, "checking") + balance(customer_id, "savings")
        db.session.scalars(select(Account.kind).filter_by(customer_id=customer_id)).all()
        return jsonify(
            {
                "customer": customer.name,
                "currency": customer.currency,
                "daily_limit": limit.daily,
                "activity": len(recent),
                "total": total,
            }
        )

    @app.post("/transfer")
    def transfer() -> Any:
        data = request.get_json()
        customer_id, amount = data["customer"], data["amount"]
        for kind, delta in (("checking", -amount), ("savings", amount)):
            db.session.execute(
                update(Account)
                .filter_by(customer_id=customer_id, kind=kind)
                .values(balance=Account.balance + delta)
            )
        db.session.commit()
        return jsonify({"moved": amount})

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, one_query=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all(
        [
            Customer(id=1, name="Ada", currency="EUR"),
            Limit(customer_id=1, daily=500),
            Activity(customer_id=1, what="login"),
            Account(id=1, customer_id=1, kind="checking", balance=1000),
            Account(id=2, customer_id=1, kind="savings", balance=250),
        ]
    )
    db.session.commit()


ENDPOINTS = [
    Endpoint("GET", "/audit/1"),
    Endpoint(
        "POST",
        "/transfer",
        json=st.fixed_dictionaries({"customer": st.just(1), "amount": st.sampled_from([100, 40])}),
    ),
]

buggy = Target(
    name="audit",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    max_init_requests=0,
    expected_findings=frozenset({"stale-read"}),
    expected_on={  # inside a REPEATABLE READ snapshot both reads agree
        "mariadb": frozenset(),
        "mysql": frozenset(),
        "mariadb/read-committed": frozenset({"stale-read"}),
        "mariadb/read-uncommitted": frozenset({"stale-read"}),
        "mysql/read-committed": frozenset({"stale-read"}),
        "postgres/repeatable-read": frozenset(),
        "postgres/serializable": frozenset(),
    },
    description="two balances read in two queries: a transfer between them is visible",
)

fixed = Target(
    name="audit-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    max_init_requests=0,
    description="both balances added up in one query",
)
