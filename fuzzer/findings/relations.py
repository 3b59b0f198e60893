"""How the identities of a finding's requests relate: the same user, or different ones.

A double click (one user, two requests) and two users racing for one resource are
different bugs with different fixes, though they may share kind and endpoints: the
fingerprint keeps them apart (fuzzer/findings.py), so shrinking toward the first
identity cannot trade an oversell between two users for one user's double submit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from fuzzer.model import Request

__all__ = ["relation"]


def relation(requests: Sequence[Request], involved: Iterable[int]) -> str:
    """``"same"`` when the involved requests all act as one declared identity,
    ``"different"`` when they act as several, ``""`` when it cannot matter: fewer than
    two requests involved, or a request acting as nobody (a target without identities)."""
    chosen = [requests[i] for i in sorted(set(involved)) if 0 <= i < len(requests)]
    if len(chosen) < 2 or any(r.identity is None for r in chosen):
        return ""
    return "same" if len({r.identity for r in chosen}) == 1 else "different"
