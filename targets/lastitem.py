"""Two users buy the last item: both purchases go through, the stock ends at -1.

The production story: ``POST /items/<id>/buy`` as a signed-in user answers "already
bought" when the user has bought the item before (one per customer), refuses when
the stock is gone, and otherwise decrements the stock atomically and records the
purchase. The check of the stock ran on a value read before: two users buying the
last item at once both see one left, both pay, and the stock ends at -1 (a
``limit-overrun``). One user's double click is a different race: both clicks pass
the "one per customer" check, and the second insert breaks the unique key on
(user, item): a 500. The two must stay two findings: shrinking toward the first
user must not trade the oversell for the double click.

The fixed twin puts the stock check in the UPDATE (``WHERE stock >= 1``) and, when
that matched no row or the unique key refused the purchase, answers from what is
committed: "already bought" if the user has it, else "sold out".
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import ForeignKey, String, UniqueConstraint, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Identity, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)

NAMES = ["ada", "bob", "cy"]


class Customer(db.Model):  # type: ignore[name-defined]
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)


class Item(db.Model):  # type: ignore[name-defined]
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    stock: Mapped[int]


class Purchase(db.Model):  # type: ignore[name-defined]
    __tablename__ = "purchases"
    __table_args__ = (UniqueConstraint("customer_id", "item_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))


def create_app(database_url: str, *, check_in_update: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    def customer() -> Customer:
        name = request.headers.get("X-User")
        found = db.session.execute(select(Customer).filter_by(name=name)).scalar_one_or_none()
        if found is None:
            abort(401)
        return found

    def bought(who: Customer, item_id: int) -> bool:
        query = select(Purchase.id).filter_by(customer_id=who.id, item_id=item_id)
        return db.session.execute(query).first() is not None

    @app.post("/items/<int:item_id>/buy")
    def buy(item_id: int) -> Any:
        who = customer()
        item = db.session.get(Item, item_id)
        if item is None:
            abort(404)
        if bought(who, item_id):
            return jsonify(item=item_id, bought=False, reason="already bought")
        if not check_in_update and item.stock < 1:
            return jsonify(error="sold out"), 422
        which = [Item.id == item_id] + ([Item.stock >= 1] if check_in_update else [])
        taken = db.session.execute(
            update(Item)
            .where(*which)
            .values(stock=Item.stock - 1)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if taken:
            db.session.add(Purchase(customer_id=who.id, item_id=item_id))
            try:
                db.session.commit()
                return jsonify(item=item_id, bought=True)
            except IntegrityError:
                if not check_in_update:
                    raise
        db.session.rollback()  # the fix: answer from what is committed now
        if bought(who, item_id):
            return jsonify(item=item_id, bought=False, reason="already bought")
        return jsonify(error="sold out"), 422

    @app.get("/items/<int:item_id>")
    def show(item_id: int) -> Any:
        item = db.session.get(Item, item_id)
        if item is None:
            abort(404)
        return jsonify(id=item.id, name=item.name, stock=item.stock)

    @app.get("/purchases")
    def purchases() -> Any:
        who = customer()
        rows = db.session.execute(select(Purchase.item_id).filter_by(customer_id=who.id))
        return jsonify(sorted(rows.scalars()))

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, check_in_update=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all(Customer(id=k + 1, name=name) for k, name in enumerate(NAMES))
    db.session.add_all([Item(id=1, name="last mug", stock=1), Item(id=2, name="lamp", stock=5)])
    db.session.commit()


IDENTITIES = [Identity(name, headers={"X-User": name}) for name in NAMES]

ENDPOINTS = [
    Endpoint("GET", st.sampled_from(["/items/1", "/items/2"])),
    Endpoint("GET", "/purchases"),
    Endpoint("POST", st.sampled_from(["/items/1/buy", "/items/2/buy"])),
]

buggy = Target(
    name="lastitem",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    identities=IDENTITIES,
    max_requests=2,
    expected_findings=frozenset({"limit-overrun", "concurrency-error"}),
    description="two users buy the last item (oversell); one user's double click (500)",
)

fixed = Target(
    name="lastitem-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    identities=IDENTITIES,
    max_requests=2,
    description="the stock check in the UPDATE; refusals answered from what is committed",
)
