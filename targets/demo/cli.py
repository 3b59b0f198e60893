"""The app's CLI commands: ``flask init-db`` and ``flask seed``."""

from __future__ import annotations

import click
from flask import Flask

from .models import Post, Tag, User, db

USERS = ("alice", "bob", "carol")  # each one's password is their name: a development seed


def register(app: Flask) -> None:
    @app.cli.command("init-db")
    def init_db() -> None:
        """Create the tables."""
        db.create_all()
        click.echo("Created the tables.")

    @app.cli.command("seed")
    def seed() -> None:
        """Three users (alice follows bob, bob follows carol), two posts, a tag."""
        users = {}
        for name in USERS:
            user = users[name] = User(username=name, email=f"{name}@example.com")
            user.set_password(name)
            db.session.add(user)
        alice, bob, carol = users["alice"], users["bob"], users["carol"]
        alice.following.append(bob)
        bob.following.append(carol)
        python = Tag(name="python")
        db.session.add_all(
            [
                Post(title="Hello", body="My first post.", author=alice, tags=[python]),
                Post(title="Races", body="Two requests walk into a bar.", author=bob),
            ]
        )
        db.session.commit()
        click.echo(f"Seeded {len(users)} users and 2 posts.")
