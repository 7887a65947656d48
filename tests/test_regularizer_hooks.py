"""Regularizers that act beyond the loss: on the model (dropout, DropConnect), after the step
(max-norm), on the targets (label smoothing, mixup) and on evaluation (early stopping);
combinations; the generalization metrics; malformed choices refused with their lines."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from bench.cell import Cell
from bench.regularizers import REGULARIZERS, combined
from bench.train import _Run, build_problem, run_cell

NET = {"name": "mlp", "params": {"data": "mnist", "hidden": [32, 32], "subset": 512,
                                 "test_subset": 256}}


def net_cell(regularizer, steps=8, optimizer=None, problem=NET, eval_every=4, **budget):
    return Cell.build("t", {"steps": steps, "eval_every": eval_every, **budget},
                      problem=problem, batch_size=64,
                      optimizer=optimizer or {"name": "sgd", "params": {"lr": 0.1}},
                      regularizer=regularizer, seed=0)


def built(regularizer):
    problem, _, _ = build_problem(net_cell(regularizer), torch.device("cpu"))
    return problem


def reg(name, **params):
    return {"name": name, "params": params}


# ---- dropout and DropConnect -----------------------------------------------------------------
def test_dropout_with_p_zero_is_exactly_no_regularizer():
    plain = run_cell(net_cell(reg("none")))
    dropped = run_cell(net_cell(reg("dropout", p=0.0, inverted=True)))
    assert plain.status == dropped.status == "ok"
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    assert strip(dropped.history) == strip(plain.history)


def relative(a, b) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("inverted", [True, False])
def test_dropouts_mean_over_masks_is_the_evaluation_activation(inverted):
    """Averaged over 40,000 masks (one batch of copies of an image), the first hidden layer's
    training output is within 1% of its evaluation output: the inverted form scales while
    training, the notes' form (1 − p) at test time."""
    problem = built(reg("dropout", p=0.5, inverted=inverted))
    hidden = problem.model[:3]   # flatten, linear, activation + dropout
    image = problem.data.train.x[:1]
    hidden.eval()
    with torch.no_grad():
        evaluated = hidden(image)
        assert torch.equal(evaluated, hidden(image))   # evaluation is deterministic
        torch.manual_seed(0)
        hidden.train()
        averaged = hidden(image.expand(40_000, *image.shape[1:])).mean(0, keepdim=True)
    assert relative(averaged, evaluated) < 0.01
    if not inverted:   # the notes' form: test-time activations are (1 − p) times the clean ones
        clean = problem.model[2][0](problem.model[1](problem.model[0](image)))
        assert torch.allclose(evaluated, 0.5 * clean)


def test_dropconnects_mean_over_masks_is_the_evaluation_layer():
    problem = built(reg("dropconnect", p=0.5))
    layer, image = problem.model[1], problem.model[0](problem.data.train.x[:1])
    layer.eval()
    with torch.no_grad():
        evaluated = layer(image)
        assert torch.equal(evaluated, layer(image))
        torch.manual_seed(0)
        layer.train()
        averaged = torch.stack([layer(image) for _ in range(20_000)]).mean(0)
    assert relative(averaged, evaluated) < 0.01
    # hidden layers are masked, the output layer (the class scores) is not
    assert parametrize.is_parametrized(layer, "weight")
    assert not parametrize.is_parametrized(problem.model[-1])


def test_dropout_layers_follow_every_hidden_activation():
    problem = built(reg("dropout", p=0.3))
    drops = [m for m in problem.model.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(drops) == 2 and all(d.p == 0.3 for d in drops)


# ---- max-norm --------------------------------------------------------------------------------
def test_max_norm_bounds_every_row_after_every_step():
    cell = net_cell(reg("max_norm", c=0.3), steps=6, optimizer={"name": "sgd",
                                                                 "params": {"lr": 1.0}})
    run = _Run(cell, torch.device("cpu"))
    layers = [m for m in run.problem.model.modules() if isinstance(m, torch.nn.Linear)]
    assert max(float(layer.weight.detach().norm(dim=1).max()) for layer in layers) > 0.3   # it has work to do
    after = []

    class Checked:   # the regularizer, with the row norms read after each of its steps
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def after_step(self, problem):
            self.inner.after_step(problem)
            after.append(max(float(layer.weight.detach().norm(dim=1).max()) for layer in layers))
    run.regularizer = Checked(run.regularizer)
    assert run.train().status == "ok"
    assert len(after) == 6 and max(after) <= 0.3 + 1e-6


# ---- l1 against l2 ---------------------------------------------------------------------------
def test_l1_makes_weights_sparse_and_l2_does_not():
    sparsity = {}
    for name in ("l1", "l2"):
        out = run_cell(net_cell(reg(name, strength=1e-3), steps=200, eval_every=200,
                                optimizer={"name": "sgd", "params": {"lr": 0.1}}))
        sparsity[name] = out.history[-1]["sparsity"]
    assert sparsity["l1"] > 0.3 and sparsity["l2"] < 0.05, sparsity
    assert sparsity["l1"] > 10 * sparsity["l2"]


# ---- targets ---------------------------------------------------------------------------------
LOGITS = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
LABELS = torch.tensor([0, 2])


def test_label_smoothing_is_cross_entropy_against_smoothed_targets():
    eps, k = 0.2, 3
    smooth = REGULARIZERS.get("label_smoothing").factory(eps=eps)
    loss = smooth.criterion(F.cross_entropy, LOGITS, LABELS)
    logp = LOGITS.log_softmax(1)
    by_hand = sum(-((1 - eps) * logp[i, y] + eps / k * logp[i].sum())
                  for i, y in enumerate(LABELS)) / 2
    assert float(loss) == pytest.approx(float(by_hand), rel=1e-6)


def test_mixup_mixes_inputs_and_losses_with_one_lambda():
    mixup = REGULARIZERS.get("mixup").factory(alpha=0.4)
    x = torch.arange(8.0).reshape(4, 2)
    y = torch.tensor([0, 1, 2, 1])
    mixed, (first, second, lam) = mixup.on_batch(x, y, torch.Generator().manual_seed(3))
    assert torch.equal(first, y) and 0 < lam < 1
    partner = x[[int(i) for i in _partner_rows(mixed, x, lam)]]
    assert torch.allclose(mixed, lam * x + (1 - lam) * partner)
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    loss = mixup.criterion(F.cross_entropy, logits, (first, second, lam))
    by_hand = lam * F.cross_entropy(logits, first) + (1 - lam) * F.cross_entropy(logits, second)
    assert float(loss) == pytest.approx(float(by_hand), rel=1e-12)


def _partner_rows(mixed, x, lam):
    """Which row of x each mixed row was mixed with (rows of x are distinct)."""
    partner = (mixed - lam * x) / (1 - lam)
    return [int(((x - row).abs().sum(1)).argmin()) for row in partner]


def test_combined_label_smoothing_inside_mixup_in_either_order():
    for parts in ([reg("mixup", alpha=0.4), reg("label_smoothing", eps=0.1)],
                  [reg("label_smoothing", eps=0.1), reg("mixup", alpha=0.4)]):
        both = combined(parts)
        x, (first, second, lam) = both.on_batch(torch.randn(2, 3), LABELS,
                                                torch.Generator().manual_seed(0))
        loss = both.criterion(F.cross_entropy, LOGITS, (first, second, lam))
        smooth = lambda t: F.cross_entropy(LOGITS, t, label_smoothing=0.1)  # noqa: E731
        assert float(loss) == pytest.approx(float(lam * smooth(first)
                                                  + (1 - lam) * smooth(second)), rel=1e-6)


# ---- early stopping --------------------------------------------------------------------------
def test_early_stopping_restores_the_best_weights_and_reports_their_metrics():
    stop = reg("early_stopping", metric="train_accuracy", patience=2, min_delta=0.5)
    out = run_cell(net_cell(stop, steps=40, eval_every=4))
    assert out.status == "ok"
    entries = out.history
    # nothing improves by 0.5 after the first evaluation: stop 2 evaluations later
    assert out.stopped_at == 8 and out.restored_step == 0
    assert [h["step"] for h in entries] == [0, 4, 8, 8]
    restored = entries[-1]
    assert restored["train_accuracy"] == entries[0]["train_accuracy"]
    assert restored["test_accuracy"] == entries[0]["test_accuracy"]


# ---- generalization metrics ------------------------------------------------------------------
def test_every_evaluation_records_the_gap_and_sparsity():
    out = run_cell(net_cell(reg("none")))
    for h in out.history:
        assert h["gap_accuracy"] == pytest.approx(h["train_accuracy"] - h["test_accuracy"])
        assert h["gap_loss"] == pytest.approx(h["test_loss"] - h["train_loss"])
        assert 0 <= h["sparsity"] < 0.05


# ---- malformed choices -----------------------------------------------------------------------
SPEC = """
name: r
seeds: [0]
experiments:
  e:
    problem: {problem}
    optimizer: sgd
    regularizer:
      - none
      - {choice}
    budget: {{steps: 2}}
"""
MNIST = "{name: mlp, data: mnist, hidden: [8], subset: 128, test_subset: 64}"


@pytest.mark.parametrize("problem, choice, message", [
    (MNIST, "dropuot", "did you mean 'dropout'"),
    (MNIST, "{name: dropout, p: high}", "p"),
    (MNIST, "{name: dropout, p: -0.1}", "p must be in [0, 1)"),
    (MNIST, "{name: dropout, p: 1.0}", "p must be in [0, 1)"),
    (MNIST, "{name: dropconnect, p: 1.5}", "p must be in [0, 1)"),
    (MNIST, "{name: max_norm, c: 0}", "c must be > 0"),
    (MNIST, "{name: mixup, alpha: -1}", "alpha must be > 0"),
    (MNIST, "{name: early_stopping, metric: val_loss}", "need the problem's `validation`"),
    (MNIST, "[l2, none]", "cannot be a part"),
    (MNIST, "[l2, {name: dropout, p: [0.1, 0.5]}]", "one value per parameter"),
    ("{name: quadratic, dim: 2}", "{name: dropout, p: 0.5}", "needs a network"),
    ("{name: quadratic, dim: 2}", "label_smoothing", "classification network"),
    ("{name: quadratic, dim: 2}", "[l2, max_norm]", "has none"),
])
def test_a_malformed_regularizer_is_refused_at_its_line(write_spec, cli, capsys, tmp_path,
                                                        problem, choice, message):
    spec = write_spec(SPEC.format(problem=problem, choice=choice))
    assert cli("run", spec, "--out", tmp_path / "out") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert any(f"{spec}:9:" in line and message in line for line in lines), lines
    assert not (tmp_path / "out").exists()   # nothing written


def test_a_combined_choice_is_one_cell_labelled_by_its_parts(write_spec, cli, tmp_path):
    spec = write_spec(SPEC.format(problem=MNIST, choice="[l2, {name: dropout, p: 0.5}]"))
    out = tmp_path / "out"
    assert cli("run", spec, "--out", out, "--workers", "1", "--no-report") == 0
    cells = [json.loads(p.read_text())["cell"]["regularizer"] for p in out.glob("cells/*.json")]
    both = next(c for c in cells if c["name"] == "combined")
    assert len(cells) == 2 and both["label"] == "l2 + dropout"
    assert [p["name"] for p in both["params"]["parts"]] == ["l2", "dropout"]
    assert math.isclose(both["params"]["parts"][1]["params"]["p"], 0.5)
