"""The models: members (with an admin role), their personal API keys, kudos, emoji
reactions, rewards and redemptions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()


def _now() -> datetime:
    return datetime.now(UTC)


class Member(db.Model):  # type: ignore[name-defined]
    __tablename__ = "members"
    id = db.Column(db.Integer, primary_key=True)
    handle = db.Column(db.String(40), unique=True, nullable=False)
    display_name = db.Column(db.String(80), nullable=False)
    role = db.Column(db.String(10), nullable=False, default="member")
    budget_left = db.Column(db.Integer, nullable=False, default=100)  # to give this month
    points = db.Column(db.Integer, nullable=False, default=0)  # received, to spend

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "handle": self.handle,
            "display_name": self.display_name,
            "role": self.role,
            "budget_left": self.budget_left,
            "points": self.points,
        }


class ApiKey(db.Model):  # type: ignore[name-defined]
    """A personal access key, sent as ``Authorization: Bearer <key>``."""

    __tablename__ = "api_keys"
    id = db.Column(db.Integer, primary_key=True)
    member_id = db.Column(db.Integer, db.ForeignKey("members.id"), nullable=False)
    key = db.Column(db.String(64), unique=True, nullable=False)
    label = db.Column(db.String(40), nullable=False, default="default")
    member = db.relationship(Member)


class Kudos(db.Model):  # type: ignore[name-defined]
    __tablename__ = "kudos"
    id = db.Column(db.Integer, primary_key=True)
    sender_id = db.Column(db.Integer, db.ForeignKey("members.id"), nullable=False)
    recipient_id = db.Column(db.Integer, db.ForeignKey("members.id"), nullable=False)
    points = db.Column(db.Integer, nullable=False)
    message = db.Column(db.String(280), nullable=False)
    reaction_count = db.Column(db.Integer, nullable=False, default=0)
    created_at = db.Column(db.DateTime, nullable=False, default=_now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "from": self.sender_id,
            "to": self.recipient_id,
            "points": self.points,
            "message": self.message,
            "reactions": self.reaction_count,
        }


class Reaction(db.Model):  # type: ignore[name-defined]
    __tablename__ = "reactions"
    id = db.Column(db.Integer, primary_key=True)
    kudos_id = db.Column(db.Integer, db.ForeignKey("kudos.id"), nullable=False, index=True)
    member_id = db.Column(db.Integer, db.ForeignKey("members.id"), nullable=False)
    emoji = db.Column(db.String(16), nullable=False)


class Reward(db.Model):  # type: ignore[name-defined]
    __tablename__ = "rewards"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False)
    cost = db.Column(db.Integer, nullable=False)
    stock = db.Column(db.Integer, nullable=False)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "cost": self.cost, "stock": self.stock}


class Redemption(db.Model):  # type: ignore[name-defined]
    __tablename__ = "redemptions"
    id = db.Column(db.Integer, primary_key=True)
    member_id = db.Column(db.Integer, db.ForeignKey("members.id"), nullable=False)
    reward_id = db.Column(db.Integer, db.ForeignKey("rewards.id"), nullable=False)
    created_at = db.Column(db.DateTime, nullable=False, default=_now)
