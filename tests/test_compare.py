"""`bench compare`, `bench check` and `bench baseline`: the regression gate.

The injected changes are real: an optimizer loaded by import path from a module the test
writes, first as it is, then slowed (it spins for half of its step's time: 1.5× the work per
step) or with its momentum changed inside the class (so the cell id does not change). The
runs are real `bench` processes, one worker each, so each run imports the module afresh."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench import compare
from bench.cli import main

PLUGIN = '''
import time
import torch

SLOWDOWN = {slowdown}     # 1.5: every step does half as much work again
MOMENTUM = {momentum}     # changed inside the class: the cell id stays the same


class Slowable(torch.optim.SGD):
    """SGD whose every training-loop iteration takes SLOWDOWN times as long: after its step
    it spins for (SLOWDOWN - 1) times the unspun length of the previous iteration (the
    loop's own work, the closure's loss and backward, and the update)."""
    _start = _spun = None

    def step(self, closure=None):
        start = time.perf_counter()
        loss = super().step(closure)
        spin = 0.0
        if self._start is not None:
            spin = (SLOWDOWN - 1.0) * (start - self._start - self._spun)
            until = time.perf_counter() + spin
            while time.perf_counter() < until:
                pass
        self._start, self._spun = start, spin
        return loss


class Momentum(torch.optim.SGD):
    def __init__(self, params, lr=0.01):
        super().__init__(params, lr=lr, momentum=MOMENTUM)
'''

SPEC = """
name: gate
seeds: [0, 1, 2, 3, 4]
experiments:
  speed:        # cells of about 1 s: long enough to time on a noisy machine
    problem: {name: quadratic, dim: 2, kappa: 1000}
    optimizer:
      - {name: gate_plugin.Slowable, lr: 0.5}
      - {name: sgd, lr: 0.5}
    budget: {steps: 3000, eval_every: 500}
  converge:
    problem: {name: quadratic, dim: 2, kappa: [100, 1000]}
    optimizer:
      - {name: gate_plugin.Momentum, lr: 0.1}
      - {name: momentum, lr: 0.1, momentum: 0.9}
    seed: [0, 1, 2]
    budget: {steps: 300, eval_every: 100, target: {dist_to_opt: 0.5}}
"""


def write_plugin(folder: Path, slowdown: float = 1.0, momentum: float = 0.9) -> None:
    (folder / "gate_plugin.py").write_text(PLUGIN.format(slowdown=slowdown, momentum=momentum))


def bench(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(folder), MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    """A baseline run, and three candidates: unchanged, slowed, momentum changed."""
    folder = tmp_path_factory.mktemp("gate")
    (folder / "spec.yaml").write_text(textwrap.dedent(SPEC))
    runs = {}
    for name, slowdown, momentum in (("baseline", 1.0, 0.9), ("same", 1.0, 0.9),
                                     ("slow", 1.5, 0.9), ("momentum", 1.0, 0.91)):
        write_plugin(folder, slowdown, momentum)
        done = bench(folder, "run", "spec.yaml", "--out", name, "--workers", "1",
                     "--no-report")
        assert done.returncode == 0, done.stderr
        runs[name] = folder / name
    write_plugin(folder)
    return folder, runs


def failing_rows(folder: Path, candidate: str) -> list[dict]:
    import csv
    with open(folder / candidate / "compare" / "compare.csv") as f:
        return [r for r in csv.DictReader(f) if r["fails"] == "1"]


def test_a_slowed_optimizer_fails_the_speed_gate_by_name(gate):
    folder, runs = gate
    out = bench(folder, "compare", "baseline", "slow")
    assert out.returncode == 1, out.stdout + out.stderr
    failing = failing_rows(folder, "slow")
    named = {r["configuration"] for r in failing if r["group"] != "*"}
    assert named == {"speed · quadratic(kappa=1000) · gate_plugin.Slowable(lr=0.5)"}, out.stdout
    assert {r["metric"] for r in failing if r["group"] != "*"} >= {"seconds_per_step"}
    assert all(r["verdict"] == "slower" for r in failing)
    assert "gate_plugin.Slowable" in out.stdout and "FAILED" in out.stderr
    # the convergence of the slowed optimizer is untouched: its numbers are bit-identical
    rows = json.loads(json.dumps(_rows(folder, "slow")))
    same = [r for r in rows if r["metric"] in ("steps_to_target", "final_train_loss")]
    assert same and all(r["verdict"] == "same" for r in same)


def test_an_unchanged_candidate_passes(gate):
    folder, runs = gate
    out = bench(folder, "compare", "baseline", "same")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "passed" in out.stderr


def test_a_changed_momentum_fails_the_convergence_gate_on_exactly_its_cells(gate):
    folder, runs = gate
    out = bench(folder, "compare", "baseline", "momentum",
                "--metrics", "steps_to_target,final_train_loss,final_dist_to_opt,status")
    assert out.returncode == 1, out.stdout + out.stderr
    failing = failing_rows(folder, "momentum")
    configurations = {r["configuration"] for r in failing}
    assert configurations == {"converge · quadratic(kappa=100) · gate_plugin.Momentum(lr=0.1)",
                              "converge · quadratic(kappa=1000) · gate_plugin.Momentum(lr=0.1)"}
    assert {r["verdict"] for r in failing} == {"changed"}
    assert {r["metric"] for r in failing} >= {"final_train_loss", "final_dist_to_opt"}
    assert all(r["ratio or change"] == "3 of 3 seeds differ" for r in failing
               if r["metric"] != "steps_to_target")


def _rows(folder: Path, candidate: str) -> list[dict]:
    import csv
    with open(folder / candidate / "compare" / "compare.csv") as f:
        return list(csv.DictReader(f))


def test_bench_check_runs_and_gates_in_one_command(gate):
    folder, runs = gate
    write_plugin(folder, slowdown=1.5)
    try:
        out = bench(folder, "check", "spec.yaml", "--baseline", "baseline", "--workers", "1",
                    "--out", "checked", "--only", "optimizer=gate_plugin.Slowable")
    finally:
        write_plugin(folder)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "gate_plugin.Slowable" in out.stdout
    assert (folder / "checked" / "compare" / "compare.md").is_file()
    # the other cells of the baseline are listed as missing from the candidate, not dropped
    assert "only in the baseline: 17 cells" in out.stdout


def test_bench_check_refuses_a_folder_that_is_not_fresh(gate):
    folder, runs = gate
    out = bench(folder, "check", "spec.yaml", "--baseline", "baseline", "--out", "same")
    assert out.returncode == 2 and "not empty" in out.stderr


# ---- bad input: exit 2 and a sentence, never a traceback ------------------------------------
def _result(cell_id: str, **summary) -> dict:
    cell = {"experiment": "e", "problem": {"name": "quadratic", "params": {}}, "seed": 0}
    return {"schema": 1, "id": cell_id, "status": "ok", "cell": cell, "history": [],
            "summary": {"steps": 10, "seconds": 1.0, **summary}, "env": {}}


def _folder(root: Path, results: list[dict]) -> Path:
    (root / "cells").mkdir(parents=True)
    for r in results:
        (root / "cells" / f"{r['id']}.json").write_text(json.dumps(r))
    return root


@pytest.mark.parametrize("case", ["missing", "empty", "no-cells", "broken-json",
                                  "not-a-result", "nothing-in-common", "bad-tolerance",
                                  "unknown-metric", "speed-without-percent"])
def test_bad_input_is_exit_2_with_a_clear_message(tmp_path, case, capsys):
    good = _folder(tmp_path / "good", [_result("aaaaaaaaaaaa", final_train_loss=1.0)])
    other = tmp_path / "other"
    args = [str(good), str(other)]
    if case == "empty":
        other.mkdir()
    elif case == "no-cells":
        (other / "cells").mkdir(parents=True)
    elif case == "broken-json":
        _folder(other, [])
        (other / "cells" / "aaaaaaaaaaaa.json").write_text('{"id": "aaaa", "sta')
    elif case == "not-a-result":
        _folder(other, [])
        (other / "cells" / "aaaaaaaaaaaa.json").write_text('[1, 2, 3]')
    elif case == "nothing-in-common":
        _folder(other, [_result("bbbbbbbbbbbb", final_train_loss=1.0)])
    elif case in ("bad-tolerance", "unknown-metric", "speed-without-percent"):
        args = [str(good), str(good), "--tolerance",
                {"bad-tolerance": "final_train_loss=-3", "unknown-metric": "speed=10%",
                 "speed-without-percent": "seconds_per_step=0.1"}[case]]
    assert main(["compare", *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    expected = {"missing": "no such folder", "empty": "holds no results",
                "no-cells": "holds no results", "broken-json": "not readable JSON",
                "not-a-result": "not a bench result", "nothing-in-common": "no cell in common",
                "bad-tolerance": "not a number >= 0", "unknown-metric": "unknown metric 'speed'",
                "speed-without-percent": "a speed tolerance is a percentage"}[case]
    assert expected in err, err
    if case in ("missing", "empty", "no-cells", "broken-json", "not-a-result"):
        assert str(other) in err   # the message names the folder or file


def test_bad_input_through_the_real_command_line_has_no_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bench", "compare", str(tmp_path / "a"),
                          str(tmp_path / "b")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "no such folder" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_compare_section_with_a_typo_is_a_spec_error_at_its_line(write_spec, cli, capsys):
    spec = write_spec("""
        name: t
        compare:
          seconds_per_stepp: 10%
        experiments:
          e: {problem: quadratic, optimizer: sgd, budget: {steps: 5}}
        """)
    assert cli("validate", spec) == 2
    err = capsys.readouterr().err
    assert f"{spec}:3:" in err and "unknown metric 'seconds_per_stepp'" in err


# ---- the verdict rules ------------------------------------------------------------------------
def test_speed_verdicts_are_read_off_the_interval():
    tol = compare.parse_tolerance("seconds_per_step", "10%")
    assert compare.speed_verdict(1.2, 1.6, tol, higher_better=False) == "slower"
    assert compare.speed_verdict(0.6, 0.85, tol, higher_better=False) == "faster"
    assert compare.speed_verdict(0.95, 1.05, tol, higher_better=False) == "same"
    assert compare.speed_verdict(1.05, 1.5, tol, higher_better=False) == "within noise"
    # throughput: higher is better, so a ratio below 1/(1 + tol) is slower
    assert compare.speed_verdict(0.6, 0.85, tol, higher_better=True) == "slower"


def test_exact_and_tolerant_convergence_verdicts():
    exact = compare.parse_tolerance("final_train_loss", 0)
    row = compare.convergence_row("g", "g", "final_train_loss", [(1.0, 1.0), (2.0, 2.0)], exact)
    assert row.verdict == "same" and not row.fails
    row = compare.convergence_row("g", "g", "final_train_loss", [(1.0, 1.0), (2.0, 1.5)], exact)
    assert row.verdict == "changed" and row.fails   # better, but not bit-for-bit
    loose = compare.parse_tolerance("final_test_accuracy", "0.005")
    row = compare.convergence_row("g", "g", "final_test_accuracy", [(0.90, 0.893)], loose)
    assert row.verdict == "regressed" and row.fails
    row = compare.convergence_row("g", "g", "final_test_accuracy", [(0.90, 0.904)], loose)
    assert row.verdict == "same"
    steps = compare.parse_tolerance("steps_to_target", "10%")
    row = compare.convergence_row("g", "g", "steps_to_target", [(100, math.inf)], steps)
    assert row.verdict == "regressed"   # reached before, not now


def test_the_yardstick_counts_a_slow_spell_in_proportion_and_ignores_one_outlier():
    from bench.calibrate import DuringCell, yardstick
    ends = {"compute": 0.001, "overhead": 0.003}   # 4 ms before and after
    quiet = {"before": ends, "after": ends, "during": [0.004] * 10}
    assert yardstick(quiet) == pytest.approx(0.004)
    spell = dict(quiet, during=[0.004] * 5 + [0.008] * 5)   # twice as slow for half the cell
    # 12 samples, 7 at 4 ms and 5 at 8 ms; trimming 2 from each end leaves 5 and 3
    assert yardstick(spell) == pytest.approx((5 * 0.004 + 3 * 0.008) / 8)
    preempted = dict(quiet, during=[0.004] * 9 + [0.4])     # one sample preempted: trimmed
    assert yardstick(preempted) == pytest.approx(0.004)
    assert yardstick(None) is None and yardstick({"before": {"compute": 0}}) is None
    probe = DuringCell(evaluations=100)          # at most 16 samples, spread over the cell
    for _ in range(100):
        probe.at_evaluation()
    assert len(probe.samples) == 15 and all(s > 0 for s in probe.samples)


def test_bench_version(capsys):
    import bench
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"bench {bench.__version__}"
