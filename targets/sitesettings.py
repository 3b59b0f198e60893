"""Site settings made on first use, in a context processor: the first two pages answer 500.

The production story, a small shop fresh from its installer: its settings (the shop's
name, its currency, its theme) are rows of a ``settings`` table, unique by key, made the
first time a page needs them. A context processor reads them for every template, with
a get-or-create per key that commits its insert: three single-INSERT transactions at the
start of every page's render, then the page's own work. Two first page views at once
both find no ``site_name`` row, both insert one, and the second insert fails with an
``IntegrityError``: a 500 no serial order gives.

Every page makes the same three inserts, alone in their transactions, before its own
SQL: that looks like a session stamp (``last_seen``) at first sight, but it is not one
(an insert, not an update of the signed-in user's row), and it is where the race is.

The fixed twin lets the unique key decide: refused, it reads the row the other request
made.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, render_template_string, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import String, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)

DEFAULTS = {"site_name": "Corner Shop", "currency": "EUR", "theme": "light"}


class Setting(db.Model):  # type: ignore[name-defined]
    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(40), primary_key=True)  # unique by its name
    value: Mapped[str] = mapped_column(String(80))


class Product(db.Model):  # type: ignore[name-defined]
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    in_carts: Mapped[int] = mapped_column(default=0)


PAGE = """<!doctype html><title>{{ settings.site_name }}</title>
<body class="{{ settings.theme }}"><h1>{{ settings.site_name }}</h1>
{% for p in products %}<p>{{ p.name }} ({{ p.in_carts }} in carts, {{ settings.currency }})</p>
{% endfor %}</body>"""


ADDED = """<!doctype html><title>{{ settings.site_name }}</title>
<body class="{{ settings.theme }}"><p>Added to your cart.</p></body>"""


def create_app(database_url: str, *, unique_decides: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    def setting(key: str) -> str:
        row = db.session.execute(select(Setting).filter_by(key=key)).scalar_one_or_none()
        if row is not None:
            return row.value
        db.session.add(Setting(key=key, value=DEFAULTS[key]))
        try:
            db.session.commit()
        except IntegrityError:
            if not unique_decides:
                raise
            db.session.rollback()  # another page made it first
            return db.session.execute(select(Setting.value).filter_by(key=key)).scalar_one()
        return DEFAULTS[key]

    @app.context_processor
    def site_settings() -> dict[str, Any]:
        return {"settings": {key: setting(key) for key in DEFAULTS}}

    def page(products: list[Product]) -> str:
        # read before rendering: the context processor's commits expire the objects
        shown = [{"name": p.name, "in_carts": p.in_carts} for p in products]
        return render_template_string(PAGE, products=shown)

    @app.get("/")
    def home() -> Any:
        return page(list(db.session.execute(select(Product).order_by(Product.id)).scalars()))

    @app.get("/products/<int:product_id>")
    def product(product_id: int) -> Any:
        return page([db.get_or_404(Product, product_id)])

    @app.post("/cart")
    def add_to_cart() -> Any:
        product_id = int(request.form["product_id"])
        db.session.execute(
            update(Product).where(Product.id == product_id).values(in_carts=Product.in_carts + 1)
        )
        db.session.commit()
        return render_template_string(ADDED)

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, unique_decides=True)


def setup(app: Flask) -> None:
    db.create_all()  # no settings yet: the installer just ran
    db.session.add_all([Product(name="tea"), Product(name="jam")])
    db.session.commit()


ENDPOINTS = [
    Endpoint("GET", "/"),
    Endpoint("GET", st.sampled_from(["/products/1", "/products/2"])),
    Endpoint("POST", "/cart", form=st.fixed_dictionaries({"product_id": st.sampled_from([1, 2])})),
]

buggy = Target(
    name="sitesettings",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    max_requests=2,
    expected_findings=frozenset({"concurrency-error"}),
    description="a get-or-create of site settings in a context processor, on every page",
)

fixed = Target(
    name="sitesettings-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    max_requests=2,
    description="the settings' unique key decides; refused, the other page's row is read",
)
