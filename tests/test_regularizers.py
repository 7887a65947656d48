"""Regularizers add λR(W) to the training loss; checked against hand-computed SGD steps."""
from __future__ import annotations

import pytest
import torch

from bench.cell import Cell
from bench.regularizers import REGULARIZERS
from bench.train import run_cell


def one_sgd_step(reg: dict) -> torch.Tensor:
    cell = Cell.build("t", {"steps": 1, "eval_every": 1}, ("trajectory",),
                      problem={"name": "quadratic", "params": {
                          "eigenvalues": [1.0, 0.1], "rotate": False, "x0": [1.0, -2.0],
                          "dtype": "float64"}},
                      optimizer={"name": "sgd", "params": {"lr": 0.1}}, regularizer=reg, seed=0)
    out = run_cell(cell)
    assert out.status == "ok", out.error
    return torch.tensor(out.measures["trajectory"]["points"][1], dtype=torch.float64)


X0 = torch.tensor([1.0, -2.0], dtype=torch.float64)
GRAD_F = torch.tensor([1.0, -0.2], dtype=torch.float64)   # A x0 with A = diag(1, 0.1)


@pytest.mark.parametrize("reg, grad_r", [
    ({"name": "none", "params": {}}, torch.zeros(2, dtype=torch.float64)),
    ({"name": "l2", "params": {"strength": 0.5}}, 0.5 * 2 * X0),
    ({"name": "l1", "params": {"strength": 0.5}}, 0.5 * torch.sign(X0)),
    ({"name": "elastic_net", "params": {"strength": 0.5, "beta": 2.0}},
     0.5 * (2.0 * 2 * X0 + torch.sign(X0))),
])
def test_penalty_gradient_enters_the_step(reg, grad_r):
    expected = X0 - 0.1 * (GRAD_F + grad_r)
    assert torch.allclose(one_sgd_step(reg), expected, rtol=1e-12)


def test_penalties_skip_biases_when_there_are_weights():
    weight, bias = torch.ones(2, 3), torch.ones(3)
    l2 = REGULARIZERS.get("l2").factory(strength=1.0)
    assert l2.penalty([weight, bias]).item() == 6.0
