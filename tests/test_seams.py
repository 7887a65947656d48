"""The seams later work stands on (issue 7): the report without torch, the Store's cheap
statuses, regularizer hooks, measures with parameters and an evaluation hook, figures as a
registry, one suitability rule, and divergence checked without a sync on every step."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch

from bench.cell import Cell, cell_id
from bench.measures import MEASURES, Measure
from bench.registry import Entry
from bench.regularizers import REGULARIZERS, Regularizer
from bench.results import Store
from bench.train import _Run, run_cell

SPEC = """
name: t
seeds: [0, 1]
defaults: {budget: {steps: 30, eval_every: 10}}
experiments:
  paths:
    problem: {name: quadratic, dim: 2, kappa: 10}
    optimizer: [{name: sgd, lr: 0.5}, {name: momentum, lr: 0.1}]
    measures: [trajectory]
"""

BLOCK_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this process")
sys.meta_path.insert(0, Block())
from bench.cli import main
code = main(sys.argv[1:])
assert "torch" not in sys.modules
sys.exit(code)
"""


def quad_cell(steps=20, regularizer="none", measures=(), optimizer=None, **budget):
    return Cell.build("t", {"steps": steps, "eval_every": 5, **budget}, measures,
                      problem={"name": "quadratic", "params": {
                          "eigenvalues": [1.0, 0.1], "rotate": False, "x0": [1.0, -2.0],
                          "dtype": "float64"}},
                      optimizer=optimizer or {"name": "sgd", "params": {"lr": 0.1}},
                      regularizer=regularizer, seed=0)


# ---- the report reads results only -------------------------------------------------------
def test_report_runs_where_torch_cannot_be_imported(write_spec, cli, tmp_path):
    assert cli("run", write_spec(SPEC), "--workers", "1", "--no-report") == 0
    root = tmp_path / "results" / "t"
    proc = subprocess.run([sys.executable, "-c", BLOCK_TORCH, "report", str(root)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = (root / "report.md").read_text()
    assert "![trajectories](figures/paths-trajectories.png)" in report
    assert (root / "figures" / "paths-trajectories.png").stat().st_size > 10_000
    # names come from the defaults stored in each result, as with torch
    assert "sgd(lr=0.5)" in report and "momentum(lr=0.1)" in report


# ---- the Store -----------------------------------------------------------------------------
def test_statuses_come_from_the_log_and_file_heads_without_parsing_results(tmp_path):
    store = Store(tmp_path)
    store.cells.mkdir(parents=True)
    # a file the log lists: its content is never read (this one is not even JSON)
    store.path("aaa").write_text("not json at all")
    (tmp_path / "log.jsonl").write_text(json.dumps({"id": "aaa", "status": "ok"}) + "\n"
                                        + "torn line {\n")
    # a file the log does not list: its first bytes name the status, the rest is cut off
    store.path("bbb").write_text('{"schema": 1, "id": "bbb", "status": "timeout", "history": [')
    # listed in the log, but the file is gone: not stored
    with open(tmp_path / "log.jsonl", "a") as fh:
        fh.write(json.dumps({"id": "ccc", "status": "ok"}) + "\n")
    assert store.statuses() == {"aaa": "ok", "bbb": "timeout"}


def test_spec_and_plan_belong_to_the_store(tmp_path):
    store = Store(tmp_path)
    store.write_spec({"name": "t", "experiments": {"e": {"about": "why"}}})
    assert store.abouts() == {"e": "why"}
    store.write_plan(["a", "b"], merge=False)
    store.write_plan(["b", "c"], merge=True)
    assert store.read_plan() == ["a", "b", "c"]
    store.write_plan(["c"], merge=False)
    assert store.read_plan() == ["c"]


# ---- regularizer hooks -----------------------------------------------------------------------
@dataclass(frozen=True)
class Projected(Regularizer):
    """Every hook at work: x on the ball of radius c after each step; stop after 2 evaluations."""
    c: float = 0.5

    def after_step(self, problem):
        with torch.no_grad():
            norm = problem.x.norm()
            if norm > self.c:
                problem.x.mul_(self.c / norm)

    def should_stop(self, history):
        return len(history) >= 3


@dataclass(frozen=True)
class ZeroInputs(Regularizer):
    def on_batch(self, inputs, targets, generator):
        return torch.zeros_like(inputs), targets


def test_regularizer_hooks_act_on_the_one_loop(monkeypatch):
    monkeypatch.setitem(REGULARIZERS._entries, "projected", Entry("projected", Projected))
    out = run_cell(quad_cell(steps=100, regularizer={"name": "projected", "params": {"c": 0.5}},
                             measures=("trajectory",)))
    assert out.status == "ok", out.error
    points = torch.tensor(out.measures["trajectory"]["points"])
    assert points[0].norm() > 2 and (points[1:].norm(dim=1) <= 0.5 + 1e-12).all()
    assert [h["step"] for h in out.history] == [0, 5, 10] and out.steps == 10   # stopped


def test_batch_hook_changes_what_the_loss_sees(monkeypatch):
    monkeypatch.setitem(REGULARIZERS._entries, "zero_inputs", Entry("zero_inputs", ZeroInputs))
    cell = Cell.build("t", {"steps": 5, "eval_every": 5},
                      problem={"name": "logistic", "params": {"samples": 100, "features": 3}},
                      optimizer={"name": "sgd", "params": {"lr": 1.0}},
                      regularizer="zero_inputs", seed=0)
    out = run_cell(cell)
    assert out.status == "ok", out.error
    # with every input zero the logits are 0 whatever w is: no gradient, w never moves
    assert out.history[0]["train_loss"] == out.history[-1]["train_loss"]
    moved = run_cell(Cell.build("t", cell.budget, problem=cell.problem,
                                optimizer=cell.optimizer, seed=0))
    assert moved.history[-1]["train_loss"] < moved.history[0]["train_loss"]


# ---- measures: parameters, evaluation hook, own counts ----------------------------------------
@dataclass
class LossProbe(Measure):
    """The loss and its gradient at every evaluation, counted apart from training."""
    scale: float = 1.0

    def at_evaluation(self, probe):
        objective = probe.objective(probe.batch)
        loss = objective()
        return {"probe_loss": self.scale * float(loss),
                "probe_gradients": probe.counts["gradient"]}


def test_measure_records_at_evaluations_without_counting_as_training(monkeypatch):
    monkeypatch.setitem(MEASURES._entries, "loss_probe", Entry("loss_probe", LossProbe))
    plain = run_cell(quad_cell())
    probed = run_cell(quad_cell(measures=({"name": "loss_probe", "params": {"scale": 2.0}},)))
    assert probed.status == "ok", probed.error
    for a, b in zip(plain.history, probed.history):
        assert b["probe_loss"] == pytest.approx(2 * a["train_loss"], rel=1e-12)
        assert b["gradient_evals"] == a["gradient_evals"] == a["step"]   # SGD: one per step
    assert [h["probe_gradients"] for h in probed.history] == [1, 1, 1, 1, 1]   # fresh counts


def test_measure_parameters_in_a_spec(write_spec, cli, tmp_path, capsys):
    base = SPEC.replace("seeds: [0, 1]", "seeds: [0]").replace(
        "[{name: sgd, lr: 0.5}, {name: momentum, lr: 0.1}]", "{name: sgd, lr: 0.5}")
    ids = {}
    for spelling in ("[trajectory]", "[{name: trajectory}]", "[{name: trajectory, max_points: 500}]",
                     "[{name: trajectory, max_points: 3}]"):
        spec = write_spec(base.replace("[trajectory]", spelling))
        assert cli("run", spec, "--out", tmp_path / spelling, "--workers", "1", "--no-report") == 0
        (result,) = Store(tmp_path / spelling).load_all()
        ids[spelling] = result["id"]
        points = result["summary"]["measures"]["trajectory"]["points"]
        assert len(points) == (3 if "3" in spelling else 31)
    assert len(set(ids.values())) == 2   # defaults spelled out are the bare name's cell
    bad = write_spec(base.replace("[trajectory]", "[{name: trajectory, max_points: 1}]"))
    assert cli("validate", bad) == 2
    assert "spec.yaml:8:" in capsys.readouterr().err
    twice = write_spec(base.replace("[trajectory]", "[trajectory, {name: trajectory}]"))
    assert cli("validate", twice) == 2
    assert "measure 'trajectory' is listed twice" in capsys.readouterr().err


def test_cells_hash_bare_measures_as_before():
    cell = quad_cell(measures=("trajectory",)).to_dict()
    assert cell_id(cell) == cell_id(dict(cell, measures=["trajectory"]))
    assert cell_id(cell) != cell_id(dict(cell, measures=[{"name": "trajectory",
                                                          "params": {"max_points": 3}}]))


# ---- figures as a registry --------------------------------------------------------------------
def test_a_registered_figure_is_drawn_into_the_report(write_spec, cli, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from bench.report import figures

    def steps_histogram(name, runs):
        fig = Figure()
        fig.add_subplot().hist([r["summary"]["steps"] for r in runs])
        yield "steps histogram", fig
    monkeypatch.setattr(figures, "FIGURES", list(figures.FIGURES))
    figures.figure("steps histogram", applies=lambda runs: True)(steps_histogram)
    assert cli("run", write_spec(SPEC), "--workers", "1") == 0
    root = tmp_path / "results" / "t"
    assert "figures/paths-steps-histogram.png" in (root / "report.md").read_text()
    assert (root / "figures" / "paths-steps-histogram.png").exists()


# ---- one suitability rule -------------------------------------------------------------------
GOOD = """
name: t
seeds: [0]
experiments:
  e:
    problem: {name: quadratic, dim: 6000}
    optimizer: [{name: sgd, lr: 0.1}, newton]
    init: [default, he_normal]
    budget: {steps: 5}
"""


def test_every_kind_answers_unsuitable_at_its_own_line(write_spec, cli, capsys):
    assert cli("validate", write_spec(GOOD)) == 2
    err = capsys.readouterr().err
    assert "spec.yaml:6:" in err and "optimizer 'newton' on problem 'quadratic'" in err
    assert "6,000 parameters" in err and "max_params=5,000" in err
    assert "spec.yaml:7:" in err and "init 'he_normal' on problem 'quadratic'" in err
    assert "no layers to initialise" in err
    assert "2 problem(s)" in err
    assert "sgd" not in err and "'default'" in err   # the suitable choices pass


def test_a_rule_given_at_registration_is_asked(monkeypatch, write_spec, cli, capsys):
    from bench.schedules import SCHEDULES
    entry = SCHEDULES.get("cosine")
    monkeypatch.setitem(SCHEDULES._entries, "cosine", Entry(
        "cosine", entry.factory, rule=lambda problem, **p: f"not on {problem.dim}-D problems"))
    spec = write_spec(GOOD.replace("dim: 6000", "dim: 2").replace(", newton", "")
                      .replace("[default, he_normal]", "default") + "    schedule: cosine\n")
    assert cli("validate", spec) == 2
    assert "schedule 'cosine' on problem 'quadratic': not on 2-D problems" in capsys.readouterr().err


# ---- divergence without a sync per step ------------------------------------------------------
def test_deferred_loss_checks_find_the_same_divergence():
    cell = quad_cell(steps=200, optimizer={"name": "sgd", "params": {"lr": 2.5}})  # > 2/L
    every_step = run_cell(cell)
    run = _Run(cell, torch.device("cpu"))
    run.sync_every = 7   # as on a GPU: losses are read in batches
    deferred = run.train()
    assert every_step.status == deferred.status == "diverged"
    assert deferred.diverged_at == every_step.diverged_at
    assert deferred.history == [dict(h, seconds=d["seconds"])
                                for h, d in zip(every_step.history, deferred.history)]
