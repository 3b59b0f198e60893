"""Setup chosen by what it does: every candidate (the app's commands that take no
required argument, its seed-like module functions) is tried alone on a copy of the
scratch database that holds only the tables, the rows it leaves are counted per
table, and the smallest sequence that makes users and fills the most tables is kept:
users first, then roles, then content. What each candidate made is said in the spec."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fuzzer import compat
from fuzzer.errors import FuzzerError, describe
from fuzzer.init.plan import Plan, Table
from fuzzer.init.setup.seeding import dispose, read_all_rows, run_step
from fuzzer.init.setup.wizard import complete_wizard, sign_up

__all__ = ["Trial", "choose_setup", "run_setup"]

Step = tuple[str, str]
_SECONDS = 30  # a candidate that takes longer (a server, a prompt) is given up


@dataclass
class Trial:
    step: Step
    added: dict[str, int] = field(default_factory=dict)  # table -> rows it made
    error: str = ""
    later: dict[str, int] = field(default_factory=dict)  # what it made after the others

    def describe(self) -> str:
        what = _label(self.step)
        if self.error and self.later:
            made = ", ".join(f"{table} {count}" for table, count in sorted(self.later.items()))
            return f"{what}: failed alone ({self.error}), made {made} after the others"
        if self.error:
            return f"{what}: failed ({self.error})"
        if not self.added:
            return f"{what}: made no rows"
        made = ", ".join(f"{table} {count}" for table, count in sorted(self.added.items()))
        return f"{what}: made {made}"


def _label(step: Step) -> str:
    kind, name = step
    if kind == "create_all":
        return "create_all()"
    if kind in ("call", "helper"):
        return f"{name.partition(':')[2]}()"
    if kind == "fixture":
        module, _, fixture = name.partition(":")
        return f"the test fixture {fixture} ({module})"
    if kind == "fill":
        return f"fill_tables(tables=[{name!r}])" if name else "fill_tables()"
    if kind == "request":
        return f"POST {json.loads(name)['path']}"
    return f"`flask {name}`"


def choose_setup(
    app: Any, plan: Plan, urls: Mapping[str, str], candidates: Sequence[Step], users: str | None
) -> dict[str, Table]:
    """Run the tables step, try every other candidate alone on a copy of that state,
    keep the smallest sequence that makes users (``users``: the table signed in as) and
    fills the most tables, run it, and return the rows it leaves. ``plan.setup`` gets
    the sequence, ``plan.setup_notes`` what was tried."""
    tables, seeds = list(candidates[:1]), list(candidates[1:])
    done: list[Step] = []
    for step in tables:
        error = _attempt(app, step)
        if error:
            plan.setup_notes.append(f"{_label(step)} failed when fuzzer init ran it: {error}")
        else:
            done.append(step)
    before = _counts(read_all_rows(urls))
    with _saved(app, urls) as restore:
        trials = []
        for step in seeds:
            restore()
            error = _attempt(app, step)
            added = {} if error else _added(before, _counts(read_all_rows(urls)))
            trials.append(Trial(step, added, error))
        restore()
    chosen = _smallest(trials, users)
    for trial in chosen:
        if not _attempt(app, trial.step):
            done.append(trial.step)
    for trial in trials:  # one that failed alone may need another first
        if trial.error and _adds(app, urls, trial):
            done.append(trial.step)
    if seeds and trials:
        plan.setup_notes.append(
            "fuzzer init tried each candidate alone after the tables: "
            + "; ".join(t.describe() for t in trials)
            + ". It runs the ones that make users and fill the most tables."
        )
    done += _users(app, plan, urls, users)
    plan.setup = done
    return read_all_rows(urls)


def _users(app: Any, plan: Plan, urls: Mapping[str, str], users: str | None) -> list[Step]:
    """The steps that make the users the seeds did not: a setup wizard's form posted,
    rows from the models when there is no user, and a second user when there is one
    (through the app's sign-up form, else from the model), so two people act."""
    done: list[Step] = []
    wizard = complete_wizard(app)
    if wizard is not None:
        path, form = wizard
        done.append(("request", json.dumps({"path": path, "form": form})))
        plan.setup_notes.append(
            f"Every page redirected to {path} (a setup wizard): setup posts its form once, as "
            "a person would on first start; CHECK the values"
        )
    if users is None:
        return done
    if not _user_count(urls, users):
        if _fill(app, plan, ("fill", "")):
            done.append(("fill", ""))
            plan.setup_notes.append(
                f"No seed made rows in {users}: fill_tables() makes two rows in each table "
                "left empty, from the models (user1, user2, passwords through the model)"
            )
        return done
    if _user_count(urls, users) > 1:
        return done
    signed_up = sign_up(app, lambda: _user_count(urls, users))
    if signed_up is not None:
        path, form = signed_up
        done.append(("request", json.dumps({"path": path, "form": form})))
        plan.setup_notes.append(
            f"Setup made one user in {users}: a second signs up through POST {path}, as a "
            "visitor would, so that two people act"
        )
    elif _fill(app, plan, ("fill", users)):
        done.append(("fill", users))
        plan.setup_notes.append(
            f"Setup made one user in {users}: fill_tables() adds a second from the model "
            "(its password set through the model), so that two people act"
        )
    return done


def _fill(app: Any, plan: Plan, step: Step) -> bool:
    error = _attempt(app, step)
    if error:
        plan.setup_notes.append(f"{_label(step)} failed when fuzzer init ran it: {error}")
    return not error


def _user_count(urls: Mapping[str, str], users: str) -> int:
    return sum(len(r.rows) for n, r in read_all_rows(urls).items() if _is(n, users))


def run_setup(app: Any, steps: Sequence[Step]) -> None:
    """The chosen steps again, in order (a second setup, to see what differs)."""
    for kind, name in steps:
        _attempt(app, (kind, name))


def _attempt(app: Any, step: Step) -> str:
    """Run one step inside the app's context; what went wrong, or ''."""
    extension = compat.flask_sqlalchemy(app)
    try:
        with app.app_context(), _time_limit(_SECONDS):
            run_step(app, *step)
            if extension is not None:
                extension.session.commit()
    except Exception as exc:
        if extension is not None:
            with app.app_context(), contextlib.suppress(Exception):
                extension.session.rollback()
        return str(exc) if isinstance(exc, FuzzerError) else describe(exc)
    finally:
        if extension is not None:
            with app.app_context(), contextlib.suppress(Exception):
                extension.session.remove()
    return ""


def _adds(app: Any, urls: Mapping[str, str], trial: Trial) -> bool:
    """A step that failed alone, tried again after the chosen ones: kept if it now
    runs and makes rows."""
    before = _counts(read_all_rows(urls))
    if _attempt(app, trial.step):
        return False
    added = _added(before, _counts(read_all_rows(urls)))
    trial.later = added
    return bool(added)


def _smallest(trials: Sequence[Trial], users: str | None) -> list[Trial]:
    """Greedily: a step that makes users first, then each step that fills a table no
    chosen step fills, the one that fills most first."""
    useful = [t for t in trials if t.added and not t.error]
    chosen: list[Trial] = []
    covered: set[str] = set()
    makers = [t for t in useful if users is not None and any(_is(n, users) for n in t.added)]
    if makers:
        first = max(makers, key=lambda t: len(t.added))
        chosen.append(first)
        covered |= set(first.added)
    while True:
        rest = [t for t in useful if t not in chosen and set(t.added) - covered]
        if not rest:
            return sorted(chosen, key=trials.index)
        best = max(rest, key=lambda t: (len(set(t.added) - covered), -trials.index(t)))
        chosen.append(best)
        covered |= set(best.added)


def _is(name: str, table: str) -> bool:
    return name == table or name.endswith(f".{table}")


def _counts(rows: Mapping[str, Table]) -> dict[str, int]:
    return {name: len(table.rows) for name, table in rows.items()}


def _added(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    return {n: c - before.get(n, 0) for n, c in after.items() if c > before.get(n, 0)}


@contextlib.contextmanager
def _saved(app: Any, urls: Mapping[str, str]) -> Iterator[Any]:
    """The scratch files as they are now; the callable puts them back."""
    files = {
        url.removeprefix("sqlite:///"): url.removeprefix("sqlite:///") + ".saved"
        for url in urls.values()
    }
    dispose(app)
    for path, copy in files.items():
        shutil.copyfile(path, copy)

    def restore() -> None:
        dispose(app)
        for path, copy in files.items():
            shutil.copyfile(copy, path)

    yield restore


@contextlib.contextmanager
def _time_limit(seconds: int) -> Iterator[None]:
    """Give up a step that runs longer (only in the main thread, where signals go)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
