"""Batch size and the geometry of minima: checkpoints, lr scaling, measures taken at the end,
refusals at validation, and landscapes computed from stored weights (real runs, real files)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

from bench.cell import Cell
from bench.landscape import filter_normalised
from bench.measures import load_state
from bench.results import ArtifactError, load_artifact
from bench.train import build_problem, run_cell

NET = "{name: mlp, data: mnist, hidden: [8], subset: 256, test_subset: 128}"


def results(out: Path) -> dict:
    return {r["id"]: r for r in (json.loads(p.read_text()) for p in out.glob("cells/*.json"))}


def by_batch(out: Path) -> dict:
    return {r["cell"]["batch_size"]: r for r in results(out).values()}


def errors(cli, capsys, spec) -> list[str]:
    assert cli("validate", spec) == 2
    return capsys.readouterr().err.strip().splitlines()[:-1]


# ---- checkpoints -----------------------------------------------------------------------------
CHECKPOINTED = f"""
name: ck
seeds: [0]
experiments:
  e:
    problem: {NET}
    optimizer: {{name: sgd, lr: 0.1}}
    batch_size: 64
    measures: [{{name: checkpoint, best: test_accuracy}}]
    budget: {{steps: 12, eval_every: 3}}
"""


@pytest.fixture
def checkpointed(write_spec, cli, tmp_path):
    out = tmp_path / "out"
    assert cli("run", write_spec(CHECKPOINTED), "--out", out, "--workers", "1",
               "--no-report") == 0
    (result,) = results(out).values()
    return out, result


def test_a_checkpoint_holds_the_weights_the_run_ended_with(checkpointed):
    out, result = checkpointed
    path = out / "cells" / f"{result['id']}.checkpoint.pt"
    states = load_artifact(path)
    assert sorted(states) == ["best", "final", "initial"]
    assert not torch.equal(states["initial"]["1.weight"], states["final"]["1.weight"])
    # the final weights, put into the cell's problem built afresh, give its final metrics
    cell = Cell.from_dict(result["cell"])
    problem, _, _ = build_problem(cell, torch.device("cpu"))
    load_state(problem, states["final"])
    last = result["history"][-1]
    assert problem.evaluate()["train_loss"] == pytest.approx(last["train_loss"], rel=1e-6)
    # the best weights are those of the evaluation with the highest test accuracy
    best = result["summary"]["measures"]["checkpoint"]["best"]
    accuracies = [h["test_accuracy"] for h in result["history"]]
    assert best["value"] == max(accuracies)
    assert best["step"] == result["history"][accuracies.index(max(accuracies))]["step"]
    load_state(problem, states["best"])
    assert problem.evaluate()["test_accuracy"] == best["value"]
    assert not list((out / "cells").glob(".*tmp"))   # written atomically: nothing left over


class Payload:
    def __reduce__(self):   # unpickling would call os.system: what weights_only refuses
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("tamper", [lambda s: s | {"hook": os.system},
                                    lambda s: s | {"payload": Payload()}])
def test_a_tampered_checkpoint_is_refused(checkpointed, tamper):
    out, result = checkpointed
    path = out / "cells" / f"{result['id']}.checkpoint.pt"
    torch.save(tamper(load_artifact(path)), path)
    with pytest.raises(ArtifactError, match="refused"):
        load_artifact(path)


def test_landscapes_refuse_a_tampered_checkpoint(write_spec, cli, tmp_path, capsys):
    spec = write_spec(CHECKPOINTED.replace("    budget:", "    landscapes: [interpolation]\n"
                                           "    budget:"))
    out = tmp_path / "out"
    assert cli("run", spec, "--out", out, "--workers", "1", "--no-report") == 0
    (path,) = (out / "cells").glob("*.checkpoint.pt")
    torch.save(load_artifact(path) | {"hook": os.system}, path)
    assert cli("landscape", out, "--rerun") == 1
    assert "refused" in capsys.readouterr().err


# ---- measures taken at the end ---------------------------------------------------------------
def cell(measures, lr=0.1, steps=4):
    return Cell.build("t", {"steps": steps, "eval_every": 2}, measures,
                      problem={"name": "quadratic", "params": {"dim": 4, "kappa": 10.0}},
                      optimizer={"name": "sgd", "params": {"lr": lr}}, seed=0)


def test_a_measure_at_the_end_is_in_the_last_entry_and_the_summary_only():
    from bench.results import summarize
    out = run_cell(cell(["eps_sharpness", {"name": "sharpness", "params": {"at": "end"}}]))
    assert out.status == "ok"
    assert [("eps_sharpness" in h, "sharpness" in h) for h in out.history] == \
        [(False, False), (False, False), (True, True)]
    summary = summarize(out)
    assert summary["final_eps_sharpness"] == out.history[-1]["eps_sharpness"] > 0
    assert "best_eps_sharpness" not in summary and "best_sharpness" not in summary
    assert "best_train_loss" in summary   # metrics keep their best


def test_a_diverged_run_gets_no_measure_at_the_end():
    out = run_cell(cell(["eps_sharpness"], lr=1e6, steps=20))
    assert out.status == "diverged"
    assert not any("eps_sharpness" in h for h in out.history)


# ---- lr scaling ------------------------------------------------------------------------------
def scaled(rule: str) -> str:
    return f"""
    name: lr
    seeds: [0]
    experiments:
      e:
        problem: {NET}
        optimizer: {{name: sgd, lr: 0.1}}
        batch_size: [16, 64, null]
        lr_scaling: {{rule: {rule}, base_batch_size: 16}}
        budget: {{steps: 2, eval_every: 1}}
    """


@pytest.mark.parametrize("rule, factor", [("linear", lambda r: r), ("sqrt", math.sqrt),
                                          ("none", lambda r: 1.0)])
def test_lr_scaling_multiplies_the_lr_by_the_batch_ratio(write_spec, cli, tmp_path, rule,
                                                         factor):
    out = tmp_path / "out"
    assert cli("run", write_spec(scaled(rule)), "--out", out, "--workers", "1",
               "--no-report") == 0
    runs = by_batch(out)
    for batch, examples in ((16, 16), (64, 64), (None, 256)):   # null: the 256 images
        lrs = [h["lr"] for h in runs[batch]["history"]]
        assert lrs == pytest.approx([0.1 * factor(examples / 16)] * 3, rel=1e-12), batch
    assert ("lr_scaling" in runs[16]["cell"]) == (rule != "none")


SCALING_ERRORS = [
    ("{rule: cubic, base_batch_size: 16}", "allowed: none, linear, sqrt"),
    ("{rule: linear}", "needs 'base_batch_size'"),
    ("{rule: sqrt, base_batch_size: 0}", "needs 'base_batch_size'"),
]


@pytest.mark.parametrize("value, message", SCALING_ERRORS)
def test_bad_lr_scaling_is_a_validation_error_at_its_line(write_spec, cli, capsys, value,
                                                          message):
    spec = write_spec(scaled("linear").replace("{rule: linear, base_batch_size: 16}", value))
    (line,) = errors(cli, capsys, spec)
    assert f"{spec}:8:" in line and message in line


def test_lr_scaling_of_an_optimizer_without_a_learning_rate_is_an_error(write_spec, cli,
                                                                       capsys):
    spec = write_spec(scaled("linear").replace("optimizer: {name: sgd, lr: 0.1}",
                                               "optimizer: [{name: sgd, lr: 0.1}, newton_cg]"))
    (line,) = errors(cli, capsys, spec)
    assert f"{spec}:6:" in line and "optimizer 'newton_cg' has no learning rate" in line


# ---- refused at validation -------------------------------------------------------------------
def test_a_curvature_measure_on_too_large_a_model_is_a_validation_error(write_spec, cli,
                                                                       capsys):
    spec = write_spec(f"""
    name: big
    seeds: [0]
    experiments:
      e:
        problem: [{NET}, {{name: quadratic, dim: 4}}]
        optimizer: sgd
        measures:
          - hessian_trace
          - {{name: sharpness, max_params: 1000}}
        budget: {{steps: 2}}
    """)
    (line,) = errors(cli, capsys, spec)   # the small quadratic does not excuse the network
    assert f"{spec}:9:" in line and "6,370 parameters, above max_params=1,000" in line


def test_checkpoint_best_must_be_a_metric_of_the_problem(write_spec, cli, capsys):
    spec = write_spec(CHECKPOINTED.replace("best: test_accuracy", "best: test_acc"))
    (line,) = errors(cli, capsys, spec)
    assert f"{spec}:8:" in line and "allowed: train_loss, train_accuracy" in line


# ---- landscapes ------------------------------------------------------------------------------
LANDSCAPE = f"""
name: land
seeds: [0]
experiments:
  e:
    problem: {NET}
    optimizer: {{name: sgd, lr: 0.1}}
    batch_size: [32, 256]
    measures: [checkpoint]
    landscapes:
      - {{name: interpolation, between: {{batch_size: [32, 256]}}, points: 4}}
      - {{name: interpolation, points: 4, at: {{batch_size: 32}}}}
      - {{name: contour, resolution: 3, samples: 256, at: {{batch_size: 256}}}}
    budget: {{steps: 6, eval_every: 3}}
"""


@pytest.mark.parametrize("old, new, line, message", [
    ("between: {batch_size: [32, 256]}", "between: {optimizer: [sgd, adam]}", 10,
     "differ only in batch size"),
    ("between: {batch_size: [32, 256]}", "between: {batch_size: [32, 256], seed: [0, 1]}", 10,
     "differ only in batch size"),
    ("between: {batch_size: [32, 256]}", "between: {batch_size: [32, 64]}", 10,
     "no cell of experiment 'e' has batch_size 64; its batch sizes: 32, 256"),
    ("measures: [checkpoint]", "measures: []", 9, "add checkpoint"),
    ("at: {batch_size: 256}", "at: {batch_size: 128}", 12, "selects no cell"),
    ("at: {batch_size: 256}", "at: {optimizer: sgd}", 12, "axes: batch_size, seed"),
    ("name: contour, resolution: 3", "name: contour, resolution: 4", 12, "odd"),
])
def test_landscape_errors_name_their_line(write_spec, cli, capsys, old, new, line, message):
    spec = write_spec(LANDSCAPE.replace(old, new))
    found = [e for e in errors(cli, capsys, spec) if message in e]
    assert found and all(f"{spec}:{line}:" in e for e in found), found


def test_a_contour_needs_a_network(write_spec, cli, capsys):
    spec = write_spec("""
    name: land
    seeds: [0]
    experiments:
      e:
        problem: {name: quadratic, dim: 4}
        optimizer: sgd
        measures: [checkpoint]
        landscapes: [interpolation, contour]
        budget: {steps: 2}
    """)
    (line,) = errors(cli, capsys, spec)
    assert f"{spec}:8:" in line and "a contour needs a network problem" in line


def test_landscapes_are_computed_from_the_checkpoints(write_spec, cli, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli("run", write_spec(LANDSCAPE), "--out", out, "--workers", "1") == 0
    runs = by_batch(out)
    stored = {p.name.split("-")[0] + str(len(json.loads(p.read_text())["ids"])):
              json.loads(p.read_text()) for p in (out / "landscapes" / "e").glob("*.json")}
    assert sorted(stored) == ["contour1", "interpolation1", "interpolation2"]

    between = stored["interpolation2"]    # α = 0 is batch 32's end, α = 1 batch 256's
    assert between["alphas"] == [-1.0, 0.0, 1.0, 2.0]
    for alpha_index, batch in ((1, 32), (2, 256)):
        final = runs[batch]["history"][-1]
        for metric in ("train_loss", "test_accuracy"):
            assert between["metrics"][metric][alpha_index] == pytest.approx(final[metric],
                                                                           rel=1e-6)
    start = stored["interpolation1"]      # from batch 32's initial to its final weights
    assert start["metrics"]["train_loss"][1] == pytest.approx(
        runs[32]["history"][0]["train_loss"], rel=1e-6)
    assert start["metrics"]["train_loss"][2] == pytest.approx(
        runs[32]["history"][-1]["train_loss"], rel=1e-6)
    contour = stored["contour1"]          # 256 samples: the whole training subset
    assert contour["a"] == [-1.0, 0.0, 1.0] and len(contour["train_loss"]) == 3
    assert contour["center_loss"] == pytest.approx(runs[256]["history"][-1]["train_loss"],
                                                   rel=1e-5)
    assert sorted(p.name for p in (out / "figures").glob("*contour*"))   # the report drew it

    capsys.readouterr()
    assert cli("landscape", out) == 0
    assert "0 landscape(s) computed, 3 already stored" in capsys.readouterr().err
    assert cli("landscape", out, "--rerun") == 0
    assert "3 landscape(s) computed, 0 already stored" in capsys.readouterr().err


def test_filter_normalised_directions_match_each_filter_of_the_weights():
    generator = torch.Generator().manual_seed(0)
    state = {"w": torch.randn(5, 3, 2, 2), "b": torch.randn(5), "n": torch.tensor(7)}
    d = filter_normalised(state, {"w", "b"}, generator)
    assert sorted(d) == ["b", "w"]   # an integer buffer gets no direction
    assert torch.allclose(d["w"].flatten(1).norm(dim=1), state["w"].flatten(1).norm(dim=1))
    assert torch.equal(d["b"], torch.zeros(5))   # biases do not move
    x = torch.randn(6, generator=generator)   # a problem's one parameter vector
    (vector,) = filter_normalised({"x": x}, {"x"}, generator).values()
    assert float(vector.norm()) == pytest.approx(float(x.norm()), rel=1e-6)
