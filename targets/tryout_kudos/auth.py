"""Personal API keys: every API request carries ``Authorization: Bearer <key>``."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import g, jsonify, request

from .models import ApiKey, db


def _member_from_header() -> Any:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key:
        return None
    api_key = db.session.execute(db.select(ApiKey).filter_by(key=key.strip())).scalar()
    return api_key.member if api_key is not None else None


def key_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        member = _member_from_header()
        if member is None:
            return jsonify(error="missing or unknown API key"), 401
        g.member = member
        return view(*args, **kwargs)

    return wrapper


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @key_required
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if g.member.role != "admin":
            return jsonify(error="admins only"), 403
        return view(*args, **kwargs)

    return wrapper
