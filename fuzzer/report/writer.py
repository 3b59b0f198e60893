"""Where a run's reports go, written as soon as each finding is final.

One directory per run (``reports/profile-20260101-120000/``) holds, per finding, its
JSON (``01-lost-update.json``) and a pytest regression test (``test_01_lost_update.py``);
and for the run ``manifest.json``, ``junit.xml`` and ``report.html``. The manifest is
rewritten after every finding, so a run killed midway leaves a consistent directory
with everything it had finished. A finding is first written unshrunk, the moment it is
seen (``"shrunk": false`` in its JSON and in the manifest, with a note), and the same
files are rewritten with its shrunk version when shrinking ends: a run interrupted in
between still leaves every finding it announced. Paths in reports and commands are
relative to the working directory when they are under it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fuzzer.findings import Finding
from fuzzer.report import html, junit
from fuzzer.report import json as report_json
from fuzzer.report.regression import regression_test, test_filename
from fuzzer.report.written import Written, reproduce_lines

__all__ = ["ReportWriter", "Written", "reproduce_lines", "shown", "shrunk"]


def shrunk(finding: Finding) -> bool:
    """False for a finding written as first seen, before shrinking (the engine marks it)."""
    return not finding.extra.get("unshrunk")


def shown(path: str) -> str:
    """``path`` relative to the working directory when it is under it (symlinks in
    either resolved: ``--report-dir "$PWD/reports"`` from a symlinked directory is too)."""
    absolute = os.path.abspath(path)
    here = os.getcwd()
    for candidate, base in ((absolute, here), (os.path.realpath(absolute), os.path.realpath(here))):
        if os.path.commonpath([candidate, base]) == base:
            return os.path.relpath(candidate, base)
    return absolute


@dataclass
class ReportWriter:
    """Writes one run's reports into ``root/<target>-<time>/`` (created on first use)."""

    root: str
    target: str  # the reference: package.module:attribute
    name: str  # the target's name, for the directory
    database: Mapping[str, Any]
    settings: Mapping[str, Any]
    seed: int | None = None
    columns: Mapping[str, Sequence[str]] = field(default_factory=dict)  # table -> columns
    written: list[Written] = field(default_factory=list)
    directory: str | None = None
    identities: Mapping[str, Sequence[str]] | None = None  # identity -> header names it sends

    def ensure_directory(self) -> str:
        if self.directory is None:
            self.directory = shown(report_json.run_directory(self.root, self.name))
            os.makedirs(self.directory, exist_ok=True)
        return self.directory

    def add(self, finding: Finding) -> Written:
        """Write a finding's JSON and regression test, then the manifest. A finding
        written before (unshrunk) under the same fingerprint is replaced in place."""
        directory = self.ensure_directory()
        earlier = next(
            (i for i, w in enumerate(self.written) if w.finding.fingerprint == finding.fingerprint),
            None,
        )
        index = (earlier if earlier is not None else len(self.written)) + 1
        json_path = os.path.join(directory, report_json.finding_filename(index, finding))
        test_path = os.path.join(directory, test_filename(index, finding))
        report_json.write_text_atomic(
            test_path,
            regression_test(
                finding,
                target=self.target,
                db=report_json.recorded_db(self.database),
                isolation=self.settings.get("isolation"),
            ),
        )
        document = report_json.finding_document(
            finding,
            target=self.target,
            database=self.database,
            seed=self.seed,
            path=json_path,
            test=test_path,
            columns=self.columns,
            identities=self.identities,
        )
        document["shrunk"] = shrunk(finding)
        if not document["shrunk"]:
            document["note"] = finding.extra["unshrunk"]
        report_json.write_atomic(json_path, document)
        entry = Written(
            finding,
            json_path,
            test_path,
            identities=self.identities,
            password=":***@" in str(self.database.get("url", "")),
        )
        if earlier is None:
            self.written.append(entry)
        else:
            self.written[earlier] = entry
        self.write_manifest({"state": "running"})
        return entry

    def withdraw(self, fingerprint: str) -> None:
        """Remove a finding written unshrunk whose minimal example never reproduced
        (unconfirmed: not a finding): its files, and its line in the manifest."""
        for entry in [w for w in self.written if w.finding.fingerprint == fingerprint]:
            if shrunk(entry.finding):
                continue  # only what was written before the confirmation
            for path in (entry.json, entry.test):
                with contextlib.suppress(OSError):
                    os.remove(path)
            self.written.remove(entry)
            self.write_manifest({"state": "running"})

    def write_manifest(self, summary: Mapping[str, Any]) -> None:
        directory = self.ensure_directory()
        document = report_json.manifest_document(
            target=self.target,
            database=self.database,
            settings=self.settings,
            summary=summary,
            files=[(w.finding, w.json) for w in self.written],
            tests=[w.test for w in self.written],
        )
        for entry, written in zip(document["findings"], self.written, strict=True):
            entry["shrunk"] = shrunk(written.finding)
        report_json.write_atomic(os.path.join(directory, "manifest.json"), document)

    def finish(self, summary: Mapping[str, Any]) -> str:
        """The manifest, ``junit.xml`` and ``report.html`` of the whole run."""
        directory = self.ensure_directory()
        self.write_manifest(summary)
        report_json.write_text_atomic(
            os.path.join(directory, "junit.xml"),
            junit.render(self.target, self.written, summary=summary, database=self.database),
        )
        report_json.write_text_atomic(
            os.path.join(directory, "report.html"),
            html.render(
                self.target,
                self.written,
                database=self.database,
                settings=self.settings,
                summary=summary,
                columns=self.columns,
            ),
        )
        return directory
