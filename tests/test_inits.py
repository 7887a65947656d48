"""Initialisation: symmetry under zeros, vanishing activations under small weights, He's
preserved variance for ReLU, and the notes' worked backpropagation example (seed 003)."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

from bench import optimizers
from bench.cell import Cell
from bench.inits import INITS
from bench.objective import Objective
from bench.train import run_cell
from problems import PROBLEMS
from problems.base import Context

DEEP = [256] * 10   # ten hidden layers


def build(name: str, init: dict | None = None, seed: int = 0, **params):
    gen = torch.Generator().manual_seed(seed)
    problem = PROBLEMS.get(name).factory(Context(seed, torch.device("cpu"), gen, 64), **params)
    if init:
        INITS.get(init["name"]).factory(**init.get("params", {}))(problem, gen)
    return problem, gen


def train(problem, gen, steps: int, optimizer=("sgd", {"lr": 0.1})):
    opt = optimizers.build(optimizer[0], problem.parameters(), optimizer[1])
    counts = Counter()
    for _ in range(steps):
        batch = problem.sample_batch(gen)
        opt.step(Objective(lambda b=batch: problem.loss(b), problem.parameters(), counts))


def activation_stds(init: dict, activation: str) -> list[float]:
    cell = Cell.build("t", {"steps": 1, "eval_every": 1}, ("activation_stats",),
                      problem={"name": "mlp", "params": {"data": "fashion-mnist", "hidden": DEEP,
                                                         "activation": activation, "subset": 2000,
                                                         "test_subset": 500}},
                      optimizer={"name": "sgd", "params": {"lr": 0.01}}, init=init,
                      batch_size=128, seed=0)
    out = run_cell(cell)
    assert out.status == "ok", out.error
    layers = out.measures["activation_stats"]["init"]
    assert len(layers) == 10
    return [layer["std"] for layer in layers]


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_zero_init_never_breaks_symmetry(activation):
    problem, gen = build("mlp", {"name": "zeros"}, data="mnist", hidden=[16, 16],
                         activation=activation, subset=512, test_subset=100)
    train(problem, gen, steps=20)
    linears = [m for m in problem.model if isinstance(m, torch.nn.Linear)]
    moved = 0.0
    for layer in linears[:-1]:                      # every hidden layer: all units identical
        w = layer.weight.detach()
        assert torch.equal(w, w[:1].expand_as(w)), "hidden units diverged"
        moved += float(w.abs().sum())
    last = linears[-1].weight.detach()             # and every output unit sees them equally
    assert torch.equal(last, last[:, :1].expand_as(last))
    assert float(linears[-1].bias.detach().abs().sum()) > 0, "training did happen (biases moved)"
    if activation == "sigmoid":                   # σ(0) = ½ ≠ 0: weights move, in lockstep
        assert moved + float(last.abs().sum()) > 0


def test_small_random_init_makes_deep_tanh_activations_vanish():
    stds = activation_stds({"name": "normal", "params": {"std": 0.01}}, "tanh")
    assert stds[-1] < 1e-3
    assert all(b < a for a, b in zip(stds, stds[1:]))   # shrinking layer after layer


def test_he_init_keeps_deep_relu_activations_alive():
    stds = activation_stds({"name": "he_normal", "params": {}}, "relu")
    assert all(stds[0] / 2 <= s <= stds[0] * 2 for s in stds), stds


def test_xavier_keeps_tanh_alive_where_small_init_does_not():
    xavier = activation_stds({"name": "xavier_normal", "params": {}}, "tanh")
    assert xavier[-1] > 0.1


def test_init_is_seeded_and_reproducible():
    a, _ = build("mlp", {"name": "he_normal"}, seed=3, data="mnist", hidden=[8], subset=64)
    b, _ = build("mlp", {"name": "he_normal"}, seed=3, data="mnist", hidden=[8], subset=64)
    c, _ = build("mlp", {"name": "he_normal"}, seed=4, data="mnist", hidden=[8], subset=64)
    wa, wb, wc = (p.model[1].weight for p in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_notes_worked_backpropagation_example():
    """Seed 003: the 2-2-2 sigmoid network, i = (0.05, 0.10), targets (0.01, 0.99)."""
    problem, _ = build("toy_mlp", inputs=[[0.05, 0.10]], targets=[[0.01, 0.99]], hidden=[2],
                       activation="sigmoid", output="sigmoid", loss="squared_error")
    hidden, out = problem.model[1], problem.model[3]
    with torch.no_grad():
        hidden.weight.copy_(torch.tensor([[0.15, 0.20], [0.25, 0.30]]))   # w1 w2 / w3 w4
        hidden.bias.fill_(0.35)
        out.weight.copy_(torch.tensor([[0.40, 0.45], [0.50, 0.55]]))      # w5 w6 / w7 w8
        out.bias.fill_(0.60)
    assert problem.evaluate()["train_loss"] == pytest.approx(0.298371109, abs=1e-6)
    opt = optimizers.build("sgd", problem.parameters(), {"lr": 0.5})
    opt.step(Objective(lambda: problem.loss(None), problem.parameters(), Counter()))
    w5, w1 = float(out.weight[0, 0].detach()), float(hidden.weight[0, 0].detach())
    assert w5 == pytest.approx(0.35891648, abs=1e-6)      # w5⁺
    assert w1 == pytest.approx(0.149780716, abs=1e-6)     # w1⁺
    assert (round(w5, 4), round(w1, 4)) == (0.3589, 0.1498)   # as printed in the notes


def test_every_init_runs_on_every_network_kind():
    for name in INITS.names():
        entry = INITS.get(name)
        for problem_name, params in (("mlp", {"data": "mnist", "hidden": [8], "subset": 64}),
                                     ("cnn", {"data": "mnist", "subset": 64})):
            problem, gen = build(problem_name, {"name": name, "params": entry.sample}, **params)
            assert all(torch.isfinite(p).all() for p in problem.parameters())
