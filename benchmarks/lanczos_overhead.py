"""The `sharpness` measure's overhead over the Hessian-vector products it needs.

On the MLP 784-256-256-10 with 2,048 Fashion-MNIST samples, times the measure's eigsh
(Lanczos, top eigenvalue) and counts its products, beside the same number of bare
double-backward products on the same graph, interleaved, in one run.

    BENCH_DATA=../shared/data python benchmarks/lanczos_overhead.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench.cell import Cell
from bench.measures import Sharpness, loss_gradient
from bench.train import _Run


def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--repeats", type=int, default=5)
    repeats = args.parse_args().repeats
    torch.set_num_threads(1)
    cell = Cell.build("perf", {"steps": 1, "eval_every": 1}, problem={
        "name": "mlp", "params": {"data": "fashion-mnist", "hidden": [256, 256]}},
        optimizer={"name": "sgd", "params": {"lr": 0.01}}, batch_size=128, seed=0)
    run = _Run(cell, torch.device("cpu"))
    probe = run.probe(0)
    measure = Sharpness(samples=2048, max_iter=1000)
    lanczos, bare, products = [], [], []
    for _ in range(repeats):
        probe.counts.clear()
        start = time.perf_counter()
        measure.at_evaluation(probe)
        lanczos.append(time.perf_counter() - start)
        count = probe.counts["hvp"]
        products.append(count)
        start = time.perf_counter()
        objective, grad = loss_gradient(probe, 2048)   # the measure's set-up, then its products
        v = torch.randn(grad.numel(), generator=torch.Generator().manual_seed(0))
        for _ in range(count):
            objective.hvp(grad, v)
        bare.append(time.perf_counter() - start)
    n = sum(p.numel() for p in run.params)
    print(f"MLP 784-256-256-10 ({n:,} parameters), 2,048 samples, one thread")
    print(f"products per eigsh: {products}")
    print(f"sharpness measure: median {statistics.median(lanczos):.3f} s; "
          f"bare products: median {statistics.median(bare):.3f} s")
    ratios = [a / b for a, b in zip(lanczos, bare)]
    print(f"ratio measure / bare products: median {statistics.median(ratios):.3f} "
          f"(each run: {', '.join(f'{r:.3f}' for r in ratios)})")


if __name__ == "__main__":
    main()
