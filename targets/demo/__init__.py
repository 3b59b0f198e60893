"""A small social blog built the way real Flask apps are, and the races such apps have.

The production story: an app factory reads a config class (``create_app("testing")``),
two blueprints hold the views (``auth``: Flask-Login sign-in with a Flask-WTF form,
registration; ``social``: posts, likes, tags, following), the models have
relationships over three association tables, and ``flask init-db`` and ``flask seed``
create and fill the database. Everything works when one person clicks at a time:

* ``GET /post/<id>`` counts views with ``post.views += 1``: two overlapping views read
  the same count and write the same number back, and one view is lost; likes are
  counted the same way;
* ``POST /post/<id>/like`` and ``POST /user/<name>/follow`` check in Python that the
  pair is not there yet and then insert it: a double click inserts it twice, and the
  second insert hits the association table's primary key (IntegrityError, a 500);
* ``POST /user/<name>/unfollow`` removes the user from a relationship collection; on a
  double click both requests saw the row, the second DELETE matches none, and the
  flush raises StaleDataError (a 500);
* the tag form does a get-or-create, and registration checks that the username is
  free in a form validator: both lose to a concurrent insert of the same name
  (IntegrityError on the unique column).

The fixed twin (``RACES_FIXED``) counts with ``views = views + 1`` in SQL, inserts
association rows and names first and takes an IntegrityError as "already there", and
unfollows with one DELETE that may match nothing.

The spec below is all a user writes: it logs two members in through the login form,
and seeds the database with the app's own commands.
"""

from __future__ import annotations

from functools import partial

from flask import Flask
from hypothesis import strategies as st

from fuzzer import Endpoint, Identity, Login, Target, flask_command, paths, pinned_config

from .app import create_app


def app(database_url: str, config: str = "testing") -> Flask:
    with pinned_config(SQLALCHEMY_DATABASE_URI=database_url):
        return create_app(config)


def setup(app: Flask) -> None:  # the app's own commands make the tables and the rows
    flask_command(app, "init-db")
    flask_command(app, "seed")


def member(name: str) -> Identity:  # signs in through the login form, as a person does
    return Identity(name, login=Login("/auth/login", form={"username": name, "password": name}))


post, user = st.sampled_from([1, 2]), st.sampled_from(["alice", "bob", "carol"])
members, tag, pw = ["alice", "bob"], {"name": st.sampled_from(["python", "flask"])}, "s3cret"
sign_up = {"username": st.sampled_from(["dave", "erin"]), "password": pw, "password2": pw}


def demo(name: str, config: str, expected: frozenset[str] = frozenset()) -> Target:
    return Target(
        name=name,
        app=partial(app, config=config),
        setup=setup,
        identities=[member("alice"), member("bob"), Identity("visitor")],
        endpoints=[
            Endpoint("GET", paths("/post/<int:id>", id=post)),
            Endpoint("POST", paths("/post/<int:id>/like", id=post), as_=members),
            Endpoint("POST", paths("/post/<int:id>/tags", id=post), form=tag, as_=members),
            Endpoint("POST", paths("/user/<name>/follow", name=user), as_=members),
            Endpoint("POST", paths("/user/<name>/unfollow", name=user), as_=members),
            Endpoint("POST", "/auth/register", form=sign_up, as_=["visitor"]),
        ],
        observers=[Endpoint("GET", "/")],  # the front page shows every post's counters
        expected_findings=expected,
    )


buggy = demo("demo", "testing", frozenset({"lost-update", "concurrency-error"}))
fixed = demo("demo-fixed", "testing-fixed")
