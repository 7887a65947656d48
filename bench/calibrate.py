"""A speed yardstick timed in the worker beside every cell, so that times can be compared
across runs on a shared, noisy machine.

Raw seconds from two runs differ by ±7% on an idle shared machine and by far more when a
neighbour takes the cores. Two fixed workloads are timed in the same process right before
and right after each cell: `compute` (dense float32 matrix products: what a network's step
is made of) and `overhead` (tiny autograd + torch.optim steps: what an analytic cell's step is
made of). A cell's time divided by its yardstick is in "yardstick units", which move far less
between runs than seconds do (`bench compare` uses them; figures in the README).

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


def _compute_workload():
    import torch
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(160, 160, generator=generator)
    b = torch.randn(160, 160, generator=generator)

    def run() -> None:
        for _ in range(12):
            a @ b
    return run


def _overhead_workload():
    import torch
    x = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
    scale = torch.tensor([1.0, 0.01])
    optimizer = torch.optim.SGD([x], lr=0.1)

    def run() -> None:
        for _ in range(16):
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


def yardstick(calibration: dict | None) -> float | None:
    """One number per cell: the sum of both workloads, averaged over before and after the
    cell (None when the result carries no calibration, e.g. from an older run)."""
    if not isinstance(calibration, dict):
        return None
    points = [calibration.get(k) for k in ("before", "after")]
    sums = [sum(p[w] for w in WORKLOADS) for p in points
            if isinstance(p, dict) and all(isinstance(p.get(w), (int, float)) for w in WORKLOADS)]
    return statistics.fmean(sums) if sums and all(s > 0 for s in sums) else None


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


WINDOW = 9   # cells: the yardsticks of a cell's neighbours in its worker, by start time


def local_yardsticks(results: list[dict]) -> dict[str, float | None]:
    """Per result id, the median yardstick of the WINDOW cells its worker ran around it.

    One cell's yardstick is 30 ms of timing on a machine whose speed wanders by ±15% at that
    scale, so dividing by it adds as much noise as it removes. The machine's drift is slower
    than a few cells, so the median of a cell's neighbours in the same worker tracks the drift
    without the jitter (measured: README, "Regression-checking in CI"). Results without a
    worker record (older runs) keep their own yardstick."""
    out: dict[str, float | None] = {}
    workers: dict = {}
    for r in results:
        env = r.get("env") or {}
        worker = env.get("worker") or {}
        out[r["id"]] = yardstick(env.get("calibration"))
        if out[r["id"]] is not None and isinstance(worker.get("started"), (int, float)):
            workers.setdefault(worker.get("pid"), []).append((worker["started"], r["id"]))
    for cells in workers.values():
        cells.sort()
        own = [out[i] for _, i in cells]
        for k, (_, i) in enumerate(cells):
            lo = min(max(0, k - WINDOW // 2), max(0, len(cells) - WINDOW))
            out[i] = statistics.median(own[lo:lo + WINDOW])
    return out
