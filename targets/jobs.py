"""Duplicate submission: a client sends the same "create job" request twice.

The production story: a reporting service lets clients start export jobs. Clients
retry on timeouts and users double-click, so every request carries a client token,
and the endpoint is meant to be idempotent: it looks for a job with that token and
returns it if it exists, and only otherwise inserts a new one. The check is done in
Python, with a SELECT. Two submissions that overlap both find nothing and both
insert: two identical jobs run, and the customer is billed twice. One after the
other, the second submission returns the first job. That is a ``duplicate-insert``.

The fixed twin puts a unique constraint on the client token and answers the
``IntegrityError`` of the loser with 409 Conflict: the database, which sees both
inserts, decides.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Target


class JobColumns:
    """The columns both twins share; only the constraint on the token differs."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    report: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(20))
    client_token: Mapped[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "client_token": self.client_token,
            "report": self.report,
            "state": self.state,
        }


class Base(DeclarativeBase):
    pass


class FixedBase(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
fixed_db = SQLAlchemy(model_class=FixedBase)


class Job(JobColumns, db.Model):  # type: ignore[name-defined]
    client_token: Mapped[str] = mapped_column(String(64), index=True)  # checked in Python


class UniqueJob(JobColumns, fixed_db.Model):  # type: ignore[name-defined]
    client_token: Mapped[str] = mapped_column(String(64), unique=True)  # checked by the database


def create_app(database_url: str, *, fixed: bool = False) -> Flask:
    store, model = (fixed_db, UniqueJob) if fixed else (db, Job)
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    store.init_app(app)

    def by_token(token: str) -> Any:
        query = select(model).where(model.client_token == token)
        return store.session.execute(query).scalar_one_or_none()

    @app.post("/jobs")
    def submit() -> Any:
        data = request.get_json()
        existing = by_token(data["client_token"])
        if existing is not None:
            return jsonify(existing.to_dict()), 200
        job = model(client_token=data["client_token"], report=data["report"], state="queued")
        store.session.add(job)
        try:
            store.session.commit()
        except IntegrityError:  # only the fixed twin has the constraint
            store.session.rollback()
            return jsonify(error="this submission is already being processed"), 409
        return jsonify(job.to_dict()), 201

    @app.get("/jobs/<token>")
    def show(token: str) -> Any:
        job = by_token(token)
        if job is None:
            return jsonify(error="no such job"), 404
        return jsonify(job.to_dict())

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, fixed=True)


def setup(app: Flask) -> None:
    store = app.extensions["sqlalchemy"]
    store.create_all()
    model = UniqueJob if store is fixed_db else Job
    store.session.add(model(client_token="t-0", report="sales", state="done"))
    store.session.commit()


TOKENS = st.sampled_from(["t-1", "t-2", "t-0"])

ENDPOINTS = [
    Endpoint(
        "POST",
        "/jobs",
        json=st.fixed_dictionaries(
            {"client_token": TOKENS, "report": st.sampled_from(["sales", "stock"])}
        ),
    ),
    Endpoint("GET", TOKENS.map(lambda t: f"/jobs/{t}"), name="GET /jobs/<token>"),
]

buggy = Target(
    name="jobs",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    expected_findings=frozenset({"duplicate-insert"}),
    description="an idempotency check in Python: SELECT by client token, then INSERT",
)

fixed = Target(
    name="jobs-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    description="a unique constraint on the client token; the loser gets 409",
)
