"""Benchmarks behind `chainrisk bench NAME --json`: each measures ours and a baseline in the same run."""

from __future__ import annotations

import os
import platform


def machine() -> dict[str, object]:
    """Cores, memory and platform, recorded next to every figure."""
    memory_gib = 0.0
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    memory_gib = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
