"""Samples per second of one MLP epoch on Fashion-MNIST: a `bench` cell against a hand-written
minimal PyTorch loop on the same data, interleaved, one thread each, median of repeats.

    BENCH_DATA=../shared/data python benchmarks/mlp_throughput.py [--repeats 5]

Both train 784-256-256-10 (ReLU) with Adam (lr 1e-3), batch 128, one epoch of the 60,000
training images held as one tensor and indexed by a seeded permutation. `bench` is timed by
its own training clock (evaluation excluded); the hand loop by perf_counter around its epoch.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from bench.cell import Cell
from bench.execute import process_settings
from bench.train import run_cell
from problems.imagedata import prepare

PROBLEM = {"name": "mlp", "params": {"data": "fashion-mnist", "hidden": [256, 256],
                                     "test_subset": 1000}}


def bench_epoch() -> float:
    cell = Cell.build("perf", {"epochs": 1, "evals_per_epoch": 1}, problem=PROBLEM,
                      optimizer={"name": "adam", "params": {"lr": 1e-3}}, batch_size=128, seed=0)
    out = run_cell(cell)
    assert out.status == "ok", out.error
    return out.history[-1]["samples"] / out.seconds


def hand_epoch(data) -> float:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = data.train.x, data.train.y
    start = time.perf_counter()
    order = torch.randperm(len(y))
    for i in range(0, len(y), 128):
        idx = order[i:i + 128]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
    return len(y) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data = prepare("fashion-mnist", 0, torch.device("cpu"))
    rows = {"bench": [], "hand": []}
    with process_settings(threads=1):
        bench_epoch()                                  # warm-up: imports, caches
        for _ in range(args.repeats):
            rows["hand"].append(hand_epoch(data))
            rows["bench"].append(bench_epoch())
    b, h = statistics.median(rows["bench"]), statistics.median(rows["hand"])
    print(f"hand-written loop: {h:,.0f} samples/s (median of {args.repeats}: "
          f"{', '.join(f'{v:,.0f}' for v in rows['hand'])})")
    print(f"bench cell:        {b:,.0f} samples/s (median of {args.repeats}: "
          f"{', '.join(f'{v:,.0f}' for v in rows['bench'])})")
    print(f"time ratio bench / hand: {h / b:.3f}")


if __name__ == "__main__":
    main()
