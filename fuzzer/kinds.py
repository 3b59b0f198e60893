"""The kinds of finding, in the order reports list them: the leaf vocabulary that the
target's contract (``expected_findings``), the search, the findings and the reports share."""

KINDS = (
    "concurrency-error",
    "lost-update",
    "duplicate-insert",
    "limit-overrun",
    "write-skew",
    "stale-read",
    "partial-commit",
    "duplicate-effect",
    "stale-retry",
    "unhandled-retryable",
    "hang",
    "leaked-transaction",
    "wrong-engine",
    "serial-failure",
)
RACES = frozenset(KINDS[:6])
TITLES = {
    "concurrency-error": "Error only under concurrency",
    "lost-update": "Lost update",
    "duplicate-insert": "Duplicate insert",
    "limit-overrun": "Limit overrun",
    "write-skew": "Write skew",
    "stale-read": "Stale read",
    "partial-commit": "Partial commit after an injected error",
    "duplicate-effect": "A retry applied its effect twice",
    "stale-retry": "A retry acted on stale state",
    "unhandled-retryable": "A retryable error answered 5xx",
    "hang": "The execution has hung",
    "leaked-transaction": "Transaction left open",
    "wrong-engine": "Statement on the wrong engine",
    "serial-failure": "Fails even when run alone",
}
