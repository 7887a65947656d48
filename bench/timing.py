"""A training clock that syncs the device before reading and pauses during evaluation."""
from __future__ import annotations

import time
from contextlib import contextmanager

import torch


class Clock:
    """Seconds of training work only: evaluation runs inside `paused()` and is not counted."""

    def __init__(self, device: torch.device):
        self.device = device
        self._spent = 0.0
        self._since: float | None = None

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)   # GPU work is asynchronous: wait for it

    def start(self) -> None:
        self._sync()
        self._since = time.perf_counter()

    def seconds(self) -> float:
        if self._since is None:
            return self._spent
        return self._spent + time.perf_counter() - self._since

    def synced_seconds(self) -> float:
        self._sync()
        return self.seconds()

    @contextmanager
    def paused(self):
        running = self._since is not None
        if running:
            self._spent = self.synced_seconds()
            self._since = None
        try:
            yield
        finally:
            if running:
                self.start()
