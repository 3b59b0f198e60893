"""The kinds of finding, in the order reports list them: the leaf vocabulary that the
target's contract (``expected_findings``), the search, the findings and the reports share.

A ``Kind`` is a ``StrEnum``: each equals its text (``Kind.LOST_UPDATE == "lost-update"``),
so reports, JSON and a target's ``expected_findings`` keep the text, and a misspelt kind in
the code is an AttributeError instead of a finding that is never matched."""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    CONCURRENCY_ERROR = "concurrency-error"
    LOST_UPDATE = "lost-update"
    DUPLICATE_INSERT = "duplicate-insert"
    LIMIT_OVERRUN = "limit-overrun"
    WRITE_SKEW = "write-skew"
    STALE_READ = "stale-read"
    PARTIAL_COMMIT = "partial-commit"
    DUPLICATE_EFFECT = "duplicate-effect"
    STALE_RETRY = "stale-retry"
    UNHANDLED_RETRYABLE = "unhandled-retryable"
    HANG = "hang"
    LEAKED_TRANSACTION = "leaked-transaction"
    WRONG_ENGINE = "wrong-engine"
    SERIAL_FAILURE = "serial-failure"


KINDS: tuple[Kind, ...] = tuple(Kind)
RACES = frozenset(KINDS[:6])
TITLES: dict[str, str] = {
    Kind.CONCURRENCY_ERROR: "Error only under concurrency",
    Kind.LOST_UPDATE: "Lost update",
    Kind.DUPLICATE_INSERT: "Duplicate insert",
    Kind.LIMIT_OVERRUN: "Limit overrun",
    Kind.WRITE_SKEW: "Write skew",
    Kind.STALE_READ: "Stale read",
    Kind.PARTIAL_COMMIT: "Partial commit after an injected error",
    Kind.DUPLICATE_EFFECT: "A retry applied its effect twice",
    Kind.STALE_RETRY: "A retry acted on stale state",
    Kind.UNHANDLED_RETRYABLE: "A retryable error answered 5xx",
    Kind.HANG: "The execution has hung",
    Kind.LEAKED_TRANSACTION: "Transaction left open",
    Kind.WRONG_ENGINE: "Statement on the wrong engine",
    Kind.SERIAL_FAILURE: "Fails even when run alone",
}
