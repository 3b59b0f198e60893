"""Versioned JSON: one file per finding (everything needed to replay it) and a manifest.

Files are written atomically (a temporary file, then a rename), so a run killed
midway leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from fuzzer.errors import InvalidReport
from fuzzer.findings import Finding, flaky_text
from fuzzer.model import Scenario
from fuzzer.report.text import curl_chain
from fuzzer.version import __version__

FORMAT = 1


def finding_document(
    finding: Finding,
    *,
    target: str,
    database: Mapping[str, Any],
    seed: int | None,
    path: str,
    test: str | None = None,
    columns: Mapping[str, Sequence[str]] | None = None,
    identities: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Everything a replay needs, and everything a report shows (format 1):

    ``target`` (package.module:attribute), ``database`` (dialect, URL without password,
    server version, isolation level, settings), ``scenario`` (init, requests, their
    ``schedule`` genes, observers), ``trace``, ``execution``, ``verdict`` (with the
    closest serial reference), ``explanation`` (data and text), ``fingerprint``,
    ``routes`` (every route seen reaching it: its endpoints, and for an error reached
    through several views the others the search saw),
    ``seed`` of the search, and the commands that reproduce it.
    """
    verdict = finding.verdict
    replay = f"fuzzer replay {path}"
    return {
        "format": FORMAT,
        "tool": {"name": "flask-race-fuzzer", "version": __version__},
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "target": target,
        "database": dict(database),
        "kind": finding.kind,
        "title": finding.title,
        "fingerprint": finding.fingerprint,
        "endpoints": list(finding.endpoints),
        "routes": list(finding.routes),
        "exception": finding.exception,
        "involved": list(finding.involved),
        "flaky": flaky_text(finding),
        "found_after": finding.found_after,
        "seed": seed,
        "scenario": finding.scenario.to_json(),
        "tables": {name: list(names) for name, names in (columns or {}).items()},
        "trace": [step.to_json() for step in finding.execution.trace],
        "execution": finding.execution.to_json(),
        "verdict": verdict.to_json() if verdict else None,
        "explanation": finding.explanation.to_json(),
        "replay": replay,
        "reproduce": {
            "replay": replay,
            "pytest": f"pytest {test}" if test else None,
            "curl": curl_chain(
                finding.scenario.init + finding.scenario.requests, identities=identities
            ),
        },
    }


def write_atomic(path: str, document: Any) -> None:
    text = json.dumps(document, ensure_ascii=False, indent=2, default=str)
    write_text_atomic(path, text + "\n")


def write_text_atomic(path: str, text: str) -> None:
    """Write a file so that a reader sees the old one or the new one, never half of one."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        # a lone surrogate (a name in a target's source) is written as JSON and Python
        # write it, \udc80, where UTF-8 cannot hold it
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise


def finding_filename(index: int, finding: Finding) -> str:
    return f"{index:02d}-{finding.kind}.json"


def run_directory(root: str, target_name: str) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    # visible and inside root: ASCII letters, digits, _ . -, never a leading dot or dash
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", target_name)
    safe = re.sub(r"\.{2,}", ".", safe).lstrip(".-").rstrip("-")[:60] or "target"
    base = os.path.join(root, f"{safe}-{stamp}")
    path, n = base, 1
    while os.path.exists(path):
        n += 1
        path = f"{base}-{n}"
    return path


def load(path: str) -> dict[str, Any]:
    """Read a finding report and check that this version can replay it."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except FileNotFoundError:
        raise InvalidReport(
            f"No report at {path}; pass a finding's JSON file from reports/"
        ) from None
    except (OSError, ValueError) as exc:
        raise InvalidReport(f"Cannot read report {path}: {exc}") from None
    if not isinstance(document, dict) or "scenario" not in document or "target" not in document:
        raise InvalidReport(
            f"{path} is not a finding report (no 'target' and 'scenario'); a run's "
            f"manifest.json lists its finding files"
        )
    if document.get("format") != FORMAT:
        raise InvalidReport(
            f"{path} has report format {document.get('format')!r}; this fuzzer reads format "
            f"{FORMAT}: replay it with the version that wrote it"
        )
    try:
        scenario = Scenario.from_json(document["scenario"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidReport(f"{path} holds a scenario this fuzzer cannot read: {exc}") from None
    for request in scenario.init + scenario.requests + scenario.observers:
        where = request.path
        # a path is sent to the app's loopback server: "http://…" or "//host/…" would not be
        if not isinstance(where, str) or not where.startswith("/") or where.startswith("//"):
            raise InvalidReport(
                f"{path} holds a request whose path is {where!r}, not a path on the app "
                f"(one starting with a single /): it was edited; nothing was sent. Replay "
                f"the report as the fuzzer wrote it"
            )
    return document


def manifest_document(
    *,
    target: str,
    database: Mapping[str, Any],
    settings: Mapping[str, Any],
    summary: Mapping[str, Any],
    files: Sequence[tuple[Finding, str]],
    tests: Sequence[str] = (),
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "tool": {"name": "flask-race-fuzzer", "version": __version__},
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "target": target,
        "database": dict(database),
        "settings": dict(settings),
        "summary": dict(summary),
        "files": {"junit": "junit.xml", "html": "report.html"},
        "findings": [
            {
                "file": os.path.basename(path),
                "test": os.path.basename(tests[i]) if i < len(tests) else None,
                "kind": f.kind,
                "title": f.title,
                "fingerprint": f.fingerprint,
                "endpoints": list(f.endpoints),
                "exception": f.exception,
                "requests": len(f.scenario.requests),
                "flaky": flaky_text(f),
            }
            for i, (f, path) in enumerate(files)
        ],
    }


def recorded_db(database: Mapping[str, Any]) -> str:
    """The ``--db`` that replays on the database a report was written on."""
    dialect = database.get("dialect", "sqlite")
    if dialect == "sqlite":
        return "sqlite"
    url = database.get("url")
    return str(url) if url else str(dialect)
