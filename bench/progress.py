"""A one-line progress bar: cells done/total, failures, ETA (a line every few seconds off a tty)."""
from __future__ import annotations

import sys
import time
from collections import Counter


class Progress:
    def __init__(self, total: int, stream=None, every: float = 5.0):
        self.total = total
        self.stream = stream or sys.stderr
        self.counts: Counter = Counter()
        self.start = time.monotonic()
        self.every = every
        self.last = 0.0
        self.tty = getattr(self.stream, "isatty", lambda: False)()

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def update(self, status: str) -> None:
        self.counts[status] += 1
        now = time.monotonic()
        if self.tty or now - self.last >= self.every or self.done == self.total:
            self.last = now
            end = "\n" if not self.tty or self.done == self.total else ""
            self.stream.write(("\r" if self.tty else "") + self.line() + end)
            self.stream.flush()

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        width = 24
        filled = int(width * self.done / max(1, self.total))
        eta = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        outcomes = "  ".join(f"{status} {self.counts[status]}"
                             for status in ("diverged", "timeout", "error") if self.counts[status])
        return (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} cells  "
                f"{outcomes + '  ' if outcomes else ''}elapsed {elapsed:5.1f}s  eta {eta:5.1f}s")
