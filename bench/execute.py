"""Executors: where cells run. The parent is the only writer of result files.

An executor maps cells to Results as they finish, in any order. `Inline` runs them in this
process; `LocalPool` runs a long-lived pool of worker processes (one torch thread each), with
devices handed out round-robin so several GPUs share the work. A Dask executor, or a batched
executor that stacks many tiny cells into one tensor program, plugs in behind the same
`map(cells) -> iterator of (cell, result)` without touching the training loop.
"""
from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Protocol

import torch

from bench import calibrate, describe
from bench.cell import Cell
from bench.results import environment, make_result
from bench.train import run_cell


class Executor(Protocol):
    def map(self, cells: list[Cell]) -> Iterator[tuple[Cell, dict]]: ...


def prepare_process(threads: int = 1) -> None:
    """Per-process settings for fair timing: one thread per worker, no subnormal slowdowns."""
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)


@contextmanager
def process_settings(threads: int = 1):
    """prepare_process for the duration of a block, restoring the caller's settings after."""
    before = torch.get_num_threads()
    prepare_process(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        torch.set_flush_denormal(False)


def work(cell_dict: dict, device: str, data_dir: str | None = None) -> dict:
    """Run one cell in a worker; returns its Result as plain data."""
    cell = Cell.from_dict(cell_dict)
    worker = {"pid": os.getpid(), "started": time.time()}
    before = calibrate.measure()   # the yardstick, in this process, around the cell
    outcome = run_cell(cell, device, data_dir)
    calibration = {"before": before, "during": outcome.yardstick, "after": calibrate.measure()}
    env = environment(device) | {"calibration": calibration,
                                 "machine_kind": calibrate.machine_kind(), "worker": worker}
    return make_result(cell, outcome, env, describe.cell_defaults(cell))


class Inline:
    def __init__(self, device: str = "cpu", data_dir: str | None = None, threads: int = 1):
        self.device = device
        self.data_dir = data_dir
        self.threads = threads

    def map(self, cells: list[Cell]) -> Iterator[tuple[Cell, dict]]:
        with process_settings(threads=self.threads):
            for cell in cells:
                yield cell, work(cell.to_dict(), self.device, self.data_dir)


class LocalPool:
    def __init__(self, workers: int, devices: list[str], data_dir: str | None = None,
                 threads: int = 1):
        self.workers = workers
        self.devices = devices
        self.data_dir = data_dir
        self.threads = threads

    def map(self, cells: list[Cell]) -> Iterator[tuple[Cell, dict]]:
        # spawn, not fork: a forked child of a process that already started torch's thread
        # pools can deadlock; the pool is started once and imports torch once per worker.
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(self.workers, mp_context=context,
                                   initializer=prepare_process, initargs=(self.threads,))
        try:
            futures = {pool.submit(work, c.to_dict(), self.devices[i % len(self.devices)],
                                   self.data_dir): c
                       for i, c in enumerate(cells)}
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            # an interrupt (or a crash here) must not leave workers finishing cells nobody
            # will record: stop them now (Python 3.14 has terminate_workers for this)
            processes = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                if process.is_alive():
                    process.terminate()
            raise
        pool.shutdown(wait=True)


def available_devices(requested: str) -> list[str]:
    """`auto` is every CUDA device when there is one, else the CPU; `cuda` is every CUDA
    device; `cpu` or `cuda:N` is that one device."""
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if requested == "auto":
        return [f"cuda:{i}" for i in range(n)] or ["cpu"]
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise ValueError(f"--device {requested}: not a device; allowed: auto, cpu, cuda, "
                         "cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {requested}: allowed: auto, cpu, cuda, cuda:N")
    if device.type == "cuda":
        if n == 0:
            raise ValueError(f"--device {requested}: CUDA is not available on this machine")
        if device.index is None:
            return [f"cuda:{i}" for i in range(n)]
        if device.index >= n:
            raise ValueError(f"--device {requested}: this machine has {n} CUDA device(s)")
    return [str(device)]


def make_executor(workers: int | None, device: str, data_dir: str | None = None,
                  threads: int = 1) -> Executor:
    if workers is not None and workers < 1:
        raise ValueError(f"--workers {workers}: give at least 1")
    if threads < 1:
        raise ValueError(f"--threads {threads}: give at least 1")
    devices = available_devices(device)
    count = workers or os.cpu_count() or 1
    if count == 1:
        return Inline(devices[0], data_dir, threads)
    return LocalPool(count, devices, data_dir, threads)


