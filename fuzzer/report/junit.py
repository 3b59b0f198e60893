"""JUnit XML for CI systems: one test case per target × finding kind.

Every kind the fuzzer knows is a test case, so a CI system sees a stable list of
tests from run to run: a kind the run found fails, with the text report of each of
its findings as the failure's body; the others pass.
"""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fuzzer.kinds import KINDS, TITLES
from fuzzer.report.escape import xml

if TYPE_CHECKING:
    from fuzzer.report.written import Written


def render(
    target: str,
    written: Sequence[Written],
    *,
    summary: Mapping[str, Any],
    database: Mapping[str, Any],
) -> str:
    """The XML; every text from the target passes ``escape.xml`` (a NUL in a body, a
    form feed in a name would make it ill-formed)."""
    target = xml(target)
    seconds = float(summary.get("seconds") or 0.0)
    by_kind: dict[str, list[Written]] = {}
    for entry in written:
        by_kind.setdefault(entry.finding.kind, []).append(entry)
    failures = sum(1 for kind in KINDS if kind in by_kind)

    suites = ET.Element(
        "testsuites",
        name="flask-race-fuzzer",
        tests=str(len(KINDS)),
        failures=str(failures),
        errors="0",
        time=f"{seconds:.3f}",
    )
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=target,
        tests=str(len(KINDS)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{seconds:.3f}",
        timestamp=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )
    properties = ET.SubElement(suite, "properties")
    described = {
        "database": " ".join(
            str(database.get(k, "")) for k in ("server_version", "isolation_level")
        ).strip(),
        "database.url": str(database.get("url", "")),
        "examples": str(summary.get("examples", "")),
        "seed": str(summary.get("seed", "")),
        "stop_reason": str(summary.get("stop_reason", "")),
    }
    for name, value in described.items():
        ET.SubElement(properties, "property", name=name, value=xml(value))

    for kind in KINDS:
        case = ET.SubElement(suite, "testcase", classname=target, name=kind, time="0")
        found = by_kind.get(kind)
        if not found:
            continue
        first = found[0].finding
        message = f"{TITLES[kind]}: " + "; ".join(
            " + ".join(w.finding.endpoints)
            + (f" ({w.finding.exception})" if w.finding.exception else "")
            for w in found
        )
        if first.flaky:
            message += f" (flaky: reproduced {first.flaky})"
        failure = ET.SubElement(case, "failure", message=xml(message), type=kind)
        failure.text = xml("\n\n".join(w.text() for w in found))
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )
