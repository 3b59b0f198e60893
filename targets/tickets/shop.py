"""Events, buying tickets, and the waitlist of a sold-out event."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, current_app, flash, jsonify, redirect, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField
from wtforms.validators import InputRequired, NumberRange

from .models import Event, TicketOrder, Tier, WaitlistEntry, db

bp = Blueprint("shop", __name__)


class BuyForm(FlaskForm):
    tier = SelectField("Tier", coerce=int)
    quantity = IntegerField("How many", validators=[InputRequired(), NumberRange(min=1, max=4)])


@bp.get("/")
def events() -> Any:
    rows = db.session.scalars(sa.select(Event).order_by(Event.starts_at))
    return jsonify([{"id": e.id, "title": e.title} for e in rows])


@bp.get("/events/<int:event_id>")
def event(event_id: int) -> Any:
    found = db.get_or_404(Event, event_id)
    tiers = db.session.scalars(sa.select(Tier).where(Tier.event_id == found.id))
    return jsonify(title=found.title, tiers={t.name: t.seats_left for t in tiers})


@bp.post("/events/<int:event_id>/buy")
@login_required
def buy(event_id: int) -> Any:
    found = db.get_or_404(Event, event_id)
    form = BuyForm()
    form.tier.choices = [
        (t.id, t.name) for t in db.session.scalars(sa.select(Tier).where(Tier.event_id == found.id))
    ]
    if not form.validate_on_submit():
        return jsonify(errors=form.errors), 400
    tier = db.get_or_404(Tier, form.tier.data)
    quantity = form.quantity.data
    if current_app.config["TICKETS_FIXED"]:
        taken = db.session.execute(
            sa.update(Tier)
            .where(Tier.id == tier.id, Tier.seats_left >= quantity)
            .values(seats_left=Tier.seats_left - quantity)
        )
        if not taken.rowcount:  # type: ignore[attr-defined]
            db.session.rollback()
            flash("Sold out")
            return redirect(url_for("shop.event", event_id=event_id))
    else:
        if tier.seats_left < quantity:
            flash("Sold out")
            return redirect(url_for("shop.event", event_id=event_id))
        tier.seats_left = tier.seats_left - quantity
    db.session.add(TicketOrder(attendee_id=current_user.id, tier_id=tier.id, quantity=quantity))
    db.session.commit()
    return redirect(url_for("shop.event", event_id=event_id))


@bp.post("/events/<int:event_id>/waitlist")
@login_required
def waitlist(event_id: int) -> Any:
    found = db.get_or_404(Event, event_id)
    mine = sa.select(WaitlistEntry.id).where(
        WaitlistEntry.event_id == found.id, WaitlistEntry.attendee_id == current_user.id
    )
    if current_app.config["TICKETS_FIXED"]:
        db.session.execute(
            sa.insert(WaitlistEntry).from_select(
                ["event_id", "attendee_id"],
                sa.select(sa.literal(found.id), sa.literal(current_user.id)).where(
                    ~sa.exists(mine)
                ),
            )
        )
    elif db.session.scalar(mine) is None:
        db.session.add(WaitlistEntry(event_id=found.id, attendee_id=current_user.id))
    db.session.commit()
    return jsonify(waiting=True)
