"""The `alerts` job of `chainrisk serve`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chainrisk.errors import ChainriskError

if TYPE_CHECKING:
    from chainrisk.serve.jobs import JobRun


def run_job(run: JobRun) -> dict[str, Any]:
    """Not available yet in this build."""
    raise ChainriskError(f"job {run.job!r}: not available in this build")
