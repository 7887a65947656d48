"""The geometry of minima, end to end on real runs and real files: checkpoints (their weights,
their best step, refusal of tampered files, atomic writes), measures taken at the end, lr
scaling with the batch size, refusals and landscape declarations at validation (each at its
line), and landscapes computed from stored checkpoints against the cells' own metrics."""
from __future__ import annotations

import json
import math
import os
import pickle
import re
import shutil
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bench.cell import Cell
from bench.cli import main
from bench.execute import process_settings
from bench.landscape import filter_normalised
from bench.measures import evaluation_batch, load_state, state_of
from bench.results import ArtifactError, Store, load_artifact, make_result, summarize
from bench.train import _Run, build_problem, run_cell

NET = "{name: mlp, data: mnist, hidden: [8], subset: 256, test_subset: 128}"
NET_PARAMS = 784 * 8 + 8 + 8 * 10 + 10   # 6,370


# ---- helpers -----------------------------------------------------------------------------------
def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def line_of(spec: Path, snippet: str) -> int:
    """The 1-based line of the spec file where `snippet` first occurs."""
    for number, line in enumerate(spec.read_text().splitlines(), 1):
        if snippet in line:
            return number
    raise AssertionError(f"{snippet!r} not in {spec}")


def located_errors(cli, capsys, spec: Path) -> list[tuple[int, str]]:
    """`bench validate` exits 2 and prints only `spec:line:col: message` lines and a count."""
    assert cli("validate", spec) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-1] == f"bench: {len(lines) - 1} problem(s) in {spec}; nothing was run", err
    out = []
    for line in lines[:-1]:
        found = re.fullmatch(rf"{re.escape(str(spec))}:(\d+):(\d+): (.*)", line)
        assert found, line
        out.append((int(found[1]), found[3]))
    return out


def stored(out: Path) -> dict[str, dict]:
    return {r["id"]: r for r in (json.loads(p.read_text()) for p in out.glob("cells/*.json"))}


def by_batch(out: Path) -> dict:
    return {r["cell"]["batch_size"]: r for r in stored(out).values()}


def landscapes(out: Path) -> dict[Path, dict]:
    return {p: json.loads(p.read_text()) for p in sorted((out / "landscapes").glob("*/*.json"))}


def evaluated(result: dict, state: dict) -> dict:
    """The metrics of `state` in the result's problem, built afresh from its cell."""
    problem, _, _ = build_problem(Cell.from_dict(result["cell"]), torch.device("cpu"))
    load_state(problem, state)
    return problem.evaluate()


# ---- one real run shared by the checkpoint, at-end and landscape tests ------------------------
GEO = f"""
name: geo
seeds: [0]
experiments:
  e:
    problem: {NET}
    optimizer: {{name: sgd, lr: 0.2}}
    batch_size: [32, 256]
    measures:
      - {{name: checkpoint, best: test_accuracy}}
      - {{name: eps_sharpness, samples: 256, max_iter: 3}}
    landscapes:
      - {{name: interpolation, between: {{batch_size: [32, 256]}}, points: 7}}
      - {{name: interpolation, points: 4, at: {{batch_size: 256}}}}
      - {{name: contour, resolution: 3, span: 0.5, samples: 256, at: {{batch_size: 32}}}}
      - {{name: contour, resolution: 3, span: 0.5, samples: 100, at: {{batch_size: 256}}}}
    budget: {{steps: 8, eval_every: 2}}
"""


@pytest.fixture(scope="module")
def geo(tmp_path_factory) -> Path:
    """`bench run` of GEO (two cells, four landscapes); the results folder."""
    root = tmp_path_factory.mktemp("geo")
    spec = write(root / "geo.yaml", GEO)
    out = root / "out"
    assert main(["run", str(spec), "--out", str(out), "--workers", "1", "--no-report"]) == 0
    return out


def checkpoint_of(out: Path, result: dict) -> Path:
    return out / "cells" / f"{result['id']}.checkpoint.pt"


# ---- checkpoints -------------------------------------------------------------------------------
def test_a_checkpoint_holds_the_initial_and_final_weights_of_the_run(geo):
    for batch, result in by_batch(geo).items():
        states = load_artifact(checkpoint_of(geo, result))
        assert sorted(states) == ["best", "final", "initial"], batch
        assert result["summary"]["measures"]["checkpoint"]["saved"] == ["best", "final", "initial"]
        # the initial weights are the cell's problem as built from its seed, bit for bit
        problem, _, _ = build_problem(Cell.from_dict(result["cell"]), torch.device("cpu"))
        fresh = state_of(problem)
        assert sorted(fresh) == sorted(states["initial"])
        assert all(torch.equal(fresh[k], states["initial"][k]) for k in fresh)
        assert any(not torch.equal(states["initial"][k], states["final"][k]) for k in fresh)
        # the final weights (taken after eps_sharpness ran at the end: it puts them back)
        # give the metrics of the last evaluation; the initial ones those of the first
        first, last = result["history"][0], result["history"][-1]
        final = evaluated(result, states["final"])
        for metric in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
            assert final[metric] == pytest.approx(last[metric], rel=1e-6, abs=1e-9), metric
        assert evaluated(result, states["initial"])["train_loss"] == pytest.approx(
            first["train_loss"], rel=1e-6)


def test_the_best_checkpoint_is_the_first_evaluation_of_highest_test_accuracy(geo):
    for result in by_batch(geo).values():
        history = result["history"]
        accuracies = [h["test_accuracy"] for h in history]
        best = result["summary"]["measures"]["checkpoint"]["best"]
        top = max(accuracies)
        assert best == {"metric": "test_accuracy", "value": top,
                        "step": history[accuracies.index(top)]["step"]}
        states = load_artifact(checkpoint_of(geo, result))
        assert evaluated(result, states["best"])["test_accuracy"] == top


def test_the_final_checkpoint_is_bit_for_bit_the_weights_a_rerun_ends_with(geo):
    result = by_batch(geo)[32]
    cell = Cell.from_dict(result["cell"])
    assert cell.id == result["id"]
    with process_settings(threads=1), torch.random.fork_rng(devices=[]):
        torch.manual_seed(cell.seed)   # as run_cell does
        run = _Run(cell, torch.device("cpu"))
        try:
            outcome = run.train()
        finally:
            run.close()
    assert [h["train_loss"] for h in outcome.history] == \
        [h["train_loss"] for h in result["history"]]
    final, saved = state_of(run.problem), load_artifact(checkpoint_of(geo, result))["final"]
    assert sorted(final) == sorted(saved)
    assert all(torch.equal(final[k], saved[k]) for k in final)


class Payload:
    """Unpickling it would create `marker`: what a weights-only load must never do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


class Opaque:
    """A plain object of a class of this module (pickled by reference to the class)."""

    def __init__(self):
        self.weights = torch.zeros(2)


TAMPERINGS = {
    "a callable beside the weights": lambda s, m: s | {"hook": os.system},
    "an instance of a test class": lambda s, m: s | {"extra": Opaque()},
    "a payload that opens a file": lambda s, m: s | {"payload": Payload(m)},
    "a payload inside a state dict": lambda s, m: s | {"final": s["final"] | {"x": Payload(m)}},
}


@pytest.mark.parametrize("how", sorted(TAMPERINGS))
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-format"])
def test_a_tampered_checkpoint_is_refused_and_runs_nothing(geo, tmp_path, how, legacy):
    result = next(iter(stored(geo).values()))
    path = tmp_path / "tampered.checkpoint.pt"
    shutil.copyfile(checkpoint_of(geo, result), path)
    intact = load_artifact(path)   # the copy of the real checkpoint loads
    assert sorted(intact) == ["best", "final", "initial"]
    marker = tmp_path / "pwned"
    torch.save(TAMPERINGS[how](intact, marker), path,
               _use_new_zipfile_serialization=not legacy)
    with pytest.raises(ArtifactError, match="refused"):
        load_artifact(path)
    assert not marker.exists(), "loading ran the payload"


def test_a_plain_pickle_with_a_payload_is_refused(tmp_path):
    path, marker = tmp_path / "x.checkpoint.pt", tmp_path / "pwned"
    path.write_bytes(pickle.dumps({"final": Payload(marker)}, protocol=2))
    with pytest.raises(ArtifactError, match="refused"):
        load_artifact(path)
    assert not marker.exists()


@pytest.mark.parametrize("garbage", [b"hello world", b"\x80\x02}q\x00(X\x01"],
                         ids=["text", "truncated-pickle"])
def test_a_file_that_is_not_a_checkpoint_is_an_artifact_error(tmp_path, garbage):
    path = tmp_path / "x.checkpoint.pt"
    path.write_bytes(garbage)
    with pytest.raises(ArtifactError):
        load_artifact(path)


def test_bench_landscape_reports_an_unreadable_checkpoint_cleanly(geo, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(geo, copy)
    (path, *_) = sorted((copy / "cells").glob("*.checkpoint.pt"))
    path.write_text("hello world")
    capsys.readouterr()
    assert main(["landscape", str(copy), "--rerun"]) == 1
    assert "cannot be read" in capsys.readouterr().err


def test_checkpoints_are_written_before_their_results_and_atomically(geo):
    cells = geo / "cells"
    results = sorted(cells.glob("*.json"))
    assert len(results) == 2
    for path in results:
        checkpoint = path.with_suffix(".checkpoint.pt")
        assert checkpoint.is_file()
        assert checkpoint.stat().st_mtime_ns <= path.stat().st_mtime_ns
    assert not [p.name for p in cells.iterdir() if p.name.endswith(".tmp")]
    logged = [json.loads(ln)["id"] for ln in (geo / "log.jsonl").read_text().splitlines()]
    assert sorted(logged) == sorted(p.stem for p in results)


def test_a_result_is_never_stored_without_its_checkpoint(tmp_path):
    cell = Cell.build("t", {"steps": 3}, ("checkpoint",),
                      problem={"name": "quadratic", "params": {"dim": 4}},
                      optimizer={"name": "sgd", "params": {"lr": 0.1}}, seed=0)
    result = make_result(cell, run_cell(cell), {})
    store = Store(tmp_path / "r")
    blocker = store.artifact_path(cell.id, "checkpoint")
    blocker.mkdir(parents=True)   # the checkpoint cannot be put in place
    with pytest.raises(OSError):
        store.write(dict(result))
    assert not store.path(cell.id).exists() and store.statuses() == {}
    assert not (store.root / "log.jsonl").exists()
    blocker.rmdir()
    store.remove_temporaries()
    store.write(result)
    assert store.statuses() == {cell.id: "ok"}
    assert sorted(load_artifact(blocker)["final"]) == ["param.0"]
    assert not list(store.cells.glob(".*.tmp"))


# ---- measures taken at the end -----------------------------------------------------------------
def test_an_at_end_measure_is_in_the_last_entry_and_a_final_summary_only(geo):
    for batch, result in by_batch(geo).items():
        history, summary = result["history"], result["summary"]
        assert ["eps_sharpness" in h for h in history] == [False] * (len(history) - 1) + [True]
        value = history[-1]["eps_sharpness"]
        assert isinstance(value, float) and math.isfinite(value) and value >= 0, batch
        assert summary["final_eps_sharpness"] == value
        assert "best_eps_sharpness" not in summary
        assert "best_test_accuracy" in summary and "best_train_loss" in summary


QUADRATIC = """
name: quad
seeds: [0]
experiments:
  e:
    problem: {name: quadratic, dim: 4, kappa: 10}
    optimizer: [{name: sgd, lr: 0.5}, {name: sgd, lr: 1000.0}]
    measures:
      - checkpoint
      - eps_sharpness
      - {name: sharpness, at: end}
    landscapes: [{name: interpolation, points: 4}]
    budget: {steps: 20, eval_every: 5}
"""


@pytest.fixture(scope="module")
def quad(tmp_path_factory) -> dict:
    """A quadratic run twice: at lr 0.5 (fine) and at lr 1000 (diverges)."""
    root = tmp_path_factory.mktemp("quad")
    out = root / "out"
    spec = write(root / "quad.yaml", QUADRATIC)
    assert main(["run", str(spec), "--out", str(out), "--workers", "1", "--no-report"]) == 0
    return {"out": out, "runs": {r["cell"]["optimizer"]["params"]["lr"]: r
                                 for r in stored(out).values()}}


def test_a_diverged_run_gets_no_measure_at_the_end(quad):
    ok, diverged = quad["runs"][0.5], quad["runs"][1000.0]
    assert ok["status"] == "ok" and diverged["status"] == "diverged"
    for name in ("eps_sharpness", "sharpness"):
        assert [name in h for h in ok["history"]] == [False] * 4 + [True]
        assert ok["summary"][f"final_{name}"] == ok["history"][-1][name]
        assert not any(name in h for h in diverged["history"])
        assert f"final_{name}" not in diverged["summary"]
    # the largest eigenvalue of this quadratic's Hessian is 1
    assert ok["history"][-1]["sharpness"] == pytest.approx(1.0, rel=1e-3)


def test_an_at_end_measure_runs_on_the_last_evaluation_of_a_run_stopped_by_its_target():
    cell = Cell.build("t", {"steps": 100, "eval_every": 10, "target": {"train_loss": 0.01}},
                      ("eps_sharpness",), problem={"name": "quadratic", "params": {"dim": 4}},
                      optimizer={"name": "sgd", "params": {"lr": 0.5}}, seed=0)
    out = run_cell(cell)
    assert out.status == "ok" and out.target_step is not None and out.target_step % 10 != 0
    assert out.history[-1]["step"] == out.target_step == out.steps
    assert [("eps_sharpness" in h) for h in out.history] == \
        [False] * (len(out.history) - 1) + [True]
    assert "final_eps_sharpness" in summarize(out)


def test_landscapes_skip_diverged_cells_and_interpolate_a_quadratic(quad):
    (data,) = landscapes(quad["out"]).values()   # none for the diverged cell
    ok = quad["runs"][0.5]
    assert data["ids"] == [ok["id"]] and data["alphas"] == [-1.0, 0.0, 1.0, 2.0]
    loss = data["metrics"]["train_loss"]
    assert loss[1] == pytest.approx(ok["history"][0]["train_loss"], rel=1e-9)
    assert loss[2] == pytest.approx(ok["history"][-1]["train_loss"], rel=1e-9)
    # f is ½xᵀAx along a line through x₀ and x_T: a parabola in α, convex
    assert loss[0] > loss[1] and loss[3] > loss[2] >= 0


# ---- refused at validation -----------------------------------------------------------------------
MEASURED = """
name: big
seeds: [0]
defaults:
  measures:
    - {name: MEASURE, max_params: LIMIT}
experiments:
  small:
    problem: {name: quadratic, dim: 4}
    optimizer: sgd
    budget: {steps: 2}
  mixed:
    problem:
      - {name: quadratic, dim: 4}
      - NET
    optimizer: sgd
    budget: {steps: 2}
"""


@pytest.mark.parametrize("measure", ["sharpness", "hessian_trace", "eps_sharpness"])
def test_a_curvature_measure_above_max_params_is_an_error_wherever_it_is_set(
        tmp_path, cli, capsys, measure):
    def spec(limit: int) -> Path:
        return write(tmp_path / f"{limit}.yaml", MEASURED.replace("MEASURE", measure)
                     .replace("LIMIT", str(limit)).replace("NET", NET))
    path = spec(NET_PARAMS - 1)
    ((line, message),) = located_errors(cli, capsys, path)   # the quadratic does not excuse it
    assert line == line_of(path, f"name: {measure}")
    assert message.startswith(f"measure '{measure}' on problem 'mlp': the model has 6,370 "
                              "parameters, above max_params=6,369")
    assert cli("validate", spec(NET_PARAMS)) == 0   # at the limit it is accepted
    capsys.readouterr()
    path = spec(10)   # the brief's example: a 4-parameter quadratic passes, the mlp does not
    assert [m.split(":")[0] for _, m in located_errors(cli, capsys, path)] == \
        [f"measure '{measure}' on problem 'mlp'"]


def test_a_measure_refused_by_a_problem_is_an_error_of_a_cell_built_without_validation():
    cell = Cell.build("t", {"steps": 2}, ({"name": "sharpness", "params": {"max_params": 10}},),
                      problem={"name": "mlp", "params": {"data": "mnist", "hidden": [8],
                                                         "subset": 256, "test_subset": 128}},
                      optimizer={"name": "sgd", "params": {"lr": 0.1}}, seed=0)
    out = run_cell(cell)
    assert out.status == "error" and "above max_params=10" in out.error


CHECKPOINT_BEST = f"""
name: ck
seeds: [0]
experiments:
  e:
    problem:
      - {NET}
    optimizer: sgd
    measures:
      - {{name: checkpoint, best: BEST}}
    budget: {{steps: 2}}
"""


@pytest.mark.parametrize("best, extra, allowed", [
    ("val_loss", None, "allowed: train_loss, train_accuracy, test_loss, test_accuracy, "),
    ("test_accuracy", "{name: quadratic, dim: 4}", "allowed: train_loss, "),
])
def test_checkpoint_best_must_be_a_metric_of_every_problem(tmp_path, cli, capsys, best, extra,
                                                           allowed):
    text = CHECKPOINT_BEST.replace("BEST", best)
    if extra:   # a problem without the metric, beside one that has it
        text = text.replace("    problem:\n", f"    problem:\n      - {extra}\n")
    path = write(tmp_path / "s.yaml", text)
    errors = located_errors(cli, capsys, path)
    assert len(errors) == 1
    line, message = errors[0]
    assert line == line_of(path, "name: checkpoint")
    assert f"checkpoint best={best!r}: the problem has no such metric" in message
    assert allowed in message
    ok = write(tmp_path / "ok.yaml", CHECKPOINT_BEST.replace("BEST", "test_accuracy"))
    assert cli("validate", ok) == 0


# ---- lr scaling --------------------------------------------------------------------------------
SCALED = f"""
name: lr
seeds: [0]
defaults:
  problem: {NET}
  optimizer: {{name: sgd, lr: 0.1}}
  budget: {{steps: 3, eval_every: 1}}
experiments:
  linear:
    batch_size: [16, 64, 512, null]
    schedule: {{name: step, every: 1, gamma: 0.5}}
    lr_scaling: {{rule: linear, base_batch_size: 32}}
  sqrt:
    batch_size: [16, 64, 512, null]
    lr_scaling: {{rule: sqrt, base_batch_size: 32}}
  none:
    batch_size: [16, null]
    lr_scaling: {{rule: none, base_batch_size: 32}}
  plain:
    batch_size: 64
    optimizer: {{name: sgd, lr: 0.2}}
    schedule: {{name: step, every: 1, gamma: 0.5}}
"""


@pytest.fixture(scope="module")
def scaled(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("lr")
    out = root / "out"
    spec = write(root / "lr.yaml", SCALED)
    assert main(["run", str(spec), "--out", str(out), "--workers", "1", "--no-report"]) == 0
    runs: dict = {}
    for r in stored(out).values():
        runs.setdefault(r["cell"]["experiment"], {})[r["cell"]["batch_size"]] = r
    return runs


def lrs(result: dict) -> list[float]:
    return [h["lr"] for h in result["history"]]


# the samples per step: a batch larger than the 256 images, or null, is the whole subset
EXAMPLES = {16: 16, 64: 64, 512: 256, None: 256}


@pytest.mark.parametrize("rule, factor", [("linear", lambda r: r), ("sqrt", math.sqrt)])
def test_lr_scaling_multiplies_every_lr_by_the_batch_ratio(scaled, rule, factor):
    runs = scaled[rule]
    assert sorted(runs, key=str) == sorted(EXAMPLES, key=str)
    for batch, examples in EXAMPLES.items():
        scale = factor(examples / 32)
        assert runs[batch]["cell"]["lr_scaling"] == {"rule": rule, "base_batch_size": 32}
        assert lrs(runs[batch])[0] == pytest.approx(0.1 * scale, rel=1e-12), batch
        # the ratio to the smallest batch holds at every step, schedule or not
        ratio = scale / factor(16 / 32)
        assert [a / b for a, b in zip(lrs(runs[batch]), lrs(runs[16]))] == \
            pytest.approx([ratio] * 4, rel=1e-12), batch
    if rule == "linear":   # the step schedule still halves the scaled lr after every step
        assert lrs(runs[64]) == pytest.approx([0.2, 0.2, 0.1, 0.05], rel=1e-12)
    else:
        assert lrs(runs[None]) == pytest.approx([0.1 * math.sqrt(8)] * 4, rel=1e-12)


def test_lr_scaling_trains_with_the_scaled_lr(scaled):
    """sgd at lr 0.1 scaled linearly to batch 64 from 32 is sgd at lr 0.2, step for step."""
    scaled_run, plain = scaled["linear"][64], scaled["plain"][64]
    assert "lr_scaling" not in plain["cell"]
    assert lrs(scaled_run) == lrs(plain)
    assert [h["train_loss"] for h in scaled_run["history"]] == \
        [h["train_loss"] for h in plain["history"]]
    assert scaled_run["history"][-1]["train_loss"] != scaled["linear"][16]["history"][-1][
        "train_loss"]


def test_lr_scaling_rule_none_leaves_the_lr_and_the_cell_as_they_were(scaled):
    for batch, result in scaled["none"].items():
        assert lrs(result) == [0.1] * 4, batch
        assert "lr_scaling" not in result["cell"]   # the id is that of an unscaled cell


SCALING_SPEC = f"""
name: v
seeds: [0]
experiments:
  e:
    problem: {NET}
    optimizer:
      - {{name: sgd, lr: 0.1}}
    batch_size: [16, 64]
    lr_scaling:
      rule: linear
      base_batch_size: 16
    budget: {{steps: 2}}
"""


@pytest.mark.parametrize("old, new, at, message", [
    ("rule: linear", "rule: cubic", "rule: cubic",
     "lr_scaling rule 'cubic' is unknown; allowed: none, linear, sqrt"),
    ("      base_batch_size: 16\n", "", "lr_scaling:",
     "lr_scaling rule 'linear' needs 'base_batch_size', an integer >= 1 (the batch size the "
     "optimizers' lr is given for), got None"),
    ("base_batch_size: 16", "base_batch_size: 0", "base_batch_size: 0",
     "lr_scaling rule 'linear' needs 'base_batch_size', an integer >= 1"),
    ("base_batch_size: 16", "base_batch_size: 16.5", "base_batch_size: 16.5",
     "lr_scaling rule 'linear' needs 'base_batch_size', an integer >= 1"),
    ("rule: linear", "rule: sqrt\n      base: 16", "base: 16",
     "unknown key 'base' in lr_scaling; allowed: rule, base_batch_size"),
], ids=["unknown-rule", "no-base", "base-zero", "base-not-integer", "unknown-key"])
def test_bad_lr_scaling_is_an_error_at_its_own_line(tmp_path, cli, capsys, old, new, at,
                                                    message):
    path = write(tmp_path / "s.yaml", SCALING_SPEC.replace(old, new))
    errors = located_errors(cli, capsys, path)
    assert (line_of(path, at), message) in [(ln, m[:len(message)]) for ln, m in errors], errors
    assert all(line == line_of(path, at) for line, _ in errors), errors


def test_lr_scaling_needs_a_learning_rate_in_every_optimizer(tmp_path, cli, capsys):
    path = write(tmp_path / "s.yaml", """
    name: v
    seeds: [0]
    experiments:
      e:
        problem: {name: logistic, samples: 256, features: 4}
        batch_size: 32
        optimizer:
          - {name: sgd, lr: 0.1}
          - newton
          - {name: adam, lr: 0.01}
          - bfgs
        lr_scaling: {rule: sqrt, base_batch_size: 16}
        budget: {steps: 2}
    """)
    assert located_errors(cli, capsys, path) == [
        (line_of(path, f"- {name}"), f"lr_scaling: optimizer '{name}' has no learning rate to "
         "scale; leave it out of this experiment or set lr_scaling rule: none")
        for name in ("newton", "bfgs")]
    assert cli("validate", write(tmp_path / "s.yaml", path.read_text().replace(
        "rule: sqrt", "rule: none"))) == 0


def test_lr_scaling_needs_a_problem_with_batches(tmp_path, cli, capsys):
    path = write(tmp_path / "s.yaml", """
    name: v
    seeds: [0]
    experiments:
      e:
        problem: {name: quadratic, dim: 4}
        optimizer: {name: sgd, lr: 0.1}
        lr_scaling: {rule: linear, base_batch_size: 16}
        budget: {steps: 2}
    """)
    assert located_errors(cli, capsys, path) == [
        (line_of(path, "lr_scaling:"), "lr_scaling scales the lr with the batch size, and "
         "problem 'quadratic' has no data to batch")]


# ---- landscape declarations ----------------------------------------------------------------------
DECLARED = f"""
name: lv
seeds: [0]
experiments:
  e:
    problem: {NET}
    optimizer: {{name: sgd, lr: 0.1}}
    batch_size: [32, 256]
    measures:
      - checkpoint
    landscapes:
      - name: contour
        resolution: 3
      - name: interpolation
        between: {{batch_size: [32, 256]}}
    budget: {{steps: 2}}
"""
ITEM = "      - name: interpolation\n        between: {batch_size: [32, 256]}\n"


@pytest.mark.parametrize("old, new, at, message", [
    (ITEM, "      - name: interpolation\n        between:\n          optimizer: [sgd, adam]\n",
     "- name: interpolation", "landscape 'interpolation': a landscape interpolates between "
     "cells that differ only in batch size: 'between' is {batch_size: [a, b]} or init, got "
     "optimizer"),
    ("between: {batch_size: [32, 256]}", "between: {batch_size: [32, 256], seed: [0, 1]}",
     "- name: interpolation", "landscape 'interpolation': a landscape interpolates between "
     "cells that differ only in batch size: 'between' is {batch_size: [a, b]} or init, got "
     "batch_size, seed"),
    ("between: {batch_size: [32, 256]}", "between: {batch_size: [64, 256]}", "between:",
     "no cell of experiment 'e' has batch_size 64; its batch sizes: 32, 256"),
    ("between: {batch_size: [32, 256]}", "between: {batch_size: [32, null]}", "between:",
     "no cell of experiment 'e' has batch_size None; its batch sizes: 32, 256"),
    ("      - checkpoint\n", "      - activation_stats\n", "landscapes:",
     "landscapes start from the weights the 'checkpoint' measure saves: add checkpoint to "
     "this experiment's measures"),
    ("        resolution: 3\n", "        resolution: 3\n        at: {seed: 1}\n",
     "- name: contour", "landscape 'contour' selects no cell (or no pair of cells that differ "
     "only in batch size) of this experiment"),
    ("between: {batch_size: [32, 256]}",
     "between: {batch_size: [32, 256]}\n        at: {batch_size: 32}",
     "- name: interpolation", "landscape 'interpolation' selects no cell (or no pair of cells "
     "that differ only in batch size) of this experiment"),
], ids=["between-another-axis", "between-two-axes", "batch-size-not-run", "full-batch-not-run",
        "no-checkpoint", "at-selects-nothing", "at-leaves-no-pair"])
def test_a_bad_landscape_is_an_error_at_its_line(tmp_path, cli, capsys, old, new, at, message):
    good = write(tmp_path / "good.yaml", DECLARED)
    assert cli("validate", good) == 0
    text = DECLARED.replace(old, new)
    assert text != DECLARED
    path = write(tmp_path / "s.yaml", text)
    assert located_errors(cli, capsys, path) == [(line_of(path, at), message)]


def test_a_contour_needs_a_network_problem(tmp_path, cli, capsys):
    path = write(tmp_path / "s.yaml", """
    name: lv
    seeds: [0]
    experiments:
      e:
        problem: {name: rosenbrock}
        optimizer: sgd
        measures: [checkpoint]
        landscapes:
          - interpolation
          - {name: contour, resolution: 5}
        budget: {steps: 2}
    """)
    assert located_errors(cli, capsys, path) == [
        (line_of(path, "name: contour"), "a contour needs a network problem (its directions "
         "are normalised filter by filter)")]


def test_landscape_errors_are_reported_beside_another_experiments_errors(tmp_path, cli, capsys):
    path = write(tmp_path / "s.yaml", DECLARED.replace(
        "    budget: {steps: 2}\n", "    budget: {steps: 2}\n"
        "  other:\n    problem: {name: quadratic, dim: 4}\n    optimizer: sgd\n"
        "    lr_scaling: {rule: cubic, base_batch_size: 16}\n    budget: {steps: 2}\n")
        .replace("[32, 256]}", "[32, 64]}"))
    errors = located_errors(cli, capsys, path)
    assert (line_of(path, "rule: cubic"),
            "lr_scaling rule 'cubic' is unknown; allowed: none, linear, sqrt") in errors
    assert (line_of(path, "between:"),
            "no cell of experiment 'e' has batch_size 64; its batch sizes: 32, 256") in errors


# ---- landscapes computed -----------------------------------------------------------------------
def by_kind(out: Path) -> dict[str, dict]:
    """The stored landscapes of GEO by what they are: between, init, contour-<batch size>."""
    runs = {r["id"]: r for r in stored(out).values()}
    out_map = {}
    for data in landscapes(out).values():
        if data["name"] == "interpolation":
            out_map["between" if len(data["ids"]) == 2 else "init"] = data
        else:
            out_map[f"contour-{runs[data['ids'][0]]['cell']['batch_size']}"] = data
    return out_map


def test_four_landscapes_are_stored_per_experiment(geo):
    files = landscapes(geo)
    assert {p.parent.name for p in files} == {"e"}
    assert sorted(by_kind(geo)) == ["between", "contour-256", "contour-32", "init"]


def test_the_interpolation_ends_are_the_two_cells_final_metrics(geo):
    data, runs = by_kind(geo)["between"], by_batch(geo)
    assert data["ids"] == [runs[32]["id"], runs[256]["id"]]   # from batch 32 to batch 256
    alphas = data["alphas"]
    assert alphas == pytest.approx([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0])
    metrics = data["metrics"]
    assert {"train_loss", "train_accuracy", "test_loss", "test_accuracy"} <= set(metrics)
    assert all(len(v) == 7 for v in metrics.values())
    for alpha, batch in ((0.0, 32), (1.0, 256)):
        final = runs[batch]["history"][-1]
        for metric in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
            got = metrics[metric][alphas.index(alpha)]
            assert got == pytest.approx(final[metric], rel=1e-6, abs=1e-9), (batch, metric)
    # the two ends are different solutions, and the line leaves them both
    assert metrics["train_loss"][2] != metrics["train_loss"][4]
    assert metrics["train_loss"][0] > min(metrics["train_loss"][2], metrics["train_loss"][4])


def test_the_init_interpolation_runs_from_the_first_to_the_last_evaluation(geo):
    data, run = by_kind(geo)["init"], by_batch(geo)[256]
    assert data["ids"] == [run["id"]] and data["alphas"] == [-1.0, 0.0, 1.0, 2.0]
    loss = data["metrics"]["train_loss"]
    assert loss[1] == pytest.approx(run["history"][0]["train_loss"], rel=1e-6)
    assert loss[2] == pytest.approx(run["history"][-1]["train_loss"], rel=1e-6)
    assert data["metrics"]["test_accuracy"][2] == pytest.approx(
        run["history"][-1]["test_accuracy"], abs=1e-12)


def test_the_contour_centre_is_the_loss_of_the_final_weights(geo):
    kinds, runs = by_kind(geo), by_batch(geo)
    whole = kinds["contour-32"]   # samples 256: the whole training subset
    assert whole["a"] == whole["b"] == [-0.5, 0.0, 0.5]
    grid = whole["train_loss"]
    assert len(grid) == 3 and all(len(row) == 3 for row in grid)
    assert all(math.isfinite(v) for row in grid for v in row)
    assert whole["center_loss"] == grid[1][1]
    assert whole["center_loss"] == pytest.approx(runs[32]["history"][-1]["train_loss"],
                                                 rel=1e-5)
    assert len({v for row in grid for v in row}) == 9   # the directions moved the weights
    # samples 100: the loss on the measures' fixed, seeded subset of 100 training images
    part, result = kinds["contour-256"], runs[256]
    problem, _, _ = build_problem(Cell.from_dict(result["cell"]), torch.device("cpu"))
    load_state(problem, load_artifact(checkpoint_of(geo, result))["final"])
    batch = evaluation_batch(problem, 100)
    assert len(batch) == 100 and len(set(batch.tolist())) == 100
    problem.model.eval()
    with torch.no_grad():
        x, y = problem.data.train.x[batch], problem.data.train.y[batch]
        expected = float(F.cross_entropy(problem.model(x), y))
    assert part["center_loss"] == pytest.approx(expected, rel=1e-5)
    assert part["center_loss"] != pytest.approx(result["history"][-1]["train_loss"], rel=1e-4)


def test_bench_landscape_skips_stored_ones_and_recomputes_them_alike_on_rerun(geo, capsys):
    before = {p: (p.stat().st_mtime_ns, p.read_text()) for p in landscapes(geo)}
    assert len(before) == 4
    capsys.readouterr()
    assert main(["landscape", str(geo)]) == 0
    assert "bench: 0 landscape(s) computed, 4 already stored" in capsys.readouterr().err
    assert {p: (p.stat().st_mtime_ns, p.read_text()) for p in landscapes(geo)} == before
    assert main(["landscape", str(geo), "--rerun"]) == 0
    err = capsys.readouterr().err
    assert "bench: 4 landscape(s) computed, 0 already stored" in err
    assert err.count("bench: landscape e/") == 4
    # written again (the same files), with the same values: landscapes are seeded
    after = landscapes(geo)
    assert sorted(after) == sorted(before)
    assert all(after[p] == json.loads(text) for p, (_, text) in before.items())


# ---- filter normalisation ----------------------------------------------------------------------
@pytest.mark.parametrize("problem", [
    {"name": "mlp", "params": {"data": "mnist", "hidden": [8, 6], "batch_norm": True,
                               "subset": 64, "test_subset": 32}},
    {"name": "cnn", "params": {"data": "mnist", "subset": 64, "test_subset": 32}},
], ids=["mlp-batch-norm", "lenet"])
def test_filter_normalised_directions_have_the_norms_of_the_weights_filters(problem):
    cell = Cell.build("t", {"steps": 1}, problem=problem, optimizer="sgd", seed=0)
    built, _, _ = build_problem(cell, torch.device("cpu"))
    state = state_of(built)
    trainable = {name for name, _ in built.model.named_parameters()}
    buffers = set(state) - trainable   # batch norm's running statistics and counter
    assert trainable <= set(state)
    assert bool(buffers) == problem["params"].get("batch_norm", False)
    d = filter_normalised(state, trainable, torch.Generator().manual_seed(0))
    assert set(d) == trainable   # buffers (running statistics, counters) get no direction
    shapes = {name: state[name].dim() for name in trainable}
    assert 1 in shapes.values() and max(shapes.values()) >= 2
    for name in trainable:
        weight = state[name]
        assert d[name].shape == weight.shape and d[name].dtype == weight.dtype
        if weight.dim() == 1:   # biases and batch-norm scales do not move
            assert torch.equal(d[name], torch.zeros_like(weight)), name
            continue
        rows, filters = d[name].flatten(1), weight.flatten(1)
        assert torch.allclose(rows.norm(dim=1), filters.norm(dim=1), rtol=1e-5), name
        assert not torch.allclose(rows, filters)   # a random direction, not the weights
    again = filter_normalised(state, trainable, torch.Generator().manual_seed(0))
    assert all(torch.equal(d[k], again[k]) for k in d)   # seeded: the same direction
    other = filter_normalised(state, trainable, torch.Generator().manual_seed(1))
    assert any(not torch.equal(d[k], other[k]) for k in d if state[k].dim() > 1)


def test_a_single_parameter_vector_is_scaled_as_a_whole():
    x = torch.tensor([3.0, -4.0, 12.0])   # norm 13
    (d,) = filter_normalised({"param.0": x}, {"param.0"},
                             torch.Generator().manual_seed(0)).values()
    assert float(d.norm()) == pytest.approx(13.0, rel=1e-6)
    assert not torch.allclose(d, x)
