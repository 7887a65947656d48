"""Per-step cost of a `bench` cell against a hand-written torch loop doing the same work.

Both train the same rotated 2-D quadratic (κ = 100) for STEPS steps with the same torch.optim
optimizer, one thread, subnormals flushed. The hand loop is the minimal eager loop
(zero_grad, loss, backward, step); `bench` adds its schedule write, closure, divergence check
(`loss.item()` each step) and bookkeeping. Run with `tox -e perf`; compare the groups' means.
"""
from __future__ import annotations

import pytest
import torch

from bench.cell import Cell
from bench.execute import prepare_process
from bench.train import run_cell
from problems import PROBLEMS
from problems.base import Context

STEPS = 5000
PROBLEM = {"name": "quadratic", "params": {"dim": 2, "kappa": 100.0}}
OPTIMIZERS = {"sgd": ({"lr": 0.5}, lambda p: torch.optim.SGD(p, lr=0.5)),
              "adam": ({"lr": 0.01}, lambda p: torch.optim.Adam(p, lr=0.01))}


def bench_cell(name: str) -> Cell:
    return Cell.build("perf", {"steps": STEPS, "eval_every": STEPS}, problem=PROBLEM,
                      optimizer={"name": name, "params": OPTIMIZERS[name][0]}, seed=0)


def hand_loop(name: str, check_loss: bool) -> float:
    ctx = Context(0, torch.device("cpu"), torch.Generator().manual_seed(0))
    problem = PROBLEMS.get("quadratic").factory(ctx, **PROBLEM["params"])
    basis, lam = problem.basis, problem.eigenvalues
    x = torch.nn.Parameter(problem.x.detach().clone())
    opt = OPTIMIZERS[name][1]([x])
    for _ in range(STEPS):
        opt.zero_grad(set_to_none=True)
        z = x @ basis
        loss = 0.5 * (lam * z * z).sum()
        loss.backward()
        opt.step()
        if check_loss:
            loss.item()
    return float(loss.detach())


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    prepare_process(threads=1)
    yield
    torch.set_num_threads(threads)
    torch.set_flush_denormal(False)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_bench_cell(benchmark, name):
    benchmark.group = f"{name}: {STEPS} steps, 2-D quadratic"
    out = benchmark.pedantic(run_cell, args=(bench_cell(name),), rounds=7, warmup_rounds=1)
    assert out.status == "ok" and out.steps == STEPS


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_hand_loop(benchmark, name):
    benchmark.group = f"{name}: {STEPS} steps, 2-D quadratic"
    benchmark.pedantic(hand_loop, args=(name, False), rounds=7, warmup_rounds=1)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_hand_loop_with_item(benchmark, name):
    benchmark.group = f"{name}: {STEPS} steps, 2-D quadratic"
    benchmark.pedantic(hand_loop, args=(name, True), rounds=7, warmup_rounds=1)
