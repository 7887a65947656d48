"""Hessian measures against closed forms: the top eigenvalues (Lanczos on Hessian-vector
products) and Hutchinson's trace, on quadratics and on logistic regression."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.cell import Cell
from bench.measures import evaluation_batch
from bench.train import _Run, run_cell

QUAD = {"name": "quadratic", "params": {"dim": 10, "kappa": 100.0, "dtype": "float64"}}
EIGENVALUES = np.logspace(-2, 0, 10)


def run(problem, measures, steps=3, batch_size=None, optimizer=None):
    cell = Cell.build("t", {"steps": steps, "eval_every": steps}, measures, problem=problem,
                      optimizer=optimizer or {"name": "sgd", "params": {"lr": 0.1}},
                      batch_size=batch_size, seed=0)
    out = run_cell(cell)
    assert out.status == "ok", out.error
    return out


def test_sharpness_is_the_largest_eigenvalue_of_a_quadratic():
    out = run(QUAD, ({"name": "sharpness", "params": {"k": 3, "tol": 0.0}},))
    for entry in out.history:   # the Hessian of ½xᵀAx is A wherever x is
        assert entry["sharpness"] == pytest.approx(1.0, rel=1e-10)
        assert entry["sharpness_top_k"] == pytest.approx(EIGENVALUES[::-1][:3], rel=1e-10)


def test_hessian_trace_of_a_diagonal_quadratic_is_exact():
    # with A diagonal, vᵀAv = Σ λᵢ vᵢ² = trace(A) for every ±1 vector: no variance at all
    problem = {"name": "quadratic", "params": {"dim": 10, "kappa": 100.0, "rotate": False,
                                               "dtype": "float64"}}
    out = run(problem, ("hessian_trace",))
    assert out.history[0]["hessian_trace"] == pytest.approx(EIGENVALUES.sum(), rel=1e-12)
    assert out.history[0]["hessian_trace_se"] == pytest.approx(0.0, abs=1e-12)


def test_hessian_trace_of_a_rotated_quadratic_is_within_its_error():
    out = run(QUAD, ({"name": "hessian_trace", "params": {"probes": 400}},))
    entry = out.history[0]
    assert 0 < entry["hessian_trace_se"] < 0.2
    assert abs(entry["hessian_trace"] - EIGENVALUES.sum()) < 4 * entry["hessian_trace_se"]


def test_sharpness_on_logistic_matches_the_closed_form_hessian_of_its_subset():
    params = {"samples": 600, "features": 8, "dtype": "float64"}
    measures = ({"name": "sharpness", "params": {"k": 2, "samples": 256, "tol": 0.0}},)
    cell = Cell.build("t", {"steps": 5, "eval_every": 5}, measures,
                      problem={"name": "logistic", "params": params},
                      optimizer={"name": "sgd", "params": {"lr": 0.1}}, batch_size=50, seed=0)
    run = _Run(cell, torch.device("cpu"))
    out = run.train()
    batch = evaluation_batch(run.problem, 256)   # the same seeded subset, the final weights
    dense = np.linalg.eigvalsh(run.problem.hessian(batch).numpy())[::-1]
    assert len(batch) == 256 and run.problem.train_size == 600
    assert out.history[-1]["sharpness_top_k"] == pytest.approx(dense[:2], rel=1e-8)


def test_sharpness_and_trace_of_a_network_on_real_data():
    problem = {"name": "mlp", "params": {"data": "mnist", "hidden": [16], "subset": 512,
                                         "test_subset": 256}}
    out = run(problem, ({"name": "sharpness", "params": {"samples": 256}},
                        {"name": "hessian_trace", "params": {"probes": 20, "samples": 256}},
                        {"name": "eps_sharpness", "params": {"samples": 256}}),
              steps=4, batch_size=64)
    for entry in out.history:
        assert entry["sharpness"] > 0 and entry["hessian_trace"] > 0
    # eps_sharpness is taken at the end only (its default `at: end`)
    assert [("eps_sharpness" in h) for h in out.history] == [False] * (len(out.history) - 1) + [True]
    assert out.history[-1]["eps_sharpness"] > 0
    # measuring moved nothing: the same losses as a run without measures, bit for bit
    plain = run(problem, (), steps=4, batch_size=64)
    assert [h["train_loss"] for h in out.history] == [h["train_loss"] for h in plain.history]


def test_curvature_products_are_not_counted_as_training():
    plain = run(QUAD, ())
    measured = run(QUAD, ("sharpness", "hessian_trace"))
    assert [h["hvp_evals"] for h in measured.history] == [0, 0]
    assert [h["gradient_evals"] for h in measured.history] == \
        [h["gradient_evals"] for h in plain.history]


def test_sharpness_needs_more_parameters_than_eigenvalues(write_spec, cli, capsys):
    spec = write_spec("""
        name: t
        seeds: [0]
        experiments:
          e:
            problem: {name: quadratic, dim: 2}
            optimizer: {name: sgd, lr: 0.1}
            budget: {steps: 5}
            measures: [{name: sharpness, k: 2}]
        """)
    assert cli("validate", spec) == 2
    assert "needs more than 2 parameters" in capsys.readouterr().err


def test_eps_sharpness_of_a_diagonal_quadratic_is_its_far_corner():
    # f = ½ Σ λᵢ xᵢ² grows fastest outwards: the box's far corner y = sign(x)·ε(|x| + 1)
    x0 = [0.3, -0.7, 0.05]
    lams = np.array([1.0, 0.1, 0.01])
    problem = {"name": "quadratic", "params": {"eigenvalues": lams.tolist(), "rotate": False,
                                               "x0": x0, "dtype": "float64"}}
    eps = 0.01
    out = run(problem, ({"name": "eps_sharpness", "params": {"eps": eps, "at": "evaluations"}},), steps=1,
              optimizer={"name": "sgd", "params": {"lr": 0.0}})
    x = np.abs(x0)
    f = 0.5 * (lams * x ** 2).sum()
    f_max = 0.5 * (lams * (x + eps * (x + 1)) ** 2).sum()
    for entry in out.history:   # lr 0: the point never moves, and measuring never moves it
        assert entry["eps_sharpness"] == pytest.approx(100 * (f_max - f) / (1 + f), rel=1e-9)
        assert entry["train_loss"] == pytest.approx(f, rel=1e-15)


def test_eps_sharpness_at_the_minimum_of_a_diagonal_quadratic():
    # at x* = 0 every corner of the box |yᵢ| ≤ ε is a maximum: φ = 100 · ε² · tr(A) / 2
    lams = [1.0, 0.3, 0.1, 0.01]
    problem = {"name": "quadratic", "params": {"eigenvalues": lams, "rotate": False,
                                               "x0": [0.0] * 4, "dtype": "float64"}}
    eps = 1e-3
    out = run(problem, ({"name": "eps_sharpness", "params": {"eps": eps, "at": "evaluations"}},), steps=1)
    assert out.history[0]["train_loss"] == 0.0
    assert out.history[0]["eps_sharpness"] == pytest.approx(100 * eps ** 2 * sum(lams) / 2,
                                                            rel=1e-9)


def test_sharpness_of_a_rotated_50_dimensional_quadratic():
    problem = {"name": "quadratic", "params": {"dim": 50, "kappa": 1000.0, "dtype": "float64"}}
    out = run(problem, ({"name": "sharpness", "params": {"k": 3}},), steps=2)
    spectrum = np.sort(np.logspace(-3, 0, 50))[::-1]
    for entry in out.history:   # the default tol (1e-3) still gives these to 1e-6
        assert entry["sharpness"] == pytest.approx(1.0, rel=1e-6)
        assert entry["sharpness_top_k"] == pytest.approx(spectrum[:3], rel=1e-6)


def test_small_mlp_against_its_full_autograd_hessian():
    """A 1,000-odd-parameter MLP: Lanczos against eigvalsh of the whole Hessian, and
    Hutchinson's trace against its exact trace."""
    problem = {"name": "mlp", "params": {"data": "mnist", "hidden": [2], "subset": 512,
                                         "test_subset": 256, "activation": "tanh"}}
    measures = ({"name": "sharpness", "params": {"k": 2, "samples": 512, "tol": 1e-8}},
                {"name": "hessian_trace", "params": {"probes": 200, "samples": 512}})
    cell = Cell.build("t", {"steps": 3, "eval_every": 3}, measures, problem=problem,
                      optimizer={"name": "sgd", "params": {"lr": 0.1}}, batch_size=64, seed=0)
    run_ = _Run(cell, torch.device("cpu"))
    out = run_.train()
    assert out.status == "ok", out.error
    model, params = run_.problem.model, run_.params
    n = sum(p.numel() for p in params)
    assert 1_000 < n <= 2_000
    x, y = run_.problem.inputs(evaluation_batch(run_.problem, 512))
    shapes = [p.shape for p in params]

    def loss_of(flat):
        pieces, at = {}, 0
        for (name, _), shape in zip(model.named_parameters(), shapes):
            pieces[name] = flat[at:at + shape.numel()].view(shape)
            at += shape.numel()
        model.eval()
        return run_.problem.criterion(torch.func.functional_call(model, pieces, (x,)), y)
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    hessian = torch.autograd.functional.hessian(loss_of, flat).double()
    eigenvalues = torch.linalg.eigvalsh(hessian).flip(0).numpy()
    entry = out.history[-1]
    assert entry["sharpness_top_k"] == pytest.approx(eigenvalues[:2], rel=1e-4)
    trace = float(hessian.trace())
    assert abs(entry["hessian_trace"] - trace) < 0.05 * abs(trace)
    assert abs(entry["hessian_trace"] - trace) < 4 * entry["hessian_trace_se"]
