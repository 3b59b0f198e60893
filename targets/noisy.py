"""A noisy shop: every request logged, every error logged with its traceback.

The production story: the app configures logging the way many do. At import, its
``shop`` logger gets a ``StreamHandler`` on the terminal's stderr; the factory calls
``logging.basicConfig(level=INFO)``; an ``after_request`` hook logs every request,
and an error handler logs every exception with its traceback (``log.exception``)
before answering: 400 for a quantity that is not a number, 500 for anything else.
A run of the fuzzer sends thousands of requests: before, its own lines drowned in
the app's (21,749 lines in one run of such an app).

The race: ``POST /cart/<user>/items`` gets or creates the user's cart (unique per
user), then adds the item. Two first items of one user at once both find no cart and
both insert one: the second insert fails with an ``IntegrityError``, a 500 no serial
order gives (and a traceback in the log). The fixed twin lets the unique key decide:
refused, it reads the cart the other request made.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Target

log = logging.getLogger("shop")
log.addHandler(logging.StreamHandler())  # created at import: the terminal's stderr
log.setLevel(logging.INFO)


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Cart(db.Model):  # type: ignore[name-defined]
    __tablename__ = "carts"
    id: Mapped[int] = mapped_column(primary_key=True)
    user: Mapped[str] = mapped_column(String(20), unique=True)


class Item(db.Model):  # type: ignore[name-defined]
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    cart_id: Mapped[int] = mapped_column(ForeignKey("carts.id"))
    sku: Mapped[str] = mapped_column(String(20))
    qty: Mapped[int]


def create_app(database_url: str, *, unique_decides: bool = False) -> Flask:
    logging.basicConfig(level=logging.INFO)
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    def cart_of(user: str) -> Cart:
        cart = db.session.execute(select(Cart).filter_by(user=user)).scalar_one_or_none()
        if cart is not None:
            return cart
        cart = Cart(user=user)
        db.session.add(cart)
        try:
            db.session.commit()
        except IntegrityError:
            if not unique_decides:
                raise
            db.session.rollback()  # the other request made it first
            return db.session.execute(select(Cart).filter_by(user=user)).scalar_one()
        return cart

    @app.post("/cart/<user>/items")
    def add(user: str) -> Any:
        data = request.get_json()
        qty = int(data["qty"])  # "many": a ValueError, logged, answered 400
        cart = cart_of(user)
        db.session.add(Item(cart_id=cart.id, sku=data["sku"], qty=qty))
        db.session.commit()
        return jsonify(ok=True)

    @app.get("/cart/<user>")
    def show(user: str) -> Any:
        cart = db.session.execute(select(Cart).filter_by(user=user)).scalar_one_or_none()
        if cart is None:
            return jsonify(items=[])
        items = db.session.execute(select(Item).filter_by(cart_id=cart.id).order_by(Item.sku))
        return jsonify(items=sorted((i.sku, i.qty) for i in items.scalars()))

    @app.after_request
    def access_log(response: Response) -> Response:
        log.info("%s %s -> %s", request.method, request.path, response.status_code)
        return response

    @app.errorhandler(Exception)
    def failed(error: Exception) -> Any:
        log.exception("failed: %s %s", request.method, request.path)
        db.session.rollback()
        if isinstance(error, ValueError):
            return jsonify(error="qty must be a number"), 400
        return jsonify(error="internal error"), 500

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, unique_decides=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add(Cart(user="bob"))  # numbered by the database (PostgreSQL sequences)
    db.session.commit()


ENDPOINTS = [
    Endpoint(
        "POST",
        st.sampled_from(["/cart/ann/items", "/cart/bob/items"]),
        json=st.fixed_dictionaries(
            {"sku": st.sampled_from(["tea", "jam"]), "qty": st.sampled_from([1, 2, "many"])}
        ),
    ),
    Endpoint("GET", st.sampled_from(["/cart/ann", "/cart/bob"])),
]

buggy = Target(
    name="noisy",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    max_requests=2,
    expected_findings=frozenset({"concurrency-error"}),
    description="a get-or-create of a cart in an app that logs every request and error",
)

fixed = Target(
    name="noisy-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    max_requests=2,
    description="the cart's unique key decides; the same logging",
)
