"""A shared-expenses app with an audit history: keys numbered by who committed first.

The production story: every commit of the app writes a ``transaction`` row (an
auto-increment or a sequence) and a version row for each object it changed, keyed by
that transaction (``project_version``, ``bill_version``), the way SQLAlchemy-Continuum
keeps history: a version row's ``transaction_id`` names the commit that wrote it, its
``end_transaction_id`` the commit that replaced it. Neither column is a declared
foreign key.

* ``POST /projects/<id>/settle`` records three payments, one commit each (three
  transactions, three payments, three payment versions);
* ``POST /projects/<id>/bills`` adds a bill: a new ``bill`` row (an auto-increment of
  its own), its version, and the project's new total.

Run beside each other, the requests' transactions and bills are numbered in whatever
order they committed: ``transaction.id`` 3 is one request's in one run and the other's
in a serial run, and on MariaDB ``bill.id`` and ``transaction.id`` pair up differently.
That is no race; the fixed twin must give no finding. The buggy twin adds a bill to
the total it read before (a read-modify-write): two bills of one project at once, and
one of them is lost from the total — a ``lost-update``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import ForeignKey, String, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Transaction(db.Model):  # type: ignore[name-defined]
    __tablename__ = "transaction"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))


class Project(db.Model):  # type: ignore[name-defined]
    __tablename__ = "project"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))
    total: Mapped[int] = mapped_column(default=0)


class ProjectVersion(db.Model):  # type: ignore[name-defined]
    __tablename__ = "project_version"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    transaction_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    end_transaction_id: Mapped[int | None]
    total: Mapped[int]


class Payment(db.Model):  # type: ignore[name-defined]
    __tablename__ = "payment"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    share: Mapped[int]


class PaymentVersion(db.Model):  # type: ignore[name-defined]
    __tablename__ = "payment_version"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    transaction_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    end_transaction_id: Mapped[int | None]
    share: Mapped[int]


class Bill(db.Model):  # type: ignore[name-defined]
    __tablename__ = "bill"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    amount: Mapped[int]


class BillVersion(db.Model):  # type: ignore[name-defined]
    __tablename__ = "bill_version"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    transaction_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    end_transaction_id: Mapped[int | None]
    amount: Mapped[int]


def record(project_id: int, kind: str) -> int:
    """A bill's commit history: a transaction row, the project's version row (the
    previous one ended by it). Called with the project's row already locked (updated)."""
    transaction = Transaction(kind=kind)
    db.session.add(transaction)
    db.session.flush()
    project = db.session.get(Project, project_id, populate_existing=True)
    assert project is not None
    db.session.execute(
        update(ProjectVersion)
        .where(ProjectVersion.id == project_id, ProjectVersion.end_transaction_id.is_(None))
        .values(end_transaction_id=transaction.id)
    )
    db.session.add(
        ProjectVersion(
            id=project_id,
            transaction_id=transaction.id,
            total=project.total,
        )
    )
    return transaction.id


def create_app(database_url: str, *, atomic: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    @app.post("/projects/<int:project_id>/settle")
    def settle(project_id: int) -> Any:
        for share in (1, 2, 3):  # three payments, one commit each
            transaction = Transaction(kind="settle")
            payment = Payment(project_id=project_id, share=share)
            db.session.add_all([transaction, payment])
            db.session.flush()
            db.session.add(
                PaymentVersion(id=payment.id, transaction_id=transaction.id, share=share)
            )
            db.session.commit()
        return jsonify(project=project_id, payments=3)

    @app.post("/projects/<int:project_id>/bills")
    def add_bill(project_id: int) -> Any:
        amount = int(request.get_json()["amount"])
        if atomic:
            db.session.execute(
                update(Project).where(Project.id == project_id).values(total=Project.total + amount)
            )
        else:
            project = db.session.get(Project, project_id)
            assert project is not None
            total = project.total  # read, then write what was read plus the bill
            db.session.execute(
                update(Project).where(Project.id == project_id).values(total=total + amount)
            )
        bill = Bill(project_id=project_id, amount=amount)
        db.session.add(bill)
        db.session.flush()
        transaction_id = record(project_id, "bill")
        db.session.add(BillVersion(id=bill.id, transaction_id=transaction_id, amount=amount))
        db.session.commit()
        return jsonify(id=bill.id, amount=amount), 201

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, atomic=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add(Transaction(kind="setup"))
    db.session.add_all([Project(id=1, name="trip"), Project(id=2, name="flat")])
    db.session.flush()
    db.session.add_all(
        [
            ProjectVersion(id=1, transaction_id=1, total=0),
            ProjectVersion(id=2, transaction_id=1, total=0),
        ]
    )
    db.session.commit()


PROJECTS = st.sampled_from([1, 2])

ENDPOINTS = [
    Endpoint(
        "POST",
        PROJECTS.map(lambda i: f"/projects/{i}/settle"),
        name="POST /projects/<id>/settle",
    ),
    Endpoint(
        "POST",
        PROJECTS.map(lambda i: f"/projects/{i}/bills"),
        json=st.fixed_dictionaries({"amount": st.sampled_from([5, 7])}),
        name="POST /projects/<id>/bills",
    ),
]

buggy = Target(
    name="history",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    expected_findings=frozenset({"lost-update"}),
    description="a bill added to the total read before; history rows keyed by transaction",
)

fixed = Target(
    name="history-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    description="a bill added in one UPDATE; history rows keyed by transaction",
)
