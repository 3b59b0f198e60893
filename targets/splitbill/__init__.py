"""Shared expenses without user accounts, shaped like ihatemoney: a *project* has an id
and a private code. People sign in to the web pages with a form that puts the project
in the session (``POST /authenticate``); the REST API takes HTTP Basic
``project_id:code`` on every request. The seed is a module function,
``create_demo_project()`` (project ``demo``, code ``demo``), and ``<project_id>`` is
the project's string key, not its name.

The planted race: adding a bill (``POST /api/projects/<project_id>/bills``, JSON
``{"payer": id, "amount": n}``) adds the amount to the payer's balance by reading it
and writing it back: two bills at once keep one (lost-update). ``create_app(
fixed=True)`` is the fixed twin: ``balance = balance + amount`` in SQL.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask, abort, jsonify, request, session
from flask_sqlalchemy import SQLAlchemy
from werkzeug.security import check_password_hash, generate_password_hash

db = SQLAlchemy()


class Project(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.String(64), primary_key=True)
    name = db.Column(db.String(80), nullable=False)
    password = db.Column(db.String(200), nullable=False)  # hashed


class Person(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    project_id = db.Column(db.String(64), db.ForeignKey("project.id"), nullable=False)
    name = db.Column(db.String(40), nullable=False)
    balance = db.Column(db.Integer, nullable=False, default=0)


class Bill(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    project_id = db.Column(db.String(64), db.ForeignKey("project.id"), nullable=False)
    payer_id = db.Column(db.Integer, db.ForeignKey("person.id"), nullable=False)
    amount = db.Column(db.Integer, nullable=False)


def create_demo_project() -> None:
    """The demo project the README tells you to try."""
    project = Project(
        id="demo",
        name="demonstration",
        password=generate_password_hash("demo", "pbkdf2:sha256:1000"),
    )
    db.session.add(project)
    db.session.flush()  # the project first: MariaDB checks the people's foreign key
    db.session.add_all([Person(project_id="demo", name=n) for n in ("zoe", "yan")])
    db.session.commit()


def _project(project_id: str) -> Project:
    """The project the request may act on: HTTP Basic or the session."""
    auth = request.authorization
    if auth is not None:
        found = db.session.get(Project, auth.username)
        if found is None or not check_password_hash(found.password, auth.password or ""):
            abort(401)
    elif session.get("project") is not None:
        found = db.session.get(Project, session["project"])
    else:
        abort(401)
    if found is None or found.id != project_id:
        abort(403)
    return found


def create_app(fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite:///splitbill.db", SECRET_KEY="split")
    db.init_app(app)

    @app.post("/authenticate")
    def authenticate() -> Any:
        found = db.session.get(Project, request.form.get("id", ""))
        if found is None or not check_password_hash(
            found.password, request.form.get("password", "")
        ):
            return "wrong project or code", 401
        session["project"] = found.id
        return jsonify(ok=True)

    @app.get("/api/projects/<project_id>")
    def project(project_id: str) -> Any:
        found = _project(project_id)
        people = db.session.scalars(sa.select(Person).where(Person.project_id == found.id))
        return jsonify(name=found.name, people={p.id: p.balance for p in people})

    @app.post("/api/projects/<project_id>/bills")
    def add_bill(project_id: str) -> Any:
        found = _project(project_id)
        data = request.get_json() or {}
        payer = db.session.get(Person, int(data["payer"]))
        amount = int(data["amount"])
        if payer is None or payer.project_id != found.id or amount < 1:
            abort(400)
        if fixed:  # the payer's row first, then the bill that names it (lock order)
            db.session.execute(
                sa.update(Person)
                .where(Person.id == payer.id)
                .values(balance=Person.balance + amount)
            )
            db.session.add(Bill(project_id=found.id, payer_id=payer.id, amount=amount))
        else:
            db.session.add(Bill(project_id=found.id, payer_id=payer.id, amount=amount))
            payer.balance = payer.balance + amount
        db.session.commit()
        return jsonify(ok=True), 201

    return app
