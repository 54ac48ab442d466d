"""This process's peak resident memory over a stretch of work (the grid's per-stage table).

On Linux the kernel's high-water mark (VmHWM) can be reset (`/proc/self/clear_refs`), so the peak of each stage is
its own. Elsewhere only the process's running peak exists (`getrusage`), which a later stage can only raise: the
table then shows the largest peak seen up to the end of each stage.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_STATUS, _CLEAR = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def reset_peak() -> bool:
    """Start a new peak here; False where the platform cannot (the running peak goes on)."""
    try:
        _CLEAR.write_text("5")
    except OSError:
        return False
    return True


def peak_bytes() -> int | None:
    """The peak resident memory since the last `reset_peak` (or since the start), in bytes; None if unknown."""
    try:
        match = re.search(r"VmHWM:\s+(\d+)\s+kB", _STATUS.read_text())
        if match:
            return int(match.group(1)) * 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, kB on Linux


__all__ = ["peak_bytes", "reset_peak"]
