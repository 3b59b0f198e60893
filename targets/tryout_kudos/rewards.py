"""The reward shop: a catalogue kept by admins (class-based views), redemptions paid
with received points, and the monthly budget reset."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, jsonify, request
from flask.views import MethodView
from sqlalchemy import update

from .auth import admin_required, key_required
from .models import Member, Redemption, Reward, db

bp = Blueprint("rewards", __name__, url_prefix="/api")


def _reward_fields(data: dict[str, Any], *, partial: bool) -> dict[str, Any] | str:
    fields: dict[str, Any] = {}
    for name, kind in (("name", str), ("cost", int), ("stock", int)):
        if name not in data:
            if not partial:
                return f"'{name}' is required"
            continue
        try:
            fields[name] = kind(data[name])
        except (TypeError, ValueError):
            return f"'{name}' must be a {kind.__name__}"
    if fields.get("cost", 1) < 1 or fields.get("stock", 0) < 0:
        return "cost must be positive and stock not negative"
    return fields


class RewardList(MethodView):
    def get(self) -> Any:
        rows = db.session.execute(db.select(Reward).order_by(Reward.cost)).scalars()
        return jsonify([r.to_dict() for r in rows])

    @staticmethod
    @admin_required
    def post() -> Any:
        fields = _reward_fields(request.get_json(silent=True) or {}, partial=False)
        if isinstance(fields, str):
            return jsonify(error=fields), 400
        reward = Reward(**fields)
        db.session.add(reward)
        db.session.flush()
        answer = reward.to_dict()
        db.session.commit()
        return jsonify(answer), 201


class RewardItem(MethodView):
    def get(self, reward_id: int) -> Any:
        return jsonify(db.get_or_404(Reward, reward_id).to_dict())

    @staticmethod
    @admin_required
    def patch(reward_id: int) -> Any:
        reward = db.get_or_404(Reward, reward_id)
        fields = _reward_fields(request.get_json(silent=True) or {}, partial=True)
        if isinstance(fields, str):
            return jsonify(error=fields), 400
        for name, value in fields.items():
            setattr(reward, name, value)
        answer = reward.to_dict()
        db.session.commit()
        return jsonify(answer)


bp.add_url_rule("/rewards", view_func=RewardList.as_view("reward_list"))
bp.add_url_rule("/rewards/<int:reward_id>", view_func=RewardItem.as_view("reward_item"))


def _take(reward: Reward, member: Member) -> str | None:
    """The fixed twin: the stock and the points taken by conditional updates."""
    taken = db.session.execute(
        update(Reward)
        .where(Reward.id == reward.id, Reward.stock >= 1)
        .values(stock=Reward.stock - 1)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return "out of stock"
    paid = db.session.execute(
        update(Member)
        .where(Member.id == member.id, Member.points >= reward.cost)
        .values(points=Member.points - reward.cost)
    )
    if paid.rowcount != 1:  # type: ignore[attr-defined]
        return "not enough points"
    return None


@bp.post("/rewards/<int:reward_id>/redeem")
@key_required
def redeem(reward_id: int) -> Any:
    reward = db.get_or_404(Reward, reward_id)
    member = g.member
    if current_app.config["KUDOS_FIXED"]:
        refused = _take(reward, member)
    elif reward.stock < 1:
        refused = "out of stock"
    elif member.points < reward.cost:
        refused = "not enough points"
    else:
        refused = None
        reward.stock -= 1
        member.points -= reward.cost
    if refused is not None:
        db.session.rollback()
        return jsonify(error=refused), 409
    db.session.add(Redemption(member_id=member.id, reward_id=reward.id))
    db.session.flush()
    db.session.refresh(reward)  # as this transaction left them
    db.session.refresh(member)
    answer = {"reward": reward.to_dict(), "points_left": member.points}
    db.session.commit()
    return jsonify(answer), 201


@bp.get("/redemptions")
@key_required
def my_redemptions() -> Any:
    rows = db.session.execute(
        db.select(Redemption, Reward)
        .join(Reward, Redemption.reward_id == Reward.id)
        .where(Redemption.member_id == g.member.id)
        .order_by(Redemption.id)
    )
    return jsonify([{"id": r.id, "reward": w.name} for r, w in rows])


@bp.post("/admin/budgets/reset")
@admin_required
def reset_budgets() -> Any:
    amount = int((request.get_json(silent=True) or {}).get("amount", 100))
    db.session.execute(update(Member).values(budget_left=amount))
    db.session.commit()
    return jsonify(budget=amount)
