"""Transactions left open: a module-level scoped session that is never removed.

The production story: an internal dashboard predates Flask-SQLAlchemy. Its module
creates ``Session = scoped_session(sessionmaker())`` once and every view queries
through it; nothing calls ``Session.remove()`` when a request ends. Every endpoint
only reads, so nobody worried. But the scoped session is thread-local and the
server's worker threads are reused: each request leaves its session, its
connection and the transaction its first SELECT began, checked out and open, for
whichever request that thread serves next (which then reads through an old
snapshot). That is a ``leaked-transaction``.

On MariaDB and PostgreSQL an open transaction holds a lock on every table it read
(InnoDB's metadata lock, PostgreSQL's ACCESS SHARE lock) until it ends. The next
deployment's ``ALTER TABLE`` waits for those locks, and every request that touches
the table queues behind the waiting ALTER: the site hangs during the migration.
The fuzzer's DDL probe finds this without a migration: after the concurrent phase it
tries a harmless schema change with a short lock-wait timeout and reports a
``hang`` that names the lock and the request holding it. On SQLite a read leaves no
lock behind, so there is only the leak.

The fixed twin removes the session when the app context ends.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from hypothesis import strategies as st
from sqlalchemy import ForeignKey, String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, scoped_session, sessionmaker

from fuzzer import Endpoint, Target

Session = scoped_session(sessionmaker())  # module level, as in the original code


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    region: Mapped[str] = mapped_column(String(20))


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    total_cents: Mapped[int]


def create_app(database_url: str, *, remove_sessions: bool = False) -> Flask:
    engine = create_engine(database_url)
    Session.configure(bind=engine)
    app = Flask(__name__)
    app.extensions["dashboard.engine"] = engine

    if remove_sessions:

        @app.teardown_appcontext
        def remove_session(exc: BaseException | None) -> None:
            Session.remove()

    @app.get("/stats/revenue")
    def revenue() -> Any:
        rows = Session.execute(
            select(Customer.region, func.sum(Order.total_cents))
            .join(Order, Order.customer_id == Customer.id)
            .group_by(Customer.region)
            .order_by(Customer.region)
        ).all()
        return jsonify({region: int(total) for region, total in rows})

    @app.get("/customers/<int:customer_id>")
    def customer(customer_id: int) -> Any:
        found = Session.get(Customer, customer_id)
        if found is None:
            return jsonify(error="no such customer"), 404
        orders = Session.scalar(select(func.count()).where(Order.customer_id == customer_id))
        return jsonify(id=found.id, name=found.name, region=found.region, orders=orders)

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, remove_sessions=True)


def setup(app: Flask) -> None:
    engine = app.extensions["dashboard.engine"]
    Base.metadata.create_all(engine)
    with sessionmaker(bind=engine)() as session:
        session.add_all(
            [
                Customer(id=1, name="Acme", region="north"),
                Customer(id=2, name="Globex", region="south"),
            ]
        )
        session.flush()  # the customers first: the orders' foreign key refers to them
        session.add_all(
            [
                Order(id=1, customer_id=1, total_cents=1200),
                Order(id=2, customer_id=1, total_cents=800),
                Order(id=3, customer_id=2, total_cents=4500),
            ]
        )
        session.commit()


ENDPOINTS = [
    Endpoint("GET", "/stats/revenue"),
    Endpoint(
        "GET",
        st.sampled_from([1, 2]).map(lambda i: f"/customers/{i}"),
        name="GET /customers/<id>",
    ),
]

buggy = Target(
    name="dashboard",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    min_requests=1,
    expected_findings=frozenset({"leaked-transaction"}),
    expected_on={
        "mariadb": frozenset({"leaked-transaction", "hang"}),
        "mysql": frozenset({"leaked-transaction", "hang"}),
        "postgres": frozenset({"leaked-transaction", "hang"}),
    },
    description="read-only views on a module-level scoped_session never removed",
)

fixed = Target(
    name="dashboard-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    min_requests=1,
    description="Session.remove() when the app context ends",
)
