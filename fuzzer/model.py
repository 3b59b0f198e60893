"""The data that flows through the fuzzer: scenarios in, executions out.

Everything here is a frozen data class with a JSON form, so a scenario and its
schedule can be written to a report and replayed without Hypothesis.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from fuzzer import sql
from fuzzer.sql import Access

Phase = Literal["init", "concurrent", "observe"]
StepKind = Literal["start", "sql", "commit", "rollback", "checkpoint", "sleep", "end"]
Mode = Literal["controlled", "serial", "free"]


@dataclass(frozen=True)
class Request:
    """One HTTP request, fully drawn: no strategies left in it."""

    endpoint: str  # the endpoint's label, e.g. "PUT /user/name"
    method: str
    path: str
    json: Any = None
    params: Mapping[str, Any] | None = None
    headers: Mapping[str, str] | None = None
    identity: str | None = None  # which declared user the request acts as
    form: Mapping[str, Any] | None = None  # a form-encoded body (an HTML form's fields)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"endpoint": self.endpoint, "method": self.method, "path": self.path}
        for name in ("json", "form", "params", "headers", "identity"):
            value = getattr(self, name)
            if value is not None:
                data[name] = dict(value) if isinstance(value, Mapping) and name != "json" else value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Request:
        return cls(
            endpoint=data["endpoint"],
            method=data["method"],
            path=data["path"],
            json=data.get("json"),
            params=data.get("params"),
            headers=data.get("headers"),
            identity=data.get("identity"),
            form=data.get("form"),
        )

    def describe(self) -> str:
        """A one-line description: method, path, query, body and identity."""
        text = f"{self.method} {self.path}"
        if self.params:
            text += "?" + "&".join(f"{k}={v}" for k, v in self.params.items())
        if self.json is not None:
            text += " " + json.dumps(self.json, ensure_ascii=False, sort_keys=True)
        if self.form:
            text += " form " + json.dumps(dict(self.form), ensure_ascii=False, sort_keys=True)
        if self.identity is not None:
            text += f" as {self.identity}"
        return text


#: The retryable errors a fault may inject (fuzzer/execute/faults.py raises each as the
#: driver of the database in use does): which of them a database can raise depends on it.
FAULT_KINDS = ("deadlock", "serialization", "timeout", "disconnect")


@dataclass(frozen=True)
class Fault:
    """An injected error: the request's statement at its own step ``step`` (or its first
    statement after it) fails with ``kind``, raised by the database driver as a real
    error of that kind would be."""

    step: int
    kind: str

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "kind": self.kind}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fault:
        return cls(step=int(data["step"]), kind=str(data["kind"]))


@dataclass(frozen=True)
class Gene:
    """The scheduling genes of one request.

    The scheduler always runs the waiting request with the lowest
    ``(demotion, priority, index)``; after its own step number ``k`` for ``k`` in
    ``yields`` a request drops below every other request. No yields means the
    requests run one after another in priority order, so fewer and smaller
    yields mean fewer context switches, and a request's genes keep their meaning
    when another request is deleted.
    """

    priority: int = 0
    yields: tuple[int, ...] = ()
    faults: tuple[Fault, ...] = ()  # injected errors (``--faults``), fewest first

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"priority": self.priority, "yields": list(self.yields)}
        if self.faults:
            data["faults"] = [f.to_json() for f in self.faults]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Gene:
        return cls(
            priority=int(data["priority"]),
            yields=tuple(int(y) for y in data["yields"]),
            faults=tuple(Fault.from_json(f) for f in data.get("faults", ())),
        )


@dataclass(frozen=True)
class Scenario:
    """What one example runs: serial init requests, the concurrent part with its
    schedule (one gene per request), and serial observer requests afterwards."""

    requests: tuple[Request, ...]
    schedule: tuple[Gene, ...]
    init: tuple[Request, ...] = ()
    observers: tuple[Request, ...] = ()

    def __post_init__(self) -> None:
        if len(self.requests) != len(self.schedule):
            raise ValueError("a scenario needs exactly one gene per concurrent request")

    @property
    def yields(self) -> int:
        """How many yields the schedule asks for (an upper bound on context switches)."""
        return sum(len(g.yields) for g in self.schedule)

    @property
    def faults(self) -> dict[int, tuple[Fault, ...]]:
        """Request index -> the errors injected into it (``--faults``); empty without."""
        return {i: g.faults for i, g in enumerate(self.schedule) if g.faults}

    def requests_key(self) -> str:
        """A stable key for the requests alone (the schedule left out): serial references
        depend only on this."""
        return json.dumps(
            [
                [r.to_json() for r in self.init],
                [r.to_json() for r in self.requests],
                [r.to_json() for r in self.observers],
            ],
            sort_keys=True,
            ensure_ascii=False,
            default=str,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "init": [r.to_json() for r in self.init],
            "requests": [r.to_json() for r in self.requests],
            "schedule": [g.to_json() for g in self.schedule],
            "observers": [r.to_json() for r in self.observers],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Scenario:
        return cls(
            init=tuple(Request.from_json(r) for r in data.get("init", ())),
            requests=tuple(Request.from_json(r) for r in data["requests"]),
            schedule=tuple(Gene.from_json(g) for g in data["schedule"]),
            observers=tuple(Request.from_json(r) for r in data.get("observers", ())),
        )


@dataclass(frozen=True)
class Step:
    """One granted step of one request: what it did when it was allowed to run."""

    request: int  # index into Scenario.requests
    number: int  # the request's own step number, from 1
    kind: StepKind
    text: str = ""  # SQL text, checkpoint label, or sleep seconds
    params: str = ""  # SQL parameters, as text
    database: str = ""  # which of the target's databases the statement ran on
    connection: int = 0  # the request's own connection number, from 1
    rowcount: int | None = None  # rows matched by an INSERT/UPDATE/DELETE
    error: str = ""  # the exception the statement raised, if any
    waited: str = ""  # why the step could not finish at once (a lock wait), if it did not
    injected: str = ""  # the error the fuzzer injected here ("deadlock 1213"), if it did
    # what the statement reads and writes, read when it ran from the statement SQLAlchemy
    # compiled (fuzzer/sql/compiled.py); None: parsed from its text when first asked
    seen: Access | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "seen" and (getattr(self, f.name) not in ("", None) or f.name == "request")
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Step:
        return cls(**data)

    @functools.cached_property
    def access(self) -> Access:
        """What the step reads and writes (a COMMIT's or ROLLBACK's verb, and nothing
        else, for a step that is no statement): read once, kept on the step."""
        if self.seen is not None:
            return self.seen
        if self.kind == "sql":
            return sql.access(self.text, self.params)
        return Access(frozenset(), None, self.kind.upper(), None, ())

    @property
    def is_write(self) -> bool:
        """Whether the step is a statement that writes (takes a write lock)."""
        return self.kind == "sql" and sql.writes(self.text)


@dataclass(frozen=True)
class Response:
    """What a request answered, as the oracle compares it."""

    status: int
    body: Any  # parsed JSON, or the text when the body is not JSON
    error: str = ""  # "module.ExceptionType: message" when the app raised while handling it
    location: str = ""  # a redirect's Location header

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status, "body": self.body}
        if self.error:
            data["error"] = self.error
        if self.location:
            data["location"] = self.location
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Response:
        return cls(
            status=data["status"],
            body=data["body"],
            error=data.get("error", ""),
            location=data.get("location", ""),
        )

    @property
    def exception_type(self) -> str:
        return self.error.split(":", 1)[0] if self.error else ""


@dataclass(frozen=True)
class Leak:
    """A connection a request left checked out when it sent its response."""

    request: int
    connection: int
    database: str
    in_transaction: bool
    last_statement: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EngineUse:
    """A statement a request ran on a database its own app does not use."""

    request: int
    step: int
    database: str  # where the statement ran
    expected: tuple[str, ...]  # the databases of the app that served the request
    app: str

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["expected"] = list(self.expected)
        return data


@dataclass(frozen=True)
class Hang:
    """No request could make progress within the hang budget."""

    seconds: float
    blocked: Mapping[int, str]  # request index -> where and why it was stuck
    waiting: Mapping[int, str]  # request index -> the step it was waiting to run
    lock: str = ""  # the lock nothing could get past, when the database names it
    holders: Mapping[int, str] = field(default_factory=dict)  # request -> what it holds

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "seconds": self.seconds,
            "blocked": {str(k): v for k, v in self.blocked.items()},
            "waiting": {str(k): v for k, v in self.waiting.items()},
        }
        if self.lock:
            data["lock"] = self.lock
            data["holders"] = {str(k): v for k, v in self.holders.items()}
        return data


@dataclass(frozen=True)
class Execution:
    """Everything one run of a scenario produced."""

    mode: Mode
    responses: tuple[Response | None, ...]  # one per concurrent request; None: not run
    tables: Mapping[str, tuple[tuple[Any, ...], ...]]  # "table" or "db.table" -> sorted rows
    trace: tuple[Step, ...] = ()
    order: tuple[int, ...] | None = None  # for serial runs: the order the requests ran in
    init: tuple[Response, ...] = ()
    observers: tuple[Response, ...] = ()
    leaks: tuple[Leak, ...] = ()
    wrong_engine: tuple[EngineUse, ...] = ()
    hang: Hang | None = None
    # the DDL probe's answer: a schema change that would wait behind a leaked transaction
    schema_change: Hang | None = None
    # writes no request made (the app's background threads) while it ran: unjudgeable
    stray_writes: tuple[str, ...] = ()
    # why requests still running were given up unanswered (the run's deadline): unjudged
    cut: str = ""
    timings: Mapping[str, float] = field(default_factory=dict, compare=False)

    @property
    def commit_order(self) -> tuple[int, ...]:
        """Requests in the order they last committed (those that never committed by the
        order they ended)."""
        last: dict[int, int] = {}
        ended: dict[int, int] = {}
        for position, step in enumerate(self.trace):
            if step.kind == "commit":
                last[step.request] = position
            elif step.kind == "end":
                ended[step.request] = position
        indices = {s.request for s in self.trace} | set(range(len(self.responses)))
        return tuple(sorted(indices, key=lambda i: (last.get(i, ended.get(i, 1 << 30)), i)))

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "order": list(self.order) if self.order is not None else None,
            "responses": [r.to_json() if r else None for r in self.responses],
            "init": [r.to_json() for r in self.init],
            "observers": [r.to_json() for r in self.observers],
            "tables": {k: [list(row) for row in v] for k, v in self.tables.items()},
            "trace": [s.to_json() for s in self.trace],
            "leaks": [leak.to_json() for leak in self.leaks],
            "wrong_engine": [w.to_json() for w in self.wrong_engine],
            "hang": self.hang.to_json() if self.hang else None,
            "schema_change": self.schema_change.to_json() if self.schema_change else None,
        }
