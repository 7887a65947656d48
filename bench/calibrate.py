"""A speed yardstick timed in the worker beside every cell, so that times can be compared
across runs on a shared, noisy machine.

Raw seconds of one cell differ by 15% (standard deviation) between two runs on this shared
machine, whose speed wanders for seconds at a time on both cores at once. Two fixed
workloads are timed in the worker's process right before and right after each cell, and a
quarter of them at up to 16 of its evaluations, off its clock (`DuringCell`): `compute`
(dense float32 matrix products: what a network's step is made of) and `overhead` (tiny
autograd + torch.optim steps: what an analytic cell's step is made of). A cell's time
divided by its yardstick is in "yardstick units", which move half as much between runs as
seconds do (`bench compare` uses them; the figures are in the README).

`machine_kind()` names the kind of machine a baseline belongs to: the yardstick absorbs load,
not a different processor, library or thread count.
"""
from __future__ import annotations

import os
import platform
import re
import statistics
import time
from pathlib import Path

WORKLOADS = ("compute", "overhead")


def _compute_workload(count: int = 12):
    import torch
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(160, 160, generator=generator)
    b = torch.randn(160, 160, generator=generator)

    def run() -> None:
        for _ in range(count):
            a @ b
    return run


def _overhead_workload(count: int = 16):
    import torch
    x = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
    scale = torch.tensor([1.0, 0.01])
    optimizer = torch.optim.SGD([x], lr=0.1)

    def run() -> None:
        for _ in range(count):
            optimizer.zero_grad(set_to_none=True)
            (0.5 * (scale * x * x).sum()).backward()
            optimizer.step()
    return run


def _timed(run, repeats: int) -> float:
    run()   # warm: the first call pays allocation and dispatch set-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(repeats: int = 5) -> dict[str, float]:
    """Seconds of each fixed workload (median of `repeats`), in this process, on the CPU.
    About 15 ms in all on this machine's cores."""
    return {"compute": _timed(_compute_workload(), repeats),
            "overhead": _timed(_overhead_workload(), repeats)}


SHRINK = 4            # a sample during a cell is a quarter of both workloads ...
MAX_SAMPLES = 16      # ... taken at no more than this many of its evaluations


class DuringCell:
    """Yardstick samples at a cell's evaluations, off its clock: this machine slows down for
    seconds at a time (both cores at once), so a yardstick timed only before and after a cell
    misses a slow spell in its middle. About 1 ms each, at most MAX_SAMPLES per cell."""

    def __init__(self, evaluations: int):
        self.stride = max(1, -(-evaluations // MAX_SAMPLES))
        self.seen = 0
        self.samples: list[float] = []
        self._runs = (_compute_workload(12 // SHRINK), _overhead_workload(16 // SHRINK))
        for run in self._runs:
            run()   # warm, as in measure()

    def at_evaluation(self) -> None:
        self.seen += 1
        if (self.seen - 1) % self.stride:
            return
        start = time.perf_counter()
        for run in self._runs:
            run()
        self.samples.append((time.perf_counter() - start) * SHRINK)


def yardstick(calibration: dict | None) -> float | None:
    """One number per cell, in seconds of both full workloads: the 20%-trimmed mean of the
    samples before, during and after the cell (a mean, so a slow spell counts in proportion
    to its length; trimmed, so one preempted sample does not). None when the result carries
    no calibration (an older run)."""
    if not isinstance(calibration, dict):
        return None
    points = [calibration.get(k) for k in ("before", "after")]
    samples = [sum(p[w] for w in WORKLOADS) for p in points
               if isinstance(p, dict) and all(isinstance(p.get(w), (int, float)) for w in WORKLOADS)]
    samples += [x for x in calibration.get("during") or () if isinstance(x, (int, float))]
    if not samples or min(samples) <= 0:
        return None
    from scipy.stats import trim_mean
    return float(trim_mean(samples, 0.2))


def machine_kind() -> str:
    """processor model, usable cores, torch version and build: e.g.
    `amd-epyc-2cpu-torch2.13.0-cpu`. Baselines are kept per kind."""
    import torch
    model = _cpu_model() or platform.machine() or "cpu"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    version = torch.__version__.replace("+", "-")
    if "-" not in version:
        version += "-cuda" if torch.version.cuda else "-cpu"
    return _slug(f"{model}-{cores}cpu-torch{version}")


def _cpu_model() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or None
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1) if match else None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")

