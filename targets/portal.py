"""Two apps sharing one declarative base: the shop's queries run on the blog's database.

The production story: a monolith was split into a shop and a blog, two Flask apps
served by one process behind a dispatcher (``/shop/…`` and ``/blog/…``), each with
its own Flask-SQLAlchemy instance and its own database. Both kept the monolith's
``models.py``: one declarative base for every model, carrying the ``Model.query``
property the old code uses everywhere, bound to a scoped session that each app
factory configures with its engine when it starts. The app created last wins: in
the shop, ``Product.query`` runs on the blog's session and engine. The shop's
product page then asks the blog's database for ``products``; there is no such
table there, so every product page fails with a 500 (a ``serial-failure``: it fails
alone, no race needed), and every such statement is a ``wrong-engine`` finding. Had
the blog's database had a ``products`` table, nothing would fail: the shop would
silently show the wrong data, and only ``wrong-engine`` would tell.

(Flask-SQLAlchemy 3's own ``Model.query`` refuses to run in an app its extension is
not registered with, so two extensions sharing a base fail loudly with a
RuntimeError, a ``serial-failure`` alone; this base's hand-made query property
fails silently, as Flask-SQLAlchemy 2's did.)

The fixed twin gives each app its own base and queries through its own extension's
session (``db.session``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Flask, jsonify
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String, select, update
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    mapped_column,
    scoped_session,
    sessionmaker,
)
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from fuzzer import Endpoint, Target

# -- the monolith's models.py, shared by both apps -----------------------------------------

legacy_session = scoped_session(sessionmaker())


class Base(DeclarativeBase):
    query = legacy_session.query_property()  # Model.query, as the old code expects


class Product(Base):
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    stock: Mapped[int]


class Post(Base):
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(120))
    product_id: Mapped[int | None]  # the shop's product it is about (another database)


SHOP_TABLES = [Base.metadata.tables["products"]]
BLOG_TABLES = [Base.metadata.tables["posts"]]


def create_shop(url: str, *, own_session: bool) -> Flask:
    app = Flask("shop")
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    db = SQLAlchemy()
    db.init_app(app)
    with app.app_context():
        legacy_session.configure(bind=db.engine)  # the last app to start wins

    def load(product_id: int) -> Product | None:
        if own_session:
            return db.session.get(Product, product_id)
        return Product.query.filter_by(id=product_id).first()  # Model.query: the shared session

    @app.get("/products/<int:product_id>")
    def product(product_id: int) -> Any:
        found = load(product_id)
        if found is None:
            return jsonify(error="no such product"), 404
        return jsonify(id=found.id, name=found.name, in_stock=found.stock > 0)

    @app.post("/products/<int:product_id>/restock")
    def restock(product_id: int) -> Any:
        # this one was ported to the app's own session already
        added = db.session.execute(
            update(Product).where(Product.id == product_id).values(stock=Product.stock + 10)
        ).rowcount  # type: ignore[attr-defined]
        stock = db.session.scalar(select(Product.stock).where(Product.id == product_id))
        db.session.commit()
        if not added:
            return jsonify(error="no such product"), 404
        return jsonify(id=product_id, stock=stock)

    return _with_teardown(app, db)


def create_blog(url: str, *, own_session: bool) -> Flask:
    app = Flask("blog")
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    db = SQLAlchemy()
    db.init_app(app)
    with app.app_context():
        legacy_session.configure(bind=db.engine)

    @app.get("/posts")
    def posts() -> Any:
        rows: Iterable[Post]
        if own_session:
            rows = db.session.execute(select(Post).order_by(Post.id)).scalars()
        else:
            rows = Post.query.order_by(Post.id)
        return jsonify([{"id": p.id, "title": p.title} for p in rows])

    return _with_teardown(app, db)


def _with_teardown(app: Flask, db: SQLAlchemy) -> Flask:
    @app.teardown_appcontext
    def end_legacy_session(exc: BaseException | None) -> None:
        legacy_session.remove()

    app.extensions["portal.db"] = db
    return app


class Portal(DispatcherMiddleware):
    """The two apps behind one WSGI entry point."""

    def __init__(self, shop: Flask, blog: Flask) -> None:
        super().__init__(_not_found, {"/shop": shop, "/blog": blog})
        self.shop, self.blog = shop, blog


def _not_found(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


def create_portal(urls: dict[str, str], *, own_session: bool = False) -> Portal:
    shop = create_shop(urls["shop"], own_session=own_session)
    blog = create_blog(urls["blog"], own_session=own_session)
    return Portal(shop, blog)


def create_fixed_portal(urls: dict[str, str]) -> Portal:
    return create_portal(urls, own_session=True)


def setup(portal: Portal) -> None:
    for app, tables, rows in (
        (portal.shop, SHOP_TABLES, [Product(id=1, name="Kettle", stock=3)]),
        (portal.blog, BLOG_TABLES, [Post(id=1, title="Our new kettle", product_id=1)]),
    ):
        with app.app_context():
            db = app.extensions["portal.db"]
            Base.metadata.create_all(db.engine, tables=tables)  # each app migrates its own
            db.session.add_all(rows)
            db.session.commit()


ENDPOINTS = [
    Endpoint("GET", "/shop/products/1", name="GET /shop/products/<id>"),
    Endpoint("POST", "/shop/products/1/restock", name="POST /shop/products/<id>/restock"),
    Endpoint("GET", "/blog/posts"),
]

buggy = Target(
    name="portal",
    app=create_portal,
    setup=setup,
    endpoints=ENDPOINTS,
    databases=("shop", "blog"),
    min_requests=1,
    expected_findings=frozenset({"wrong-engine", "serial-failure"}),
    description="two apps whose models share one base and its Model.query session",
)

fixed = Target(
    name="portal-fixed",
    app=create_fixed_portal,
    setup=setup,
    endpoints=ENDPOINTS,
    databases=("shop", "blog"),
    min_requests=1,
    description="each app queries through its own extension's session",
)
