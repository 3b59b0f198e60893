"""A lending library of 13 endpoints: three races, one behind the least likely pair.

The production story: members borrow and return books, put holds on them, review them
and pay their fines. Most endpoints are harmless (reads, writes of one statement), and
three race:

* ``POST /books/<id>/borrow`` with itself: it reads the copies left, refuses at none,
  and sets ``copies - 1`` in Python. Two members borrowing the last copy at once both
  get it (two loans, and the count says none is missing): the likeliest pair, since it
  reads and then writes what it races on. (The same bug loses a return's ``copies + 1``
  written between its read and its write.)
* ``POST /books/<id>/hold`` with itself: a get-or-create of a hold, unique on (member,
  book). A double click finds no hold twice, and the second insert fails with an
  ``IntegrityError``: a 500 only under concurrency.
* ``POST /books/<id>/borrow`` with ``POST /me/fees``: a borrow is refused while the
  member owes an unpaid fine; the monthly fee counts the member's open loans and
  charges one fine of that many units. Each reads what only the other writes (fines,
  loans) and writes what the other only reads: they share no written table and no row,
  so their pair is the least likely of all (likelihood 0). At once, the borrow sees no
  fine and the fee misses the new loan: a loan and a fee of one unit, which no order of
  the two makes (write skew).

Every signed-in request reads a site notice from the cache that no request writes: no
conflict point (issue 20, item 8); a borrow reads its shelf's cache key, which a return
deletes: a conflict point between the two.

The fixed twin: the borrow takes a copy with one conditional ``UPDATE``, a hold's
unique key decides (a failed insert is the hold already there), and both the borrow and
the fee first bump the member's own row, so they take one lock and the second reads
after the first committed (``oncall``'s fix; a locking read keeps MariaDB's snapshot
no older than that lock).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, g, jsonify, request
from flask_caching import Cache
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import ForeignKey, String, UniqueConstraint, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Identity, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
cache = Cache()

NAMES = ["alice", "bob"]


class Member(db.Model):  # type: ignore[name-defined]
    __tablename__ = "members"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    balance: Mapped[int] = mapped_column(default=0)
    changes: Mapped[int] = mapped_column(default=0)


class Book(db.Model):  # type: ignore[name-defined]
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(80))
    copies: Mapped[int]
    stars: Mapped[int] = mapped_column(default=0)


class Loan(db.Model):  # type: ignore[name-defined]
    __tablename__ = "loans"
    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    book_id: Mapped[int] = mapped_column(ForeignKey("books.id"))
    returned: Mapped[bool] = mapped_column(default=False)


class Hold(db.Model):  # type: ignore[name-defined]
    __tablename__ = "holds"
    __table_args__ = (UniqueConstraint("member_id", "book_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    book_id: Mapped[int] = mapped_column(ForeignKey("books.id"))


class Review(db.Model):  # type: ignore[name-defined]
    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    book_id: Mapped[int] = mapped_column(ForeignKey("books.id"))
    likes: Mapped[int] = mapped_column(default=0)


class Fine(db.Model):  # type: ignore[name-defined]
    __tablename__ = "fines"
    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    amount: Mapped[int]
    paid: Mapped[bool] = mapped_column(default=False)


def _row(obj: Any) -> dict[str, Any]:
    return {c.name: getattr(obj, c.name) for c in obj.__table__.columns}


def create_app(database_url: str, *, fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)
    cache.init_app(app, config={"CACHE_TYPE": "SimpleCache"})

    @app.before_request
    def sign_in() -> None:
        g.name = request.headers.get("X-User")

    def me() -> Member:
        g.notice = cache.get("notice")  # a site notice, set by hand: no request writes it
        member = db.session.execute(
            select(Member).filter_by(name=g.name).with_for_update(read=False)
            if fixed
            # a locking read first (fixed): MariaDB's snapshot starts no earlier than it
            else select(Member).filter_by(name=g.name)
        ).scalar_one_or_none()
        if member is None:
            abort(401)
        if fixed:  # one lock per member: a borrow and a fee of one member take turns
            db.session.execute(
                update(Member).where(Member.id == member.id).values(changes=Member.changes + 1)
            )
        return member

    def book_or_404(key: int) -> Book:
        book = db.session.get(Book, key)
        if book is None:
            abort(404)
        return book

    @app.get("/books")
    def books() -> Any:
        return jsonify([_row(b) for b in db.session.execute(select(Book)).scalars()])

    @app.get("/books/<int:key>")
    def book(key: int) -> Any:
        return jsonify(_row(book_or_404(key)))

    @app.get("/books/<int:key>/reviews")
    def reviews(key: int) -> Any:
        rows = db.session.execute(select(Review).filter_by(book_id=key)).scalars()
        return jsonify([_row(r) for r in rows])

    @app.get("/me")
    def account() -> Any:
        member = me()
        loans = db.session.scalar(
            select(func.count(Loan.id)).filter_by(member_id=member.id, returned=False)
        )
        owed = db.session.scalar(
            select(func.sum(Fine.amount)).filter_by(member_id=member.id, paid=False)
        )
        db.session.rollback()
        return jsonify(name=member.name, loans=loans, owed=owed or 0)

    @app.post("/books/<int:key>/borrow")
    def borrow(key: int) -> Any:
        if cache.get(f"shelf:{key}") == "closed":  # a return reopens the shelf
            return jsonify(error="shelf closed"), 409
        member = me()
        owed = db.session.scalar(
            select(func.count(Fine.id)).filter_by(member_id=member.id, paid=False)
        )
        if owed:
            db.session.rollback()
            return jsonify(error="pay your fines first"), 409
        if fixed:
            taken = db.session.execute(
                update(Book).where(Book.id == key, Book.copies > 0).values(copies=Book.copies - 1)
            ).rowcount  # type: ignore[attr-defined]
        else:
            found = book_or_404(key)
            taken = found.copies > 0
            if taken:
                found.copies = found.copies - 1
        if not taken:
            db.session.rollback()
            return jsonify(error="no copy left"), 409
        db.session.add(Loan(member_id=member.id, book_id=key))
        db.session.commit()
        return jsonify(borrowed=key), 201

    @app.post("/loans/<int:key>/return")
    def give_back(key: int) -> Any:
        loan = db.session.get(Loan, key)
        if loan is None:
            abort(404)
        ended = db.session.execute(
            update(Loan).where(Loan.id == key, Loan.returned.is_(False)).values(returned=True)
        ).rowcount  # type: ignore[attr-defined]
        if ended:  # one conditional UPDATE: a double return gives the copy back once
            db.session.execute(
                update(Book).where(Book.id == loan.book_id).values(copies=Book.copies + 1)
            )
            cache.delete(f"shelf:{loan.book_id}")
        db.session.commit()
        return jsonify(returned=bool(ended))

    @app.post("/books/<int:key>/hold")
    def hold(key: int) -> Any:
        member = me()
        book_or_404(key)
        found = db.session.execute(
            select(Hold).filter_by(member_id=member.id, book_id=key)
        ).scalar_one_or_none()
        if found is None:
            db.session.add(Hold(member_id=member.id, book_id=key))
            try:
                db.session.commit()
            except IntegrityError:
                if not fixed:
                    raise
                db.session.rollback()  # the other request's hold: the same result
        return jsonify(held=key)

    @app.post("/holds/<int:key>/cancel")
    def cancel(key: int) -> Any:
        db.session.execute(Hold.__table__.delete().where(Hold.id == key))
        db.session.commit()
        return jsonify(cancelled=key)

    @app.post("/books/<int:key>/review")
    def review(key: int) -> Any:
        member = me()
        # the book's row first: an insert first would take the row's shared lock (its
        # foreign key) and two reviews would deadlock on MariaDB upgrading it
        db.session.execute(update(Book).where(Book.id == key).values(stars=Book.stars + 4))
        db.session.add(Review(member_id=member.id, book_id=key))
        db.session.commit()
        return jsonify(reviewed=key), 201

    @app.post("/reviews/<int:key>/like")
    def like(key: int) -> Any:
        db.session.execute(update(Review).where(Review.id == key).values(likes=Review.likes + 1))
        db.session.commit()
        return jsonify(liked=key)

    @app.post("/me/fees")
    def fees() -> Any:
        member = me()
        loans = db.session.scalar(
            select(func.count(Loan.id)).filter_by(member_id=member.id, returned=False)
        )
        if loans:
            db.session.add(Fine(member_id=member.id, amount=loans))
        db.session.commit()
        return jsonify(charged=loans or 0)

    @app.post("/fines/<int:key>/pay")
    def pay(key: int) -> Any:
        fine = db.session.get(Fine, key)
        if fine is None:
            abort(404)
        paid = db.session.execute(
            update(Fine).where(Fine.id == key, Fine.paid.is_(False)).values(paid=True)
        ).rowcount  # type: ignore[attr-defined]
        if paid:
            db.session.execute(
                update(Member)
                .where(Member.id == fine.member_id)
                .values(balance=Member.balance - fine.amount)
            )
        db.session.commit()
        return jsonify(paid=bool(paid))

    @app.post("/me/deposit")
    def deposit() -> Any:
        member = me()
        db.session.execute(
            update(Member).where(Member.id == member.id).values(balance=Member.balance + 10)
        )
        db.session.commit()
        return jsonify(deposited=10)

    return app


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, fixed=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all(Member(id=k + 1, name=name) for k, name in enumerate(NAMES))
    db.session.add_all([Book(id=1, title="Dune", copies=1), Book(id=2, title="Emma", copies=3)])
    db.session.commit()  # the rows the others' foreign keys name, first
    # no explicit key where requests insert: a PostgreSQL sequence would not know it
    db.session.add_all([Loan(member_id=1, book_id=1), Loan(member_id=2, book_id=2)])
    db.session.add_all([Review(member_id=2, book_id=1), Fine(member_id=2, amount=3, paid=True)])
    db.session.commit()


def _endpoint(method: str, rule: str, values: st.SearchStrategy[Any]) -> Endpoint:
    """An endpoint whose path has one ``<id>``, drawn from ``values``."""
    return Endpoint(method, values.map(rule.replace("<id>", "{}").format), name=f"{method} {rule}")


KEYS = st.integers(1, 2)
ENDPOINTS = [
    Endpoint("GET", "/books"),
    _endpoint("GET", "/books/<id>", KEYS),
    _endpoint("GET", "/books/<id>/reviews", KEYS),
    Endpoint("GET", "/me"),
    _endpoint("POST", "/books/<id>/borrow", KEYS),
    _endpoint("POST", "/loans/<id>/return", KEYS),
    _endpoint("POST", "/books/<id>/hold", KEYS),
    _endpoint("POST", "/holds/<id>/cancel", KEYS),
    _endpoint("POST", "/books/<id>/review", KEYS),
    _endpoint("POST", "/reviews/<id>/like", KEYS),
    Endpoint("POST", "/me/fees"),
    _endpoint("POST", "/fines/<id>/pay", KEYS),
    Endpoint("POST", "/me/deposit"),
]
IDENTITIES = [Identity(name, headers={"X-User": name}) for name in NAMES]

buggy = Target(
    name="circulation",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    identities=IDENTITIES,
    max_requests=2,
    description="13 endpoints, three races: the last copy, a double hold, a fee beside a borrow",
)

fixed = Target(
    name="circulation-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    identities=IDENTITIES,
    max_requests=2,
    description="a copy taken by one UPDATE, a hold's key decides, one lock per member",
)
