"""Predictions stored beside results, and the seed and snapshot ensembles built from them."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bench.report import ensembles
from bench.schedules import SCHEDULES

SPEC = """
name: ens
seeds: [0, 1, 2]
experiments:
  seeds:
    problem: {name: mlp, data: mnist, hidden: [16], subset: 256}
    optimizer: {name: sgd, lr: 0.1}
    batch_size: 64
    measures: [predictions]
    budget: {steps: 12, eval_every: 6}
  snapshots:
    problem: {name: mlp, data: mnist, hidden: [16], subset: 256}
    optimizer: {name: sgd, lr: 0.1}
    schedule: {name: sgdr, period: 4}
    batch_size: 64
    seed: [0]
    measures: [{name: predictions, snapshots: true}]
    budget: {steps: 12, eval_every: 6}
"""


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    from bench.cli import main
    root = tmp_path_factory.mktemp("ens")
    (root / "spec.yaml").write_text(SPEC)
    assert main(["run", str(root / "spec.yaml"), "--out", str(root / "out"),
                 "--workers", "1"]) == 0
    out = root / "out"
    results = [json.loads(p.read_text()) for p in sorted(out.glob("cells/*.json"))]
    return out, results


def test_the_seed_ensemble_is_the_argmax_of_the_averaged_probabilities(stored):
    out, results = stored
    runs = [r for r in results if r["cell"]["experiment"] == "seeds"]
    files = [np.load(out / "cells" / f"{r['id']}.predictions.npz") for r in runs]
    labels = files[0]["labels"]
    assert files[0]["final"].dtype == np.float16 and files[0]["final"].shape == (10_000, 10)
    by_hand = (np.mean([f["final"].astype(np.float64) for f in files], 0).argmax(1)
               == labels).mean()
    singles = [(f["final"].argmax(1) == labels).mean() for f in files]
    (row,) = ensembles.seed_rows(out, runs)
    assert row["seeds"] == 3 and row["seed ensemble"] == pytest.approx(by_hand, abs=0)
    assert row["single (median)"] == pytest.approx(np.median(singles), abs=0)
    # float16 probabilities keep each model's own decisions: its recorded test accuracy
    for r, single in zip(runs, singles):
        assert single == pytest.approx(r["history"][-1]["test_accuracy"], abs=2e-4)
    assert "### Ensembles" in (out / "report.md").read_text()


def test_a_snapshot_ensemble_keeps_the_end_of_every_cycle(stored):
    out, results = stored
    (run,) = [r for r in results if r["cell"]["experiment"] == "snapshots"]
    assert run["summary"]["measures"]["predictions"]["snapshots"] == [4, 8, 12]
    data = np.load(out / "cells" / f"{run['id']}.predictions.npz")
    # the last cycle ends with the run: its snapshot is the final model
    assert np.array_equal(data["snapshot_12"], data["final"])
    (row,) = ensembles.snapshot_rows(out, [run])
    mean = np.mean([data[f"snapshot_{s}"].astype(np.float64) for s in (4, 8, 12)], 0)
    assert row["snapshot ensemble"] == (mean.argmax(1) == data["labels"]).mean()


@pytest.mark.parametrize("choice, ends", [
    ({"name": "sgdr", "period": 3}, [3, 6, 9]),
    ({"name": "sgdr", "period": 2, "mult": 2.0}, [2, 6]),
    ({"name": "sgdr", "period": 3, "warmup": 2}, [5, 8]),
    ({"name": "cyclic", "period": 4}, [4, 8]),
    ({"name": "cosine"}, []),
])
def test_cycle_ends_of_restarting_schedules(choice, ends):
    params = {k: v for k, v in choice.items() if k != "name"}
    schedule = SCHEDULES.get(choice["name"]).factory(**params)
    assert [s for s in range(1, 10) if schedule.cycle_ended(s, 10)] == ends


def test_predictions_refuse_a_problem_without_a_test_set(write_spec, cli, capsys):
    spec = write_spec("""
    name: p
    seeds: [0]
    experiments:
      e:
        problem: {name: quadratic, dim: 2}
        optimizer: sgd
        measures: [predictions]
        budget: {steps: 2}
    """)
    assert cli("validate", spec) == 2
    assert f"{spec}:7:" in capsys.readouterr().err
