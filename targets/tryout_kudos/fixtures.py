"""``flask load-fixtures``: a team of three, their API keys, a few kudos and rewards."""

from __future__ import annotations

import secrets

import click
from flask.cli import with_appcontext

from .models import ApiKey, Kudos, Member, Reward, db

PEOPLE = [
    ("mara", "Mara Lind", "admin", 40),
    ("tomas", "Tomás Reyes", "member", 60),
    ("ngozi", "Ngozi Eze", "member", 0),
]


@click.command("load-fixtures")
@with_appcontext
def load_fixtures() -> None:
    """Create the tables and a demo team; print each member's API key."""
    db.create_all()
    members = []
    for handle, name, role, points in PEOPLE:
        member = Member(handle=handle, display_name=name, role=role, points=points)
        db.session.add(member)
        members.append(member)
    db.session.flush()
    for member in members:
        key = secrets.token_urlsafe(24)
        db.session.add(ApiKey(member_id=member.id, key=key))
        click.echo(f"{member.handle}: {key}")
    db.session.add(
        Kudos(sender_id=members[0].id, recipient_id=members[1].id, points=20, message="Great demo!")
    )
    db.session.add_all(
        [
            Reward(name="Sticker pack", cost=5, stock=25),
            Reward(name="Lunch with the CEO", cost=30, stock=1),
        ]
    )
    db.session.commit()
