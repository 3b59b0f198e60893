"""A playlist whose songs get ids SQLite gives out again, and a counter that loses updates.

The production story: ``POST /lists/<id>/songs`` adds a song and counts it in the
list's ``added`` by reading the list and writing the number back plus one; two adds at
once both read the same number and one is not counted (a lost update).
``DELETE /songs/<id>`` counts the list's songs, deletes the song and answers how many
are left.

SQLite gives a new row the highest id + 1 (``INTEGER PRIMARY KEY`` without
``AUTOINCREMENT``): after the song with the highest id is deleted, the next song added
gets that id again. A delete that counted before an add committed, and deleted after
it, is the serial order "delete, then add" — where the add gets the old id, while in
the execution it got a new one. The rows are the same up to the generated key: the
oracle matches generated keys by content, a key given again after a DELETE included
(DESIGN.md §11), so the fixed twin is clean on SQLite as on the servers (before, this
was reported as a ``limit-overrun``).

The fixed twin counts with ``UPDATE lists SET added = added + 1``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import ForeignKey, String, delete, func, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Playlist(db.Model):  # type: ignore[name-defined]
    __tablename__ = "lists"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    added: Mapped[int] = mapped_column(default=0)


class Song(db.Model):  # type: ignore[name-defined]
    __tablename__ = "songs"
    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id"))
    title: Mapped[str] = mapped_column(String(40))


def count(list_id: int) -> int:
    return int(db.session.scalar(select(func.count()).where(Song.list_id == list_id)) or 0)


def create_app(database_url: str, *, atomic: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    @app.post("/lists/<int:list_id>/songs")
    def add(list_id: int) -> Any:
        if atomic:  # the fix: the database adds one to what it holds
            db.session.execute(
                update(Playlist).where(Playlist.id == list_id).values(added=Playlist.added + 1)
            )
        else:
            playlist = db.session.get(Playlist, list_id)
            if playlist is None:
                abort(404)
            playlist.added = playlist.added + 1  # read, then write back: a lost update
        song = Song(list_id=list_id, title=request.get_json()["title"])
        db.session.add(song)
        db.session.flush()
        song_id = song.id  # before the commit: reading it after would reload the row
        db.session.commit()
        return jsonify(id=song_id), 201

    @app.delete("/songs/<int:song_id>")
    def remove(song_id: int) -> Any:
        song = db.session.get(Song, song_id)
        if song is None:
            abort(404)
        left = count(song.list_id) - 1
        deleted = db.session.execute(delete(Song).where(Song.id == song_id)).rowcount  # type: ignore[attr-defined]
        db.session.commit()
        if not deleted:
            abort(404)
        return jsonify(removed=song_id, left=left)

    @app.get("/lists/<int:list_id>")
    def show(list_id: int) -> Any:
        titles = db.session.scalars(
            select(Song.title).where(Song.list_id == list_id).order_by(Song.title)
        ).all()
        return jsonify(songs=list(titles))

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, atomic=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all([Playlist(name="road trip"), Playlist(name="focus")])
    db.session.flush()
    # ids 1, 2, 3 in this order (generated: the servers' sequences move with them);
    # song 3, the highest, is on list 1
    for list_id, title in ((1, "intro"), (2, "calm"), (1, "outro")):
        db.session.add(Song(list_id=list_id, title=title))
        db.session.flush()
    db.session.commit()


ENDPOINTS = [
    Endpoint(
        "POST",
        "/lists/1/songs",
        json=st.fixed_dictionaries({"title": st.sampled_from(["encore", "bonus"])}),
    ),
    Endpoint("DELETE", st.sampled_from(["/songs/3", "/songs/2"])),
    Endpoint("GET", "/lists/1"),
]

buggy = Target(
    name="playlist",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    expected_findings=frozenset({"lost-update"}),
    description="a read-then-write count of songs added; SQLite reuses a deleted id",
)

fixed = Target(
    name="playlist-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    description="UPDATE lists SET added = added + 1",
)
