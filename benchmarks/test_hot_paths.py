"""The suite's own hot paths, for the `tox -e perf` gate (benchmarks/gate.py).

- one optimizer step of every registered optimizer, on a rotated float64 quadratic at
  n = 10 and n = 1000, through the same closure the training loop passes;
- one MLP training step (784-256-256-10, Adam, batch 128, Fashion-MNIST), as the loop takes it;
- the harness against a hand-written loop is `test_step_speed.py` (same session, same gate).

Every benchmark records the yardstick (bench/calibrate.py) timed right before it in
`extra_info`, so the gate compares times in yardstick units, as `bench compare` does.
"""
from __future__ import annotations

import pytest
import torch

from bench.cell import AXIS, Cell
from bench.execute import process_settings
from bench.train import _Run

SIZES = (10, 1000)
OPTIMIZERS = AXIS["optimizer"].entries().names()
# (rounds, steps per round) per size: a step at n = 1000 can take 0.1 s (a dense Hessian);
# at n = 10, 0.1 ms. Steps per round: a single step of microseconds, timed alone after a
# fresh build, measures the build's cold caches more than the step
PLAN = {10: (15, 40), 1000: (6, 6)}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    with process_settings(threads=1):
        yield


def training_run(problem: dict, optimizer: str, batch_size=None) -> _Run:
    cell = Cell.build("perf", {"steps": 1000}, problem=problem,
                      optimizer={"name": optimizer, "params": {}}, batch_size=batch_size, seed=0)
    return _Run(cell, torch.device("cpu"))


def one_step(run: _Run) -> None:
    """What the training loop does per step (bench/train.py), without its bookkeeping."""
    batch = run.problem.sample_batch(run.generator)
    run.optimizer.step(run.objective_for(batch))


@pytest.mark.parametrize("dim", SIZES)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_step(benchmark, name, dim):
    """The same steps from the same state every round: an optimizer's work depends on where
    it is (a quasi-Newton line search, scipy's iteration), so each round starts afresh (the
    build and the first step, which sets up state, are off the timer) and times `steps`
    steps; the reported time is per round."""
    benchmark.group = f"one optimizer step, quadratic n = {dim}"
    problem = {"name": "quadratic", "params": {"dim": dim, "kappa": 100.0, "dtype": "float64"}}
    runs: list[_Run] = []

    def fresh():
        if runs:
            runs.pop().close()   # a scipy optimizer's driver thread ends with its run
        runs.append(training_run(problem, name))
        one_step(runs[-1])
        return (runs[-1],), {}
    rounds, steps = PLAN[dim]

    def several(run: _Run) -> None:
        for _ in range(steps):
            one_step(run)
    try:
        benchmark.pedantic(several, setup=fresh, rounds=rounds, warmup_rounds=1)
    finally:
        for run in runs:
            run.close()


def test_mlp_training_step(benchmark):
    benchmark.group = "one MLP training step"
    run = training_run({"name": "mlp", "params": {"data": "fashion-mnist", "hidden": [256, 256],
                                                  "subset": 4096, "test_subset": 500}},
                       "adam", batch_size=128)
    benchmark.pedantic(one_step, args=(run,), rounds=15, iterations=10, warmup_rounds=1)
