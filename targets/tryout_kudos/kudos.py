"""Members, kudos and reactions: ``/api/me``, ``/api/members``, ``/api/kudos``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, jsonify, request
from sqlalchemy import update

from .auth import key_required
from .models import Kudos, Member, Reaction, db

bp = Blueprint("kudos", __name__, url_prefix="/api")

EMOJI = {"tada", "clap", "heart", "rocket"}


@bp.get("/me")
@key_required
def me() -> Any:
    return jsonify(g.member.to_dict())


@bp.patch("/me")
@key_required
def edit_me() -> Any:
    data = request.get_json(silent=True) or {}
    name = str(data.get("display_name", "")).strip()
    if not 1 <= len(name) <= 80:
        return jsonify(error="display_name must be 1 to 80 characters"), 400
    g.member.display_name = name
    answer = g.member.to_dict()
    db.session.commit()
    return jsonify(answer)


@bp.get("/members")
@key_required
def members() -> Any:
    rows = db.session.execute(db.select(Member).order_by(Member.handle)).scalars()
    return jsonify([m.to_dict() for m in rows])


@bp.get("/members/<int:member_id>")
@key_required
def member(member_id: int) -> Any:
    return jsonify(db.get_or_404(Member, member_id).to_dict())


@bp.get("/kudos")
@key_required
def feed() -> Any:
    rows = db.session.execute(db.select(Kudos).order_by(Kudos.id.desc()).limit(20)).scalars()
    return jsonify([k.to_dict() for k in rows])


@bp.get("/kudos/<int:kudos_id>")
@key_required
def show_kudos(kudos_id: int) -> Any:
    return jsonify(db.get_or_404(Kudos, kudos_id).to_dict())


def _move_points(sender_id: int, recipient_id: int, points: int) -> bool:
    """The fixed twin: debit and credit in single statements, rows locked in id order."""
    debit = (
        update(Member)
        .where(Member.id == sender_id, Member.budget_left >= points)
        .values(budget_left=Member.budget_left - points)
    )
    credit = update(Member).where(Member.id == recipient_id).values(points=Member.points + points)
    first, second = (debit, credit) if sender_id < recipient_id else (credit, debit)
    results = [db.session.execute(first), db.session.execute(second)]
    if any(result.rowcount != 1 for result in results):  # type: ignore[attr-defined]
        db.session.rollback()
        return False
    return True


@bp.post("/kudos")
@key_required
def give_kudos() -> Any:
    data = request.get_json(silent=True) or {}
    try:
        recipient_id = int(data["to"])
        points = int(data.get("points", 10))
    except (KeyError, TypeError, ValueError):
        return jsonify(error="'to' (a member id) and 'points' (a number) are required"), 400
    message = str(data.get("message", "Thanks!"))[:280]
    sender = g.member
    recipient = db.session.get(Member, recipient_id)
    if recipient is None or recipient.id == sender.id:
        return jsonify(error="kudos go to another member"), 400
    if not 1 <= points <= 50:
        return jsonify(error="points must be between 1 and 50"), 400
    if current_app.config["KUDOS_FIXED"]:
        if not _move_points(sender.id, recipient.id, points):
            return jsonify(error="not enough budget left this month"), 409
    else:
        if sender.budget_left < points:
            return jsonify(error="not enough budget left this month"), 409
        sender.budget_left = sender.budget_left - points
        recipient.points = recipient.points + points
    kudos = Kudos(sender_id=sender.id, recipient_id=recipient.id, points=points, message=message)
    db.session.add(kudos)
    db.session.flush()
    answer = kudos.to_dict()
    db.session.commit()
    return jsonify(answer), 201


@bp.post("/kudos/<int:kudos_id>/reactions")
@key_required
def react(kudos_id: int) -> Any:
    kudos = db.get_or_404(Kudos, kudos_id)
    emoji = (request.get_json(silent=True) or {}).get("emoji", "tada")
    if emoji not in EMOJI:
        return jsonify(error=f"emoji must be one of {sorted(EMOJI)}"), 400
    bump = update(Kudos).where(Kudos.id == kudos.id).values(reaction_count=Kudos.reaction_count + 1)
    fixed = current_app.config["KUDOS_FIXED"]
    if fixed:  # take the kudos row's lock before looking
        db.session.execute(bump)
    mine = db.select(Reaction).filter_by(kudos_id=kudos.id, member_id=g.member.id, emoji=emoji)
    if db.session.execute(mine.with_for_update() if fixed else mine).first() is not None:
        db.session.rollback()
        return jsonify(kudos=kudos_id, emoji=emoji, already=True), 200
    db.session.add(Reaction(kudos_id=kudos.id, member_id=g.member.id, emoji=emoji))
    if not fixed:
        db.session.execute(bump)
    db.session.refresh(kudos)  # the count as this transaction left it
    answer = kudos.to_dict()
    db.session.commit()
    return jsonify(answer), 201


@bp.delete("/kudos/<int:kudos_id>/reactions/<emoji>")
@key_required
def unreact(kudos_id: int, emoji: str) -> Any:
    kudos = db.get_or_404(Kudos, kudos_id)
    gone = db.session.execute(
        db.delete(Reaction).filter_by(kudos_id=kudos.id, member_id=g.member.id, emoji=emoji)
    ).rowcount  # type: ignore[attr-defined]
    if gone:
        db.session.execute(
            update(Kudos)
            .where(Kudos.id == kudos.id)
            .values(reaction_count=Kudos.reaction_count - gone)
        )
    db.session.commit()
    return "", 204
