"""A community marketplace of 67 endpoints: four races, two behind the least likely pairs.

The production story: a site where members list items for sale, talk in threads and
redeem coupons. Most of its endpoints are harmless: a list, a detail, a count, the
latest row and a first page of each of nine tables, and writers that insert a row or
set a column in the database (``views = views + 1``). Every request stamps the
signed-in member's ``last_seen`` first and commits (a ``before_request`` hook). Four
of the writers race:

* ``POST /posts/<id>/like``: ``post.likes += 1`` in Python, two likes at once keep
  one (a ``lost-update``; the likeliest pair: it reads and writes what it races on).
* ``POST /coupons/<code>/redeem``: counts the coupon's redemptions, refuses when they
  reach its limit, inserts one: two redemptions of a single-use coupon at once both
  pass the check (a ``duplicate-insert``).
* ``POST /listings/<id>/price``: one of fifteen endpoints that write ``listings``, the
  only one that edits through the ORM, and the table has a version counter
  (``version_id_col``). The seller saves a price twice at once (a double click): both
  loaded version 1, the second ``UPDATE … WHERE version = 1`` matches no row, and
  SQLAlchemy raises ``StaleDataError``: a 500 (a ``concurrency-error``). The other
  fourteen set columns with ``UPDATE`` statements and conflict with it on every pair,
  so its own pair is one among a hundred that look alike.
* ``GET /threads/<id>``: the thread page counts the view and commits (the request's
  second commit), renders the posts through about fifteen memoized helpers
  (Flask-Caching: author names, badges, the category, the site's settings; each a
  cache read, a query and a cache write when cold), then marks the thread read for the
  member with a get-or-create of a ``thread_reads`` row, unique on (member, thread).
  Two tabs at once both find no row and both insert it: the second insert fails with
  an ``IntegrityError`` (a ``concurrency-error``). The moments of decision before it
  are all cache reads.

The fixed twin: the like counts in the database, the coupon's uses are counted on its
row by one conditional ``UPDATE``, a price edit that finds its version gone reloads and saves
again, and the read marker's unique key decides.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any, ClassVar

from flask import Flask, abort, g, jsonify, request
from flask_caching import Cache
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import DateTime, ForeignKey, String, UniqueConstraint, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.orm.exc import StaleDataError

from fuzzer import Endpoint, Identity, Target


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
cache = Cache()

NAMES = ["alice", "bob", "carol"]


class User(db.Model):  # type: ignore[name-defined]
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    badges: Mapped[int] = mapped_column(default=0)
    last_seen: Mapped[datetime.datetime | None] = mapped_column(DateTime, nullable=True)


class Category(db.Model):  # type: ignore[name-defined]
    __tablename__ = "categories"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))


class Listing(db.Model):  # type: ignore[name-defined]
    __tablename__ = "listings"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(80))
    seller_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    price: Mapped[int] = mapped_column(default=10)
    status: Mapped[str] = mapped_column(String(20), default="active")
    featured: Mapped[bool] = mapped_column(default=False)
    views: Mapped[int] = mapped_column(default=0)
    bumps: Mapped[int] = mapped_column(default=0)
    shipping: Mapped[str] = mapped_column(String(20), default="post")
    condition: Mapped[str] = mapped_column(String(20), default="used")
    note: Mapped[str] = mapped_column(String(80), default="")
    version: Mapped[int] = mapped_column(default=1)
    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": version}


class Thread(db.Model):  # type: ignore[name-defined]
    __tablename__ = "threads"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(80))
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    views: Mapped[int] = mapped_column(default=0)


class Post(db.Model):  # type: ignore[name-defined]
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    thread_id: Mapped[int] = mapped_column(ForeignKey("threads.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(String(200))
    likes: Mapped[int] = mapped_column(default=0)


class ThreadRead(db.Model):  # type: ignore[name-defined]
    __tablename__ = "thread_reads"
    __table_args__ = (UniqueConstraint("user_id", "thread_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    thread_id: Mapped[int] = mapped_column(ForeignKey("threads.id"))


class Bookmark(db.Model):  # type: ignore[name-defined]
    __tablename__ = "bookmarks"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id"))


class Message(db.Model):  # type: ignore[name-defined]
    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    sender_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id"))
    text: Mapped[str] = mapped_column(String(200))


class Coupon(db.Model):  # type: ignore[name-defined]
    __tablename__ = "coupons"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    max_uses: Mapped[int]
    uses: Mapped[int] = mapped_column(default=0)


class Redemption(db.Model):  # type: ignore[name-defined]
    __tablename__ = "redemptions"
    id: Mapped[int] = mapped_column(primary_key=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))


MODELS: dict[str, Any] = {
    "users": User,
    "categories": Category,
    "listings": Listing,
    "threads": Thread,
    "posts": Post,
    "bookmarks": Bookmark,
    "messages": Message,
    "coupons": Coupon,
    "redemptions": Redemption,
}

#: The listing writers that set a column with an UPDATE statement: (name, values).
LISTING_UPDATES: dict[str, dict[str, Any]] = {
    "title": {"title": "renamed"},
    "describe": {"note": "like new"},
    "archive": {"status": "archived"},
    "unarchive": {"status": "active"},
    "sold": {"status": "sold"},
    "feature": {"featured": True},
    "unfeature": {"featured": False},
    "bump": {"bumps": Listing.bumps + 1},
    "view": {"views": Listing.views + 1},
    "shipping": {"shipping": "pickup"},
    "condition": {"condition": "new"},
    "recategorize": {"category_id": 2},
    "relist": {"status": "active", "bumps": Listing.bumps + 1},
}


def now() -> datetime.datetime:
    """The app's clock, fixed (a replay compares every statement's parameters)."""
    return datetime.datetime(2026, 1, 1, 12, 0)


def _row(obj: Any) -> dict[str, Any]:
    return {c.name: getattr(obj, c.name) for c in obj.__table__.columns if c.name != "last_seen"}


def _add_reads(app: Flask, table: str, model: Any) -> None:
    """Five read views per table, one statement each: list, detail, count, latest, page."""

    def listing() -> Any:
        # ordered: without ORDER BY, PostgreSQL lists an updated row last, so the order
        # of two updates showed in every list (a stale-read on the fixed twin)
        rows = db.session.execute(select(model).order_by(model.id)).scalars()
        return jsonify([_row(o) for o in rows])

    def detail(key: int) -> Any:
        obj = db.session.get(model, key)
        if obj is None:
            abort(404)
        return jsonify(_row(obj))

    def count() -> Any:
        return jsonify(count=db.session.execute(select(func.count(model.id))).scalar_one())

    def latest() -> Any:
        obj = db.session.execute(select(model).order_by(model.id.desc())).scalars().first()
        return jsonify(_row(obj) if obj is not None else None)

    def page() -> Any:
        rows = db.session.execute(select(model).order_by(model.id).limit(2)).scalars()
        return jsonify([_row(o) for o in rows])

    views: list[tuple[str, Callable[..., Any]]] = [
        (f"/{table}", listing),
        (f"/{table}/<int:key>", detail),
        (f"/{table}/count", count),
        (f"/{table}/latest", latest),
        (f"/{table}/page", page),
    ]
    for rule, view in views:
        if rule != "/threads/<int:key>":  # the thread page, below
            app.add_url_rule(rule, f"{table}_{view.__name__}", view)


@cache.memoize(timeout=600)
def display_name(user_id: int) -> str:
    user = db.session.get(User, user_id)
    return user.name if user is not None else "(gone)"


@cache.memoize(timeout=600)
def badge_count(user_id: int) -> int:
    return db.session.execute(select(User.badges).filter_by(id=user_id)).scalar_one_or_none() or 0


@cache.memoize(timeout=600)
def category_name(category_id: int) -> str:
    return db.session.execute(select(Category.name).filter_by(id=category_id)).scalar_one()


@cache.memoize(timeout=600)
def post_count(user_id: int) -> int:
    return db.session.execute(select(func.count(Post.id)).filter_by(author_id=user_id)).scalar_one()


def _site_settings() -> dict[str, str]:
    settings = cache.get("site-settings")
    if settings is None:
        settings = {"motd": "welcome", "theme": "light"}
        cache.set("site-settings", settings)
    return settings


class _Fixes:
    """What the fixed twin does differently, one flag per race."""

    def __init__(self, fixed: bool) -> None:
        self.like_in_sql = fixed
        self.count_on_row = fixed
        self.retry_stale = fixed
        self.unique_decides = fixed


def create_app(database_url: str, *, fixed: bool = False) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)
    cache.init_app(app, config={"CACHE_TYPE": "SimpleCache"})
    fixes = _Fixes(fixed)

    @app.before_request
    def stamp() -> None:
        name = request.headers.get("X-User")
        g.user = db.session.execute(select(User).filter_by(name=name)).scalar_one_or_none()
        if g.user is not None:
            g.user.last_seen = now()
            db.session.commit()

    def me() -> User:
        if g.user is None:
            abort(401)
        user: User = g.user
        return user

    for table, model in MODELS.items():
        _add_reads(app, table, model)
    _add_listing_writers(app, me, fixes)
    _add_forum(app, me, fixes)
    _add_shop(app, me, fixes)
    return app


def _add_listing_writers(app: Flask, me: Callable[[], User], fixes: _Fixes) -> None:
    """Fifteen writers of ``listings``: thirteen UPDATE statements, a new listing, and the
    price edit through the ORM (versioned)."""

    def writer(name: str, values: dict[str, Any]) -> Callable[[int], Any]:
        def write(key: int) -> Any:
            me()
            if db.session.get(Listing, key) is None:
                abort(404)
            db.session.execute(update(Listing).where(Listing.id == key).values(**values))
            db.session.commit()
            return jsonify(done=name)

        return write

    for name, values in LISTING_UPDATES.items():
        app.add_url_rule(
            f"/listings/<int:key>/{name}", f"listing_{name}", writer(name, values), methods=["POST"]
        )

    @app.post("/listings")
    def create_listing() -> Any:
        user = me()
        db.session.add(Listing(title="lamp", seller_id=user.id, category_id=1))
        db.session.commit()
        return jsonify(listed=True), 201

    @app.post("/listings/<int:key>/price")
    def price(key: int) -> Any:
        me()
        for attempt in range(3):
            listing = db.session.get(Listing, key)
            if listing is None:
                abort(404)
            listing.price = listing.price + 1
            try:
                db.session.commit()
                break
            except StaleDataError:
                if not fixes.retry_stale or attempt == 2:
                    raise
                db.session.rollback()  # saved meanwhile: reload, apply again
        return jsonify(priced=key)


def _add_forum(app: Flask, me: Callable[[], User], fixes: _Fixes) -> None:
    @app.get("/threads/<int:key>")
    def thread(key: int) -> Any:
        user = me()
        found = db.session.get(Thread, key)
        if found is None:
            abort(404)
        title, category = found.title, found.category_id
        db.session.execute(update(Thread).where(Thread.id == key).values(views=Thread.views + 1))
        db.session.commit()
        posts = db.session.execute(select(Post.author_id).filter_by(thread_id=key)).scalars()
        authors = sorted(set(posts))
        rendered = {
            "settings": _site_settings(),
            "category": category_name(category),
            "authors": [(display_name(a), badge_count(a), post_count(a)) for a in authors],
        }
        query = select(ThreadRead).filter_by(user_id=user.id, thread_id=key)
        first_visit = db.session.execute(query).scalar_one_or_none() is None
        if first_visit:
            db.session.add(ThreadRead(user_id=user.id, thread_id=key))
            try:
                db.session.commit()
            except IntegrityError:
                if not fixes.unique_decides:
                    raise
                db.session.rollback()
                first_visit = False  # the other tab marked it first
        return jsonify(title=title, page=rendered, first_visit=first_visit)

    @app.post("/threads/<int:key>/posts")
    def reply(key: int) -> Any:
        user = me()
        if db.session.get(Thread, key) is None:
            abort(404)
        db.session.add(Post(thread_id=key, author_id=user.id, text="+1"))
        db.session.commit()
        return jsonify(replied=key), 201

    @app.post("/posts/<int:key>/like")
    def like(key: int) -> Any:
        me()
        post = db.session.get(Post, key)
        if post is None:
            abort(404)
        if fixes.like_in_sql:
            db.session.execute(update(Post).where(Post.id == key).values(likes=Post.likes + 1))
        else:
            post.likes += 1
        db.session.commit()
        return jsonify(liked=key)

    @app.get("/threads/<int:key>/unread")
    def unread(key: int) -> Any:
        user = me()
        query = select(ThreadRead.id).filter_by(user_id=user.id, thread_id=key)
        return jsonify(unread=db.session.execute(query).first() is None)


def _add_shop(app: Flask, me: Callable[[], User], fixes: _Fixes) -> None:
    @app.post("/listings/<int:key>/bookmark")
    def bookmark(key: int) -> Any:
        user = me()
        if db.session.get(Listing, key) is None:
            abort(404)
        db.session.add(Bookmark(user_id=user.id, listing_id=key))
        db.session.commit()
        return jsonify(bookmarked=key), 201

    @app.post("/listings/<int:key>/messages")
    def message(key: int) -> Any:
        user = me()
        if db.session.get(Listing, key) is None:
            abort(404)
        db.session.add(Message(sender_id=user.id, listing_id=key, text="still there?"))
        db.session.commit()
        return jsonify(sent=key), 201

    @app.post("/coupons/<code>/redeem")
    def redeem(code: str) -> Any:
        user = me()
        coupon = db.session.execute(select(Coupon).filter_by(code=code)).scalar_one_or_none()
        if coupon is None:
            abort(404)
        if fixes.count_on_row:  # one conditional UPDATE checks and counts
            taken = db.session.execute(
                update(Coupon)
                .where(Coupon.id == coupon.id, Coupon.uses < Coupon.max_uses)
                .values(uses=Coupon.uses + 1)
            )
            if taken.rowcount == 0:  # type: ignore[attr-defined]
                db.session.rollback()
                return jsonify(error="used up"), 409
        else:
            used = db.session.execute(
                select(func.count(Redemption.id)).filter_by(coupon_id=coupon.id)
            ).scalar_one()
            if used >= coupon.max_uses:
                return jsonify(error="used up"), 409
        db.session.add(Redemption(coupon_id=coupon.id, user_id=user.id))
        db.session.commit()
        return jsonify(redeemed=code), 201

    @app.post("/me/badges")
    def earn_badge() -> Any:
        user = me()
        db.session.execute(update(User).where(User.id == user.id).values(badges=User.badges + 1))
        db.session.commit()
        return jsonify(earned=True)


def create_fixed_app(database_url: str) -> Flask:
    return create_app(database_url, fixed=True)


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add_all(User(id=k + 1, name=name) for k, name in enumerate(NAMES))
    db.session.add_all([Category(id=1, name="home"), Category(id=2, name="garden")])
    db.session.commit()  # the rows the others' foreign keys name, first
    # listings numbered by the database (1, 2, 3 in this order): POST /listings inserts
    # more, and explicit ids would not advance a PostgreSQL sequence
    db.session.add_all(
        Listing(title=title, seller_id=1 + k % 3, category_id=1 + k % 2)
        for k, title in enumerate(["chair", "table", "rake"], start=1)
    )
    db.session.add_all(
        [Thread(id=1, title="welcome", category_id=1), Thread(id=2, title="rules", category_id=2)]
    )
    db.session.add_all(
        [Coupon(id=1, code="SPRING", max_uses=1), Coupon(id=2, code="FALL", max_uses=5)]
    )
    db.session.commit()
    # no explicit key where requests insert: a PostgreSQL sequence would not know it
    db.session.add_all(
        Post(thread_id=1 + k % 2, author_id=1 + k % 3, text=f"post {k}") for k in range(6)
    )
    db.session.commit()


IDENTITIES = [Identity(name, headers={"X-User": name}) for name in NAMES]
KEYS = st.integers(1, 3)


def _endpoint(method: str, rule: str, values: st.SearchStrategy[Any] = KEYS) -> Endpoint:
    """An endpoint whose path has one ``<id>``, drawn from ``values``."""
    return Endpoint(method, values.map(rule.replace("<id>", "{}").format), name=f"{method} {rule}")


def _endpoints() -> list[Endpoint]:
    result = []
    for table in MODELS:
        detail = [_endpoint("GET", f"/{table}/<id>")] if table != "threads" else []
        result += [
            Endpoint("GET", f"/{table}"),
            *detail,
            Endpoint("GET", f"/{table}/count"),
            Endpoint("GET", f"/{table}/latest"),
            Endpoint("GET", f"/{table}/page"),
        ]
    result += [_endpoint("POST", f"/listings/<id>/{name}") for name in LISTING_UPDATES]
    result += [
        Endpoint("POST", "/listings"),
        _endpoint("POST", "/listings/<id>/price"),
        _endpoint("GET", "/threads/<id>", st.integers(1, 2)),
        _endpoint("POST", "/threads/<id>/posts", st.integers(1, 2)),
        _endpoint("POST", "/posts/<id>/like"),
        _endpoint("GET", "/threads/<id>/unread", st.integers(1, 2)),
        _endpoint("POST", "/listings/<id>/bookmark"),
        _endpoint("POST", "/listings/<id>/messages"),
        _endpoint("POST", "/coupons/<id>/redeem", st.sampled_from(["SPRING", "FALL"])),
        Endpoint("POST", "/me/badges"),
    ]
    return result


ENDPOINTS = _endpoints()
#: The races, as (kind, endpoint): what a run must find.
RACES = frozenset(
    {
        ("lost-update", "POST /posts/<id>/like"),
        ("duplicate-insert", "POST /coupons/<id>/redeem"),
        ("concurrency-error", "POST /listings/<id>/price"),
        ("concurrency-error", "GET /threads/<id>"),
    }
)

buggy = Target(
    name="bazaar",
    app=create_app,
    setup=setup,
    endpoints=ENDPOINTS,
    identities=IDENTITIES,
    ignore_columns=frozenset({"users.last_seen"}),
    max_requests=2,
    expected_findings=frozenset(kind for kind, _ in RACES),
    description="67 endpoints, four races: a like, a coupon, a versioned price, a read marker",
)

fixed = Target(
    name="bazaar-fixed",
    app=create_fixed_app,
    setup=setup,
    endpoints=ENDPOINTS,
    identities=IDENTITIES,
    ignore_columns=frozenset({"users.last_seen"}),
    max_requests=2,
    description="likes in SQL, coupon uses counted by one UPDATE, a stale price retried",
)
