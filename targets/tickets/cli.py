"""``flask events load-demo``: a demo event with two tiers and two attendees."""

from __future__ import annotations

from datetime import datetime

import click
from flask.cli import AppGroup

from .models import Attendee, Event, Tier, db

events_cli = AppGroup("events", help="Manage events.")


@events_cli.command("load-demo")
def load_demo() -> None:
    """Load a demo event."""
    db.create_all()
    for email, name in (("ines@example.org", "Ines"), ("jon@example.org", "Jon")):
        attendee = Attendee(email=email, full_name=name)
        attendee.set_password("correct horse")
        db.session.add(attendee)
    event = Event(title="Spring concert", starts_at=datetime(2027, 4, 1, 19, 30))
    db.session.add(event)
    db.session.flush()
    db.session.add_all(
        [
            Tier(event_id=event.id, name="Balcony", seats_left=2, price_cents=4500),
            Tier(event_id=event.id, name="Floor", seats_left=1, price_cents=6000),
        ]
    )
    db.session.commit()
    click.echo("Loaded the demo event.")


@events_cli.command("report")
@click.argument("event_id", type=int)
def report(event_id: int) -> None:
    """Print an event's sales."""
    click.echo(str(db.session.get(Event, event_id)))
