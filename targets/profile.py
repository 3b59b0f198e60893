"""Stale merge: two endpoints each change one field of a user by merging a detached copy.

The production story: ``PUT /user/name`` and ``PUT /user/age`` each load the user in
one session, close it, change one attribute of the now detached object, and
``merge`` it into a new session before committing. Merge copies *every* loaded
attribute onto the fresh row, so the UPDATE writes the stale value of the column
the other endpoint just changed: when the two overlap, one change vanishes.

The fixed twin changes the one column inside one session and one transaction, so
its UPDATE sets only that column.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, String

from fuzzer import Endpoint, Target

# Models in the style SQLAlchemy 1.4 with Flask-SQLAlchemy 2.5 and SQLAlchemy 2 with
# Flask-SQLAlchemy 3 both run: CI runs this target on the oldest supported stack too.
db = SQLAlchemy()


class User(db.Model):  # type: ignore[name-defined]
    __tablename__ = "users"
    id = Column(Integer, primary_key=True)
    name = Column(String(80), nullable=False)
    age = Column(Integer, nullable=False)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "age": self.age}


def create_app(database_url: str, *, merge_stale_copies: bool = True) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    def update(field: str) -> Any:
        data = request.get_json()
        if merge_stale_copies:
            user = db.session.get(User, data["id"])  # load in one session...
            if user is None:
                abort(404)
            db.session.close()  # ...close it: the user is detached
            setattr(user, field, data["key"])
            user = db.session.merge(user)  # every loaded attribute is copied back
        else:
            user = db.session.get(User, data["id"])
            if user is None:
                abort(404)
            setattr(user, field, data["key"])  # only this column is written
        result = {"id": user.id, field: getattr(user, field)}
        db.session.commit()
        return jsonify(result)

    @app.put("/user/name")
    def update_name() -> Any:
        return update("name")

    @app.put("/user/age")
    def update_age() -> Any:
        return update("age")

    @app.get("/user/<int:user_id>")
    def show_user(user_id: int) -> Any:
        user = db.session.get(User, user_id)
        if user is None:
            abort(404)
        return jsonify(user.to_dict())

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, merge_stale_copies=False)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all([User(id=1, name="张三", age=30), User(id=2, name="Ada", age=36)])
    db.session.commit()


ENDPOINTS = [
    Endpoint(
        "PUT",
        "/user/name",
        json=st.fixed_dictionaries({"id": st.just(1), "key": st.sampled_from(["李四", "王五"])}),
    ),
    Endpoint(
        "PUT",
        "/user/age",
        json=st.fixed_dictionaries({"id": st.just(1), "key": st.integers(19, 60)}),
    ),
    Endpoint("GET", st.sampled_from(["/user/1", "/user/2"]), name="GET /user/<id>"),
]

buggy = Target(
    name="profile",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    expected_findings=frozenset({"lost-update"}),
    description="two endpoints merge stale detached copies of one user",
)

fixed = Target(
    name="profile-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    description="each endpoint changes its one column in one session",
)
