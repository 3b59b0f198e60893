"""``flask seed``: a click command on a blueprint with no CLI group of its own, as the
tutorial registers its ``flask translate`` commands."""

from __future__ import annotations

import click
from flask import Blueprint

from .models import Post, User, db

bp = Blueprint("cli", __name__, cli_group=None)

PEOPLE = ("susan", "john", "mary", "david")  # each one's password: "cat"


@bp.cli.command("seed")
@click.option("--posts", default=2, help="Posts per user.")
def seed(posts: int) -> None:
    """Create the tables, four users (susan follows john) and their posts."""
    db.create_all()
    users = []
    for name in PEOPLE:
        user = User(username=name, email=f"{name}@example.com")
        user.set_password("cat")
        users.append(user)
    db.session.add_all(users)
    users[0].following.add(users[1])
    for user in users:
        for n in range(posts):
            db.session.add(Post(body=f"Post {n + 1} from {user.username}", author=user))
    db.session.commit()
    click.echo(f"Seeded {len(users)} users and {len(users) * posts} posts.")
