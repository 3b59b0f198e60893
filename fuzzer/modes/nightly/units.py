"""Work a campaign's workers share, in units leased through the campaign's store
(fuzzer/modes/nightly/campaign.py): the systematic opening's scenarios and the pairs of the
bounded exhaustive plan (fuzzer/search/plan/pairs.py)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fuzzer.findings import Finding, Reproduced
from fuzzer.model import Scenario
from fuzzer.modes.nightly.campaign import Campaign
from fuzzer.search.plan.pairs import Coverage, Plan

__all__ = ["Units", "campaign_pairs", "openings", "pairs", "replay_known"]

CONFIRM = 3  # replays of a reported finding, as the engine confirms its own


class Units:
    """Work a campaign's workers share: the systematic opening's scenarios, and the
    pairs of the bounded exhaustive plan.

    A unit is named by its content (an opening scenario's JSON, a pair's endpoints), so
    every worker names it alike. A round takes a chunk of units not done and not leased
    by a live worker; when the round gets through them they are done for the whole
    campaign, else they are given back (the round ended at a new finding, or the time
    ran out) and the next round (of any worker) takes them again."""

    def __init__(
        self,
        campaign: Campaign,
        worker: str,
        units: dict[str, Any],
        workers: int,
        lease: float,
    ) -> None:
        self.campaign = campaign
        self.worker = worker
        self.lease = lease
        self.renewed = time.monotonic()
        self.units = units
        # a chunk small enough that every worker gets a share
        self.size = max(1, -(-len(self.units) // max(1, workers * 2)))
        self.held: list[str] = []

    def take(self) -> list[Any]:
        done = self.campaign.done()
        for name in self.units:
            if len(self.held) >= self.size:
                break
            if name not in done and self.campaign.claim(name, self.worker, self.lease):
                self.held.append(name)
        self.renewed = time.monotonic()
        return [self.units[name] for name in self.held]

    def renew(self) -> None:
        """Hold the chunk a while longer (a worker that dies stops renewing it)."""
        if self.held and time.monotonic() - self.renewed > self.lease / 3:
            for name in self.held:
                self.campaign.claim(name, self.worker, self.lease)
            self.renewed = time.monotonic()

    def settle(self, *, through: bool) -> None:
        for name in self.held:
            (self.campaign.finish if through else self.campaign.release)(name)
        self.held = []

    def done(self) -> list[Any]:
        finished = self.campaign.done()
        return [payload for name, payload in self.units.items() if name in finished]

    def coverage(self) -> tuple[int, int]:
        return len(self.done()), len(self.units)

    def complete(self) -> bool:
        done, units = self.coverage()
        return done == units


def openings(scenarios: tuple[Scenario, ...]) -> dict[str, Scenario]:
    """The opening's scenarios named by their content, as every worker names them."""
    named = {}
    for scenario in scenarios:
        text = json.dumps(scenario.to_json(), sort_keys=True, default=str)
        named["opening:" + hashlib.sha256(text.encode()).hexdigest()[:16]] = scenario
    return named


def pairs(plan: Plan | None) -> dict[str, tuple[str, str]]:
    return {f"pair:{a} | {b}": (a, b) for a, b in (plan.pairs if plan is not None else ())}


def campaign_pairs(plan: Plan | None, units: Units, random: int) -> Coverage | None:
    """How much of the pairs' plan the whole campaign explored."""
    if plan is None:
        return None
    done = plan.only(set(units.done()))
    return replace(
        plan.coverage(0, random=random),
        explored=len(done.pairs),
        ran=done.size,
        shallow=len(done.pairs),  # a unit is a pair explored whole
    )


def replay_known(
    campaign: Campaign, run: Callable[[Scenario], list[Finding]]
) -> tuple[int, list[Finding]]:
    """The findings the campaign's earlier soaks reported, each run again (``run``: its
    findings) up to CONFIRM times under its recorded schedule: how many runs that took,
    and those found again (flaky when not every time). One no run shows is forgotten:
    fixed, or flaky, and the search may report it anew."""
    runs = 0
    found = []
    for fingerprint, scenario in campaign.known():
        hits: list[Finding] = []
        for _ in range(CONFIRM):
            runs += 1
            hits += [f for f in run(scenario) if f.fingerprint == fingerprint]
            if not hits:
                break
        if hits:
            found.append(hits[0].with_(flaky=Reproduced.unless_always(len(hits), CONFIRM)))
        else:
            campaign.forget(fingerprint)
    return runs, found
