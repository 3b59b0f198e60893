"""The models: attendees, events, their ticket tiers, orders and waitlists."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy
from werkzeug.security import check_password_hash, generate_password_hash

db = SQLAlchemy()


class Attendee(UserMixin, db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    email = db.Column(db.String(120), unique=True, nullable=False)
    full_name = db.Column(db.String(80), nullable=False)
    password_hash = db.Column(db.String(256), nullable=False)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password, method="pbkdf2:sha256:1000")

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class Event(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(120), nullable=False)
    starts_at = db.Column(db.DateTime, nullable=False)


class Tier(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    event_id = db.Column(db.Integer, db.ForeignKey("event.id"), nullable=False)
    name = db.Column(db.String(40), nullable=False)
    seats_left = db.Column(db.Integer, nullable=False)
    price_cents = db.Column(db.Integer, nullable=False)


class TicketOrder(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    attendee_id = db.Column(db.Integer, db.ForeignKey("attendee.id"), nullable=False)
    tier_id = db.Column(db.Integer, db.ForeignKey("tier.id"), nullable=False)
    quantity = db.Column(db.Integer, nullable=False)
    created_at = db.Column(db.DateTime, default=datetime.utcnow)


class WaitlistEntry(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    event_id = db.Column(db.Integer, db.ForeignKey("event.id"), nullable=False)
    attendee_id = db.Column(db.Integer, db.ForeignKey("attendee.id"), nullable=False)
