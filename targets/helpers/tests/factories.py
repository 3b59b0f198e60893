"""Rows for the tests, made as the app makes them."""

from __future__ import annotations

from targets.helpers import Item, User, db


def create_user(username: str = "alice", password: str = "example-pass") -> User:
    user = User(username=username, active=True)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


def create_item(name: str = "lamp", stock: int = 1) -> Item:
    item = Item(name=name, stock=stock)
    db.session.add(item)
    db.session.commit()
    return item
