"""What the pipeline may ask of the job that runs it."""

from __future__ import annotations

from typing import Protocol

STAGES = ("images", "visualizations", "annotations", "metrics", "documentation", "compression")


class ExportCancelled(Exception):
    """The job stopped being ours (cancelled, timed out or fenced off): stop now."""


class StepContext(Protocol):
    def raise_if_cancelled(self) -> None:
        """Raise ExportCancelled when the job must stop. Called between items."""

    def advance(self, stage: str, current: int, total: int, percent: float, message: str = "",
                item: str = "") -> None:
        """Report that `current` of `total` items of `stage` are done, `percent` overall (0-100);
        `item` names the one just finished (usually an image's file name)."""

    def warn(self, message: str) -> None:
        """Record a warning that ends in the job's `warnings`."""

    def item_done(self) -> None:
        """Called once after every unit of work (benchmark and test hooks ride on it)."""
