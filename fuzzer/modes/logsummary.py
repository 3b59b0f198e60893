"""What the app logged during a run (modes/applog.py keeps it): apart, so that the
reports that carry it need not import the log itself."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AppLogSummary"]


@dataclass(frozen=True)
class AppLogSummary:
    """What the app wrote during a run."""

    records: int  # log records made
    errors: int  # of them, ERROR or worse
    lines: int  # lines written to the log file in all
    path: str | None  # where the log is, None when nothing was kept

    def line(self) -> str:
        """The one line a run prints about it."""
        if not self.lines:
            return "The app logged nothing."
        where = f": {self.path}" if self.path else " (not kept: no report directory)"
        return (
            f"The app logged {self.records} record(s), {self.errors} of them errors, "
            f"{self.lines} line(s) in all{where}"
        )
