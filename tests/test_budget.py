"""Budgets in epochs on real data: how many steps `epochs` buys, where `evals_per_epoch`
evaluates, and the `epoch` and `samples` bookkeeping of every history entry.

The rules (bench/train.py, problems/imagedata.py):
- an epoch is ⌈n / batch_size⌉ steps: a seeded permutation sliced into batches, the last one
  short when batch_size does not divide n (a batch_size above n is the full batch);
- `epochs: E` runs ⌈E · steps_per_epoch⌉ steps (at least 1);
- `evals_per_epoch: k` evaluates every ⌊steps_per_epoch / k⌋ steps (at least 1), at step 0
  and at the last step;
- an entry's `epoch` is step / steps_per_epoch.
"""
from __future__ import annotations

import math

import pytest
import torch

from bench.results import Store
from problems import PROBLEMS
from problems.base import Context

MNIST = """
name: b
seeds: [0]
experiments:
  e:
    problem: {name: logreg, data: mnist, subset: 100, test_subset: 200}
    optimizer: {name: sgd, lr: 0.1}
    batch_size: [25, 30]
    budget: {epochs: 2, evals_per_epoch: 2}
"""


def run(write_spec, cli, tmp_path, spec: str) -> dict:
    """Run a spec through the CLI; its results by batch size."""
    assert cli("run", write_spec(spec), "--workers", "1", "--no-report") == 0
    results = Store(tmp_path / "results" / "b").load_all()
    assert results and all(r["status"] == "ok" for r in results), results
    return {r["cell"]["batch_size"]: r for r in results}


def column(result: dict, key: str) -> list:
    return [h[key] for h in result["history"]]


def test_two_epochs_of_mnist_in_batches(write_spec, cli, tmp_path):
    runs = run(write_spec, cli, tmp_path, MNIST)
    assert set(runs) == {25, 30}
    for batch_size, r in runs.items():
        # 100 images: 4 batches of 25, or 30 + 30 + 30 + 10 (the short batch is a step)
        assert math.ceil(100 / batch_size) == 4
        assert r["summary"]["steps"] == 8, batch_size
        # evals_per_epoch 2: every ⌊4 / 2⌋ = 2 steps
        assert column(r, "step") == [0, 2, 4, 6, 8]
        assert column(r, "epoch") == [0.0, 0.5, 1.0, 1.5, 2.0]
        assert column(r, "gradient_evals") == [0, 2, 4, 6, 8]     # one gradient per step
        assert column(r, "function_evals") == [0, 2, 4, 6, 8]
        for h in r["history"]:                                   # a real evaluation each time
            assert 0 < h["train_loss"] < 10 and 0 <= h["test_accuracy"] <= 1
        assert r["history"][-1]["train_loss"] < r["history"][0]["train_loss"]
    # 25 divides 100: the sample count is exact
    assert column(runs[25], "samples") == [0, 50, 100, 150, 200]


def test_samples_count_the_short_last_batch(write_spec, cli, tmp_path):
    r = run(write_spec, cli, tmp_path, MNIST.replace("[25, 30]", "30"))[30]
    # an epoch of 100 images is 30 + 30 + 30 + 10
    assert column(r, "samples") == [0, 60, 100, 160, 200]


def test_fractional_epochs_round_the_step_count_up(write_spec, cli, tmp_path):
    spec = MNIST.replace("[25, 30]", "25").replace("epochs: 2", "epochs: 1.1")
    r = run(write_spec, cli, tmp_path, spec)[25]
    # 1.1 epochs of 4 steps is 4.4: 5 steps (floor would stop at 4)
    assert r["summary"]["steps"] == 5
    assert column(r, "step") == [0, 2, 4, 5]                   # the last step is evaluated
    assert column(r, "epoch") == [0.0, 0.5, 1.0, 1.25]
    assert column(r, "samples") == [0, 50, 100, 125]


def test_mlp_with_one_evaluation_per_step(write_spec, cli, tmp_path):
    spec = """
    name: b
    seeds: [0]
    experiments:
      e:
        problem: {name: mlp, data: mnist, hidden: [16], subset: 64, test_subset: 100}
        optimizer: {name: adam, lr: 0.01}
        batch_size: 16
        budget: {epochs: 1, evals_per_epoch: 4}
    """
    r = run(write_spec, cli, tmp_path, spec)[16]
    assert r["summary"]["steps"] == 4
    assert column(r, "step") == [0, 1, 2, 3, 4]
    assert column(r, "epoch") == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert column(r, "samples") == [0, 16, 32, 48, 64]


LOGISTIC = """
name: b
seeds: [0]
experiments:
  e:
    problem: {name: logistic, samples: 120, features: 5, dtype: float64}
    optimizer: {name: sgd, lr: 0.5}
    batch_size: BATCH
    budget: BUDGET
"""


def logistic(write_spec, cli, tmp_path, batch, budget) -> dict:
    spec = LOGISTIC.replace("BATCH", str(batch)).replace("BUDGET", budget)
    return run(write_spec, cli, tmp_path, spec)


def test_logistic_epochs_in_minibatches(write_spec, cli, tmp_path):
    r = logistic(write_spec, cli, tmp_path, 40, "{epochs: 2, evals_per_epoch: 1}")[40]
    # 120 / 40 = 3 steps an epoch; one evaluation per epoch: every 3 steps
    assert r["summary"]["steps"] == 6
    assert column(r, "step") == [0, 3, 6]
    assert column(r, "epoch") == [0.0, 1.0, 2.0]
    assert column(r, "samples") == [0, 120, 240]
    assert column(r, "gradient_evals") == [0, 3, 6]
    assert r["history"][-1]["train_loss"] < r["history"][0]["train_loss"] == pytest.approx(
        math.log(2))                                            # w starts at 0: σ(0) = ½


def test_logistic_full_batch_epoch_is_one_step(write_spec, cli, tmp_path):
    r = logistic(write_spec, cli, tmp_path, "null", "{epochs: 3, evals_per_epoch: 1}")[None]
    assert r["summary"]["steps"] == 3
    assert column(r, "step") == [0, 1, 2, 3]
    assert column(r, "epoch") == [0.0, 1.0, 2.0, 3.0]
    assert column(r, "samples") == [0, 120, 240, 360]


def test_a_batch_larger_than_the_data_is_the_full_batch(write_spec, cli, tmp_path):
    r = logistic(write_spec, cli, tmp_path, 500, "{epochs: 2, evals_per_epoch: 1}")[500]
    assert column(r, "step") == [0, 1, 2]
    assert column(r, "samples") == [0, 120, 240]


def test_evals_per_epoch_that_does_not_divide_the_epoch(write_spec, cli, tmp_path):
    r = logistic(write_spec, cli, tmp_path, 12, "{epochs: 2, evals_per_epoch: 3}")[12]
    # 10 steps an epoch; 3 evaluations an epoch: every ⌊10 / 3⌋ = 3 steps, and the last
    assert r["summary"]["steps"] == 20
    assert column(r, "step") == [0, 3, 6, 9, 12, 15, 18, 20]
    assert column(r, "epoch") == [0.0, 0.3, 0.6, 0.9, 1.2, 1.5, 1.8, 2.0]
    assert column(r, "samples") == [0, 36, 72, 108, 144, 180, 216, 240]


def test_more_evals_than_steps_per_epoch_evaluates_every_step(write_spec, cli, tmp_path):
    r = logistic(write_spec, cli, tmp_path, 40, "{epochs: 1, evals_per_epoch: 5}")[40]
    assert column(r, "step") == [0, 1, 2, 3]


# ---- the batches themselves ----------------------------------------------------------------
@pytest.mark.parametrize("name, params", [
    ("logistic", {"samples": 100, "features": 3}),
    ("logreg", {"data": "mnist", "subset": 100, "test_subset": 100})])
def test_every_epoch_visits_every_example_once(name, params):
    ctx = Context(0, torch.device("cpu"), torch.Generator().manual_seed(0), batch_size=30)
    problem = PROBLEMS.get(name).factory(ctx, **params)
    assert problem.steps_per_epoch == 4
    generator = torch.Generator().manual_seed(0)
    epochs = []
    for _ in range(3):
        batches = [problem.sample_batch(generator) for _ in range(problem.steps_per_epoch)]
        assert [len(b) for b in batches] == [30, 30, 30, 10]
        order = torch.cat(batches)
        assert sorted(order.tolist()) == list(range(100))      # each example exactly once
        epochs.append(order)
    assert not torch.equal(epochs[0], epochs[1])                # a new permutation each epoch
