"""What `augment` adds to a CIFAR-10 epoch of DeepOBS's 3c3d, against no augmentation.

Trains the same cell with and without `augment` (crop with 4 pixels of padding, flip, PCA
colour), interleaved, for a few dozen steps each on one thread; reports the median training
time per step and the implied time per epoch of 50,000 images at batch 128 (391 steps).

    BENCH_DATA=../shared/data python benchmarks/augment_overhead.py [--steps 20] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics

import torch

from bench.cell import Cell
from bench.train import run_cell

STEPS_PER_EPOCH = 391   # 50,000 images at batch 128
AUGMENT = {"name": "augment", "params": {"padding": 4, "flip": True, "pca_std": 0.1}}


def cell(regularizer: dict, steps: int) -> Cell:
    return Cell.build("perf", {"steps": steps, "eval_every": steps}, problem={
        "name": "cnn", "params": {"data": "cifar10", "arch": "3c3d", "subset": 5000,
                                  "test_subset": 100}},
        optimizer={"name": "adam", "params": {"lr": 1e-3}}, batch_size=128,
        regularizer=regularizer, seed=0)


def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--steps", type=int, default=20)
    args.add_argument("--repeats", type=int, default=3)
    opts = args.parse_args()
    torch.set_num_threads(1)
    per_step: dict[str, list[float]] = {"none": [], "augment": []}
    for _ in range(opts.repeats):   # interleaved: drift hits both alike
        for name, reg in (("none", {"name": "none", "params": {}}), ("augment", AUGMENT)):
            out = run_cell(cell(reg, opts.steps))
            assert out.status == "ok", out.error
            per_step[name].append(out.seconds / out.steps)
    plain, augmented = (statistics.median(per_step[k]) for k in ("none", "augment"))
    print(f"3c3d on CIFAR-10, batch 128, one thread, {opts.steps} steps x {opts.repeats}")
    for name, value in (("no augmentation", plain), ("augment", augmented)):
        print(f"{name:16} {1000 * value:8.1f} ms/step  {STEPS_PER_EPOCH * value:7.1f} s/epoch")
    print(f"augment / none: {augmented / plain:.3f} "
          f"(each run: {', '.join(f'{a / p:.3f}' for a, p in zip(per_step['augment'], per_step['none']))})")


if __name__ == "__main__":
    main()
