"""A one-line progress bar on stderr, for the long commands (seed, bench)."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self, label: str, stream=sys.stderr):
        self.label = label
        self.stream = stream
        self.started = time.monotonic()
        self.tty = stream.isatty()
        self._last_pct = -1

    def __call__(self, done: int, total: int) -> None:
        pct = 100 if total == 0 else min(100, done * 100 // total)
        elapsed = time.monotonic() - self.started
        if self.tty:
            filled = pct * 30 // 100
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {pct:3d}% "
                              f"{done:,}/{total:,} orders {elapsed:5.1f}s")  # fmt: skip
            if pct == 100:
                self.stream.write("\n")
            self.stream.flush()
        elif pct // 10 != self._last_pct // 10 or pct == 100:
            self.stream.write(f"{self.label}: {pct}% ({done:,}/{total:,} orders, {elapsed:.1f}s)\n")
            self.stream.flush()
        self._last_pct = pct
