"""Analytic problems: known minima, gradients, noise, saddles; every registered problem smoke-runs."""
from __future__ import annotations

import math

import pytest
import torch

from bench.cell import Cell
from bench.train import run_cell
from problems import PROBLEMS
from problems.base import Context, Network, Problem


def build(name, seed=0, **params):
    ctx = Context(seed, torch.device("cpu"), torch.Generator().manual_seed(seed))
    return PROBLEMS.get(name).factory(ctx, **params)


def cell(problem: dict, optimizer: dict, steps=30, **budget) -> Cell:
    return Cell.build("t", {"steps": steps, "eval_every": 10, **budget}, problem=problem,
                      optimizer=optimizer, seed=0)


@pytest.mark.parametrize("name", PROBLEMS.names())
def test_every_registered_problem_trains_a_few_steps(name):
    sample = PROBLEMS.get(name).sample
    out = run_cell(cell({"name": name, "params": sample}, {"name": "adam", "params": {"lr": 1e-2}}))
    assert out.status == "ok", out.error
    assert out.history[0].keys() >= {"step", "seconds", "train_loss"}
    assert all(math.isfinite(h["train_loss"]) for h in out.history)


def test_quadratic_spectrum_and_minimum():
    q = build("quadratic", dim=5, kappa=1000.0, dtype="float64")
    eig = torch.linalg.eigvalsh(q.hessian())
    assert torch.allclose(eig, torch.logspace(-3, 0, 5, dtype=torch.float64), rtol=1e-10)
    assert math.isclose(q.x.norm().item(), 1.0, rel_tol=1e-12)     # unit sphere start
    assert q.value(torch.zeros(5, dtype=torch.float64)).item() == 0.0
    x = q.x.detach()
    assert math.isclose(q.evaluate()["train_loss"], 0.5 * (x @ q.hessian() @ x).item(),
                        rel_tol=1e-12)


def test_quadratic_noise_is_zero_mean_gradient_noise_with_given_std():
    q = build("quadratic", dim=2, kappa=10.0, noise=0.5, dtype="float64")
    gen = torch.Generator().manual_seed(1)
    clean = (q.hessian() @ q.x.detach())
    grads = []
    for _ in range(4000):
        q.x.grad = None
        q.loss(q.sample_batch(gen)).backward()
        grads.append(q.x.grad.clone())
    noise = torch.stack(grads) - clean
    assert noise.mean(0).abs().max() < 0.03 and abs(noise.std().item() - 0.5) < 0.02


def test_seed_controls_rotation_and_start():
    a, b, c = (build("quadratic", seed=s, dim=3) for s in (0, 0, 1))
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)


@pytest.mark.parametrize("name, point", [("rosenbrock", [1.0, 1.0]), ("rastrigin", [0.0, 0.0])])
def test_landscape_minimum_is_zero_with_zero_gradient(name, point):
    p = build(name, dtype="float64", x0=point)
    m = p.evaluate()
    assert m["train_loss"] == pytest.approx(0, abs=1e-12)
    assert m["grad_norm"] == pytest.approx(0, abs=1e-9) and m["dist_to_opt"] == 0


def test_rastrigin_has_a_local_minimum_away_from_zero():
    p = build("rastrigin", dtype="float64", x0=[0.99496, 0.0])
    assert p.evaluate()["grad_norm"] < 1e-3 and p.evaluate()["suboptimality"] > 0.9


def test_saddle_escape_is_recorded_with_its_step():
    out = run_cell(cell({"name": "saddle", "params": {"dim": 2, "x0": [0.0, 1e-3]}},
                        {"name": "sgd", "params": {"lr": 0.1}}, steps=200,
                        target={"escaped": 1}))
    # f = x² − y²: y ← y + 2·lr·y = 1.2y, so |y| passes 1 after ⌈log 1000 / log 1.2⌉ = 38 steps
    assert out.target_step == math.ceil(math.log(1000) / math.log(1.2))


def test_gradient_descent_never_leaves_a_saddle_from_its_stable_manifold():
    out = run_cell(cell({"name": "saddle", "params": {"dim": 2, "x0": [0.5, 0.0]}},
                        {"name": "sgd", "params": {"lr": 0.1}}, steps=200,
                        target={"escaped": 1}))
    assert out.target_step is None and out.history[-1]["dist_to_saddle"] < 1e-8


def test_monkey_saddle_value():
    p = build("saddle", kind="monkey", dtype="float64")
    assert p.value(torch.tensor([2.0, 1.0], dtype=torch.float64)).item() == 8 - 6


def test_invalid_parameters_raise():
    with pytest.raises(ValueError, match="kappa"):
        build("quadratic", kappa=0.5)
    with pytest.raises(ValueError, match="negative"):
        build("saddle", dim=2, negative=2)
    with pytest.raises(ValueError, match="x0"):
        build("rosenbrock", x0=[1.0])


@pytest.mark.parametrize("name", PROBLEMS.names())
def test_every_problem_meets_the_protocol_and_its_loss_is_its_three_parts(name):
    entry = PROBLEMS.get(name)
    gen = torch.Generator().manual_seed(0)
    problem = entry.factory(Context(0, torch.device("cpu"), gen, 16 if "data" in entry.sample
                                    or name == "logistic" else None), **entry.sample)
    assert isinstance(problem, Problem)
    assert isinstance(problem, Network) == (name in ("logreg", "mlp", "cnn", "toy_mlp"))
    batch = problem.sample_batch(gen)
    inputs, targets = problem.inputs(batch)
    loss = problem.criterion(problem.forward(inputs), targets)
    assert loss.ndim == 0 and torch.equal(loss, problem.loss(batch))
