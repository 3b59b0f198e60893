"""A shop's login at the default password hash cost, and a 10 MB export: slow, never hung.

The production story: ``POST /account/login`` checks the password with
``werkzeug.security.check_password_hash`` against a hash made by
``generate_password_hash`` with its defaults (scrypt, ``n = 2**15``: a few tenths of
a second each, seconds on a loaded machine), then counts the sign-in. The buggy twin
counts it the ORM way, ``user.logins = user.logins + 1`` on the row it loaded before
the hash check: two sign-ins of one customer at once both load ``logins = 0`` and
both write 1 (a lost update). ``GET /catalog.csv`` renders every product ten thousand
times over, about 10 MB of CSV built line by line.

Neither is a hang: their threads run (their CPU clocks and stacks move) for as long
as they take. The fixed twin counts the sign-in with one atomic ``UPDATE`` and must
give no finding at all, on a loaded machine too.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, abort, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import String, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from fuzzer import Endpoint, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)

EXPORT_REPEATS = 10_000  # x 10 products x ~100 bytes: about 10 MB


class Customer(db.Model):  # type: ignore[name-defined]
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    logins: Mapped[int] = mapped_column(default=0)


class Product(db.Model):  # type: ignore[name-defined]
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    price: Mapped[int]


def create_app(database_url: str, *, atomic: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    @app.post("/account/login")
    def login() -> Any:
        data = request.get_json()
        customer = db.session.execute(
            select(Customer).filter_by(email=data["email"])
        ).scalar_one_or_none()
        if customer is None or not check_password_hash(customer.password_hash, data["password"]):
            return jsonify(error="wrong email or password"), 401
        if atomic:
            counted = update(Customer).where(Customer.id == customer.id)
            db.session.execute(counted.values(logins=Customer.logins + 1))
        else:
            customer.logins = customer.logins + 1
        db.session.commit()
        return jsonify(ok=True)

    @app.get("/account/<int:customer_id>")
    def account(customer_id: int) -> Any:
        customer = db.session.get(Customer, customer_id)
        if customer is None:
            abort(404)
        return jsonify(email=customer.email, logins=customer.logins)

    @app.get("/catalog.csv")
    def export() -> Any:
        products = db.session.execute(select(Product).order_by(Product.id)).scalars().all()
        lines = ["id,name,price,copy"]
        for copy in range(EXPORT_REPEATS):
            for p in products:
                lines.append(f"{p.id},{p.name:<40},{p.price:>10},{copy:>40}")
        return Response("\n".join(lines), mimetype="text/csv")

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, atomic=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all(
        Customer(id=k, email=f"c{k}@example.com", password_hash=generate_password_hash("secret"))
        for k in (1, 2)
    )
    db.session.add_all(Product(id=k, name=f"item {k}", price=100 * k) for k in range(1, 11))
    db.session.commit()


ENDPOINTS = [
    Endpoint(
        "POST",
        "/account/login",
        json=st.fixed_dictionaries(
            {
                "email": st.sampled_from(["c1@example.com", "c2@example.com"]),
                "password": st.sampled_from(["secret", "wrong"]),
            }
        ),
    ),
    Endpoint("GET", st.sampled_from(["/account/1", "/account/2"])),
    Endpoint("GET", "/catalog.csv"),
]

buggy = Target(
    name="shoplogin",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    max_requests=2,
    expected_findings=frozenset({"lost-update"}),
    description="a sign-in counted on a row loaded before a slow password check",
)

fixed = Target(
    name="shoplogin-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    max_requests=2,
    description="the sign-in counted by one atomic UPDATE",
)
