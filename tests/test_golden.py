"""The text of one finding of each kind, pinned by golden files (tests/golden/*.txt).

Each case replays a recorded minimal scenario of a catalog target on SQLite (the
schedule is data: the same trace every time) and renders its finding as the terminal
shows it; the hang, which needs a server database's locks, is rendered from a
hand-built execution of the same story. What varies between runs (object addresses,
scratch names, temporary paths) is normalized away.

After a deliberate change to the text, rewrite the files with ``make golden`` (or
``pytest tests/test_golden.py --update-golden``) and review them as a diff. Only the flag
rewrites them: an environment variable left set cannot make these tests pass unchecked.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import pytest

from fuzzer.execute.instrument import load_target
from fuzzer.execute.runner import Controlled
from fuzzer.findings import Finding, classify
from fuzzer.judge.oracle import Verdict
from fuzzer.model import Execution, Fault, Gene, Hang, Leak, Request, Response, Scenario, Step
from fuzzer.modes.session import Session
from fuzzer.report.text import finding_text

GOLDEN = Path(__file__).parent / "golden"


def request(endpoint: str, path: str, body: Any = None, **more: Any) -> Request:
    return Request(endpoint, endpoint.split()[0], path, json=body, **more)


def two(first: Request, second: Request, *yields: tuple[int, ...]) -> Scenario:
    return Scenario(requests=(first, second), schedule=tuple(Gene(0, y) for y in yields))


def one(only: Request) -> Scenario:
    return Scenario(requests=(only,), schedule=(Gene(),))


NAME = request("PUT /user/name", "/user/name", {"id": 1, "key": "李四"})
AGE = request("PUT /user/age", "/user/age", {"id": 1, "key": 19})
SAVE = request("PUT /pages/<slug>", "/pages/home", {"body": "Hello"})
JOB = request("POST /jobs", "/jobs", {"client_token": "t-1", "report": "sales"})
PRICE = request("PUT /products/<sku>/price", "/products/tee/price", {"price": "15.00"})
QUOTE = request("GET /quote/<sku>", "/quote/tee", params={"qty": "3"})
ORDER = request("POST /orders", "/orders", {"sku": "mug", "quantity": 1})
BOB_OFF = request("POST /doctors/<id>/off-call", "/doctors/2/off-call")
ALICE_OFF = request("POST /doctors/<id>/off-call", "/doctors/1/off-call")
PRODUCT = request("GET /shop/products/<id>", "/shop/products/1")
CUSTOMER = request("GET /customers/<id>", "/customers/1")


def faulted(only: Request, step: int) -> Scenario:
    """One request whose statement at its step ``step`` fails with SQLite's ``database is
    locked`` (``--faults``)."""
    return Scenario(requests=(only,), schedule=(Gene(faults=(Fault(step, "timeout"),)),))


DEPOSIT = request("POST /accounts/1/deposit", "/accounts/1/deposit", {"amount": 10})

# kind -> (target, the minimal scenario the search reported for it on SQLite)
CASES: dict[str, tuple[str, Scenario]] = {
    "lost-update": ("targets.profile:buggy", two(NAME, AGE, (2,), ())),
    "concurrency-error": ("targets.wiki:buggy", two(SAVE, SAVE, (2,), ())),
    "duplicate-insert": ("targets.jobs:buggy", two(JOB, JOB, (2,), ())),
    "limit-overrun": ("targets.stock:buggy", two(ORDER, ORDER, (2,), ())),
    "write-skew": ("targets.oncall:buggy", two(BOB_OFF, ALICE_OFF, (2,), (3,))),
    "stale-read": ("targets.pricing:buggy", two(PRICE, QUOTE, (2,), (2,))),
    "leaked-transaction": ("targets.dashboard:buggy", one(CUSTOMER)),
    "wrong-engine": ("targets.portal:buggy", one(PRODUCT)),
    "serial-failure": ("targets.portal:buggy", one(PRODUCT)),
    "duplicate-effect": ("targets.retries:buggy", faulted(DEPOSIT, 4)),
    "stale-retry": ("targets.retries:stale", faulted(DEPOSIT, 5)),
    "partial-commit": ("targets.retries:partial", faulted(DEPOSIT, 4)),
    "unhandled-retryable": ("targets.retries:stale", faulted(DEPOSIT, 3)),
}


def replayed(reference: str, scenario: Scenario) -> list[Finding]:
    def work(session: Session) -> list[Finding]:
        assert session.oracle is not None
        execution = session.execute(scenario, Controlled())
        return classify(scenario, execution, session.oracle.judge(scenario, execution))

    return Session(load_target(reference)).run(work)


def blocked_migration() -> Finding:
    """The dashboard's leak on MariaDB, as the DDL probe reports it (needs no server:
    the hang is the probe's answer, recorded in the execution)."""
    sql = (
        "SELECT customers.id AS customers_id, customers.name AS customers_name, "
        "customers.region AS customers_region \nFROM customers \nWHERE customers.id = %(pk_1)s"
    )
    count = (
        "SELECT count(*) AS count_1 \nFROM orders \nWHERE orders.customer_id = %(customer_id_1)s"
    )
    trace = (
        Step(0, 1, "start"),
        Step(0, 2, "sql", sql, "{'pk_1': 1}", "default", 1),
        Step(0, 3, "sql", count, "{'customer_id_1': 1}", "default", 1),
        Step(0, 4, "end"),
    )
    body = {"id": 1, "name": "Acme", "orders": 2, "region": "north"}
    execution = Execution(
        mode="controlled",
        responses=(Response(200, body),),
        tables={},
        trace=trace,
        leaks=(Leak(0, 1, "default", True, " ".join(count.split())),),
        schema_change=Hang(
            0.0,
            {},
            {},
            lock=(
                "ALTER TABLE customers waits for the metadata lock on customers (error 1205 at "
                "once with NOWAIT); ALTER TABLE orders waits for the metadata lock on orders "
                "(error 1205 at once with NOWAIT)"
            ),
            holders={0: "an open transaction that used customers, orders"},
        ),
    )
    scenario = one(CUSTOMER)
    verdict = Verdict("serializable", (0,), reference=execution)
    return next(f for f in classify(scenario, execution, verdict) if f.kind == "hang")


def normalized(text: str) -> str:
    text = re.sub(r"0x[0-9a-f]{6,}", "0x…", text)  # object addresses in error messages
    text = re.sub(r"fuzz_[0-9a-f]{8}", "fuzz_…", text)  # scratch database names
    return re.sub(r"/tmp/[^\s'\"]+", "<tmp>", text)


def check(kind: str, finding: Finding, target: str, update: bool) -> None:
    name = target.split(".", 1)[1].split(":")[0]
    text = normalized(
        finding_text(finding, reproduce=[f"fuzzer replay reports/{name}-…/01-{kind}.json"])
    )
    path = GOLDEN / f"{kind}.txt"
    if update:
        path.write_text(text, encoding="utf-8")
    if not path.exists():
        pytest.fail(f"{path.name} is missing; create it with `make golden` and review it")
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                text.splitlines(keepends=True),
                f"golden/{kind}.txt",
                "now",
            )
        )
        pytest.fail(
            f"the {kind} text changed; if that is intended, run `make golden` and review "
            f"the diff\n{diff}"
        )


@pytest.mark.parametrize("kind", sorted(CASES))
def test_the_text_of_a_finding_of_each_kind(kind: str, update_golden: bool) -> None:
    target, scenario = CASES[kind]
    findings = replayed(target, scenario)
    finding = next((f for f in findings if f.kind == kind), None)
    assert finding is not None, f"{target} no longer shows {kind}: {[f.kind for f in findings]}"
    check(kind, finding, target, update_golden)


def test_the_text_of_a_hang(update_golden: bool) -> None:
    check("hang", blocked_migration(), "targets.dashboard:buggy", update_golden)


def test_every_kind_has_a_golden_file() -> None:
    from fuzzer.findings import KINDS

    assert set(CASES) | {"hang"} == set(KINDS)


def test_only_the_flag_rewrites_the_golden_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPDATE_GOLDEN", "1")  # what `make golden` once set: no longer enough
    before = (GOLDEN / "lost-update.txt").read_text(encoding="utf-8")
    with pytest.raises(pytest.fail.Exception, match="the lost-update text changed"):
        check("lost-update", blocked_migration(), "targets.profile:buggy", update=False)
    assert (GOLDEN / "lost-update.txt").read_text(encoding="utf-8") == before
