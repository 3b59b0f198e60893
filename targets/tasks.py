"""Deleted under an expired object: a task is completed while someone deletes it.

The production story: a to-do app. ``POST /tasks/<id>/complete`` loads the task,
marks it done and commits; then it answers with the task, reading ``task.title``
and friends. After a commit SQLAlchemy expires every loaded object, so those reads
reload the row by primary key. If another request deleted the task in between,
the row is gone and SQLAlchemy raises ``ObjectDeletedError``: a 500, where one
request after the other gives either the completed task (complete, then delete)
or a 404 (delete, then complete). That is a ``concurrency-error``.

The developers did think about deletion: a task deleted *before* the UPDATE makes
it match no row (``StaleDataError``), which both twins answer with 404. What the
buggy twin misses is the window *after* its own commit.

The fixed twin builds its answer before committing, so nothing is reloaded.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import String, delete, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.orm.exc import StaleDataError

from fuzzer import Endpoint, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Task(db.Model):  # type: ignore[name-defined]
    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(120))
    done: Mapped[bool] = mapped_column(default=False)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "done": self.done}


def create_app(database_url: str, *, answer_before_commit: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    def not_found() -> Any:
        return jsonify(error="no such task"), 404

    @app.get("/tasks")
    def index() -> Any:
        tasks = db.session.execute(select(Task).order_by(Task.id)).scalars()
        return jsonify([t.to_dict() for t in tasks])

    @app.post("/tasks/<int:task_id>/complete")
    def complete(task_id: int) -> Any:
        task = db.session.get(Task, task_id)
        if task is None:
            return not_found()
        task.done = True
        try:
            db.session.flush()
        except StaleDataError:  # deleted since we loaded it
            db.session.rollback()
            return not_found()
        if answer_before_commit:
            answer = task.to_dict()
            db.session.commit()
            return jsonify(answer)
        db.session.commit()  # expires the task...
        return jsonify(task.to_dict())  # ...so this reloads it: gone if deleted meanwhile

    @app.delete("/tasks/<int:task_id>")
    def remove(task_id: int) -> Any:
        db.session.execute(delete(Task).where(Task.id == task_id))
        db.session.commit()
        return "", 204  # idempotent: deleting a deleted task is no error

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, answer_before_commit=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all(
        [
            Task(id=1, title="write the release notes"),
            Task(id=2, title="book the venue"),
        ]
    )
    db.session.commit()


TASK_IDS = st.sampled_from([1, 2])

ENDPOINTS = [
    Endpoint(
        "POST",
        TASK_IDS.map(lambda i: f"/tasks/{i}/complete"),
        name="POST /tasks/<id>/complete",
    ),
    Endpoint("DELETE", TASK_IDS.map(lambda i: f"/tasks/{i}"), name="DELETE /tasks/<id>"),
    Endpoint("GET", "/tasks"),
]

buggy = Target(
    name="tasks",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    expected_findings=frozenset({"concurrency-error"}),
    description="answers with an object expired by its commit, deleted meanwhile",
)

fixed = Target(
    name="tasks-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    description="builds the answer before committing",
)
