"""Deposits that retry when the database says "try again": three ways to get it wrong.

The production story: ``POST /accounts/<id>/deposit`` adds to a balance, writes a
ledger line and queues a notice ("you received 10"). Databases abort transactions on
purpose (a MariaDB deadlock, 1213; a PostgreSQL serialization failure, 40001; SQLite's
``database is locked``), and the app is told to retry. Every variant is correct when
nothing fails — concurrent deposits included (the balance is added to in SQL) — so
only an injected error (``fuzzer run --faults``) shows the bugs:

* ``buggy``: a ``@retrying`` decorator runs the whole view again on
  ``OperationalError``, but the view commits the notice on its own first. An error
  after that commit re-runs the view: two notices for one deposit
  (``duplicate-effect``).
* ``stale``: a retry loop around ``commit()`` only, on the session that failed. The
  rollback discards the pending balance change, the ledger line and the notice, so
  the retry commits nothing and answers 200 all the same (``stale-retry``); an error
  while the notice is flushed, before the loop, is a 500 (``unhandled-retryable``).
* ``partial``: commits the balance (step 1), then the ledger line and notice (step 2);
  an error in step 2 answers 503 "try again", with step 1 kept (``partial-commit``).
* ``fixed``: each attempt is one transaction on a fresh session that does everything
  (the notice too: a transactional outbox, so a retry cannot send it twice) and reads
  the balance it answers before its COMMIT; after three failures it answers 503 with
  nothing kept.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from hypothesis import strategies as st
from sqlalchemy import String, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fuzzer import Endpoint, Target

ATTEMPTS = 3


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Account(db.Model):  # type: ignore[name-defined]
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    balance: Mapped[int] = mapped_column(default=0)


# no foreign keys to accounts: on MariaDB each insert would take a shared lock on the
# account's row, and two deposits would then deadlock for real on their UPDATEs (1213),
# with no --faults at all; this story is about the errors --faults injects
class Ledger(db.Model):  # type: ignore[name-defined]
    __tablename__ = "ledger"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int]
    amount: Mapped[int]


class Notice(db.Model):  # type: ignore[name-defined]
    __tablename__ = "notices"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int]
    text: Mapped[str] = mapped_column(String(80))


def retrying(view: Callable[..., Any]) -> Callable[..., Any]:
    """Run the view again when the database aborts it (the bug: the view's own commits
    are not undone by the rollback)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for attempt in range(ATTEMPTS):
            try:
                return view(*args, **kwargs)
            except OperationalError:
                db.session.rollback()
                if attempt == ATTEMPTS - 1:
                    raise
        return None  # pragma: no cover

    return wrapper


def _add(account: int, amount: int) -> None:
    db.session.execute(
        update(Account).where(Account.id == account).values(balance=Account.balance + amount)
    )


def _balance(account: int) -> int:
    return db.session.execute(select(Account.balance).where(Account.id == account)).scalar_one()


def _notice(account: int, amount: int) -> Notice:
    return Notice(account_id=account, text=f"you received {amount}")


def create_app(database_url: str, *, variant: str = "buggy") -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)

    @retrying
    def deposit_twice_on_retry(account: int, amount: int) -> Any:
        db.session.add(_notice(account, amount))
        db.session.commit()  # the notice is sent: a retry of the view sends it again
        _add(account, amount)
        db.session.add(Ledger(account_id=account, amount=amount))
        balance = _balance(account)  # read in the transaction: what it committed
        db.session.commit()
        return jsonify(balance=balance)

    def deposit_on_failed_session(account: int, amount: int) -> Any:
        current = db.session.get(Account, account)
        assert current is not None
        db.session.add(_notice(account, amount))
        db.session.flush()  # outside the retry loop: an error here is a 500
        current.balance = Account.balance + amount  # pending in the session
        db.session.add(Ledger(account_id=account, amount=amount))
        for _ in range(ATTEMPTS):
            try:
                db.session.commit()  # "retry the commit": the rollback dropped its work
                break
            except OperationalError:
                db.session.rollback()
        return jsonify(deposited=amount)

    def deposit_in_two_steps(account: int, amount: int) -> Any:
        try:
            _add(account, amount)
            db.session.commit()  # step 1 of 2
            db.session.add(Ledger(account_id=account, amount=amount))
            db.session.add(_notice(account, amount))
            db.session.commit()  # step 2 of 2
        except OperationalError:
            db.session.rollback()
            return jsonify(error="busy, try again"), 503
        return jsonify(deposited=amount)

    def deposit_with_retries(account: int, amount: int) -> Any:
        for _ in range(ATTEMPTS):
            try:
                _add(account, amount)
                db.session.add(Ledger(account_id=account, amount=amount))
                db.session.add(_notice(account, amount))  # an outbox row: sent once
                db.session.flush()
                balance = _balance(account)
                db.session.commit()
            except OperationalError:
                db.session.rollback()
                db.session.close()  # the next attempt starts on a fresh session
                continue
            return jsonify(balance=balance)
        return jsonify(error="busy, try again"), 503

    views = {
        "buggy": deposit_twice_on_retry,
        "stale": deposit_on_failed_session,
        "partial": deposit_in_two_steps,
        "fixed": deposit_with_retries,
    }

    @app.post("/accounts/<int:account>/deposit")
    def deposit(account: int) -> Any:
        return views[variant](account, int(request.get_json()["amount"]))

    @app.get("/accounts/<int:account>")
    def show(account: int) -> Any:
        return jsonify(balance=_balance(account))

    return app


def _factory(variant: str) -> Callable[[str], Flask]:
    def create(database_url: str) -> Flask:
        return create_app(database_url, variant=variant)

    create.__name__ = f"create_{variant}_app"
    return create


def setup(app: Flask) -> None:
    db.create_all()
    db.session.add(Account(id=1, balance=100))
    db.session.commit()


ENDPOINTS = [
    Endpoint(
        "POST",
        "/accounts/1/deposit",
        json=st.fixed_dictionaries({"amount": st.sampled_from([10, 5])}),
    ),
    Endpoint("GET", "/accounts/1"),
]


# each variant is clean without --faults; with them, it must show its own kinds
buggy = Target(
    name="retries",
    app=_factory("buggy"),
    setup=setup,
    endpoints=ENDPOINTS,
    expected_with_faults=frozenset({"duplicate-effect"}),
    description="a retry decorator re-runs a view whose notice is already committed",
)

stale = Target(
    name="retries-stale",
    app=_factory("stale"),
    setup=setup,
    endpoints=ENDPOINTS,
    expected_with_faults=frozenset({"stale-retry", "unhandled-retryable"}),
    description="a retry of commit() on the session that failed: its work was rolled back",
)

partial = Target(
    name="retries-partial",
    app=_factory("partial"),
    setup=setup,
    endpoints=ENDPOINTS,
    expected_with_faults=frozenset({"partial-commit"}),
    description="step 1 of 2 committed, then 503 when step 2 fails",
)

fixed = Target(
    name="retries-fixed",
    app=_factory("fixed"),
    setup=setup,
    endpoints=ENDPOINTS,
    description="each attempt one transaction on a fresh session, the notice an outbox row",
)
