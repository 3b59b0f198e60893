"""A finding and the files written for it, and the commands that reproduce it: what the
writer hands to the HTML and JUnit reports and to the terminal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fuzzer.findings import Finding
from fuzzer.report.text import curl_chain, finding_text


@dataclass(frozen=True)
class Written:
    """One finding and the files written for it."""

    finding: Finding
    json: str  # path of its JSON, as shown to a person
    test: str  # path of its pytest regression test
    identities: Mapping[str, Sequence[str]] | None = None  # identity -> header names
    password: bool = False  # the database URL had a password, which reports never record

    @property
    def reproduce(self) -> list[str]:
        return reproduce_lines(
            self.finding,
            self.json,
            self.test,
            identities=self.identities,
            password=self.password,
        )

    def text(self) -> str:
        return finding_text(self.finding, reproduce=self.reproduce)


def reproduce_lines(
    finding: Finding,
    json_path: str | None,
    test_path: str | None,
    *,
    identities: Mapping[str, Sequence[str]] | None = None,
    password: bool = False,
) -> list[str]:
    """The commands under "Reproduce with:"."""
    lines = []
    if password and (json_path or test_path):
        lines.append(
            "# reports never record the database password: set FUZZER_DB to the URL "
            "(or pass --db URL to fuzzer replay)"
        )
    if json_path:
        lines.append(f"fuzzer replay {json_path}")
    if test_path:
        lines.append(f"pytest {test_path}    # a regression test that pins this schedule")
    lines.append("# the requests in order, against your own server (no interleaving control):")
    lines.append(
        curl_chain(finding.scenario.init + finding.scenario.requests, identities=identities)
    )
    return lines
