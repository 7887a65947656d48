"""Malformed specs: exit code 2, a `file:line:col: message` per problem, a summary line
counting them, no traceback, and nothing written. Each case names every message it must
produce: its line, its column and its text."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent   # the checkout whose bench is under test

GOOD = """
name: t
seeds: [0]
experiments:
  e:
    problem: {name: quadratic, dim: 2}
    optimizer: {name: sgd, lr: 0.1}
    budget: {steps: 5}
"""

# id: (spec text, the problems reported, each (line, column, message)). A message is matched
# whole; "…" stands for any text (registry listings that grow when something is registered).
CASES = {
    "empty file": ("", [(1, 1, "the file is empty")]),
    "only a comment": ("# nothing here\n", [(1, 1, "the file is empty")]),
    "not YAML": ("name: t\nexperiments: [unclosed\n",
                 [(3, 1, "not valid YAML: expected ',' or ']', but got '<stream end>'")]),
    "top level is a list": ("- a\n- b\n",
                            [(1, 1, "a spec is a mapping with 'name' and 'experiments'")]),
    "unknown problem": (GOOD.replace("name: quadratic", "name: quadratc"), [
        (5, 15, "unknown problem 'quadratc'; allowed: …quadratic…; did you mean 'quadratic'?")]),
    "unknown optimizer": (GOOD.replace("name: sgd", "name: adamm"), [
        (6, 17, "unknown optimizer 'adamm'; allowed: …adam, adamw…; did you mean 'adam'?")]),
    "unknown optimizer parameter": (GOOD.replace("lr: 0.1", "lrr: 0.1"), [
        (6, 28, "optimizer 'sgd' has no parameter 'lrr'; allowed: lr, weight_decay; "
                "did you mean 'lr'?")]),
    "wrong type": (GOOD.replace("lr: 0.1", "lr: fast"), [
        (6, 28, "optimizer 'sgd' parameter 'lr' must be a number, got str 'fast'")]),
    "bool is not a number": (GOOD.replace("dim: 2", "dim: true"), [
        (5, 32, "problem 'quadratic' parameter 'dim' must be an integer, got bool True")]),
    "missing budget": (GOOD.replace("    budget: {steps: 5}\n", ""), [
        (4, 3, "experiment 'e' needs a 'budget' mapping with steps or epochs")]),
    "missing optimizer": (GOOD.replace("    optimizer: {name: sgd, lr: 0.1}\n", ""), [
        (4, 3, "experiment 'e' needs 'optimizer'")]),
    "missing name": (GOOD.replace("name: t\n", ""), [
        (1, 1, "'name' must be a string of letters, digits, '.', '_' or '-' "
               "(results go to results/<name>/)")]),
    "duplicate key": (GOOD.replace("    budget: {steps: 5}\n",
                                   "    budget: {steps: 5}\n    budget: {steps: 6}\n"), [
        (8, 5, "duplicate key 'budget' (first at line 7)")]),
    "typo in axis": (GOOD.replace("    optimizer:", "    optimiser:"), [
        (4, 3, "experiment 'e' needs 'optimizer'"),
        (6, 5, "unknown key 'optimiser' in experiment 'e'; allowed: …; did you mean 'optimizer'?")]),
    "typo in top-level key": (GOOD.replace("seeds:", "seed:"), [
        (2, 1, "unknown key 'seed' in spec; allowed: …seeds…; did you mean 'seeds'?"),
        (4, 3, "experiment 'e' has no seeds: set 'seeds' at the top or 'seed' in the experiment")]),
    "unknown budget key": (GOOD.replace("{steps: 5}", "{steps: 5, stesp: 3}"), [
        (7, 24, "unknown key 'stesp' in budget; allowed: steps, epochs, eval_every, "
                "evals_per_epoch, time_limit, target; did you mean 'steps'?")]),
    "both steps and epochs": (GOOD.replace("{steps: 5}", "{steps: 5, epochs: 1}"), [
        (7, 5, "budget needs exactly one of 'steps' or 'epochs'")]),
    "negative steps": (GOOD.replace("{steps: 5}", "{steps: -5}"), [
        (7, 14, "budget 'steps' must be an integer >= 1, got -5")]),
    "bad learning rate range": (GOOD.replace("lr: 0.1", "lr: -0.1"), [
        (6, 5, "optimizer 'sgd': Invalid learning rate: -0.1")]),
    "bad kappa": (GOOD.replace("dim: 2", "dim: 2, kappa: 0.5"), [
        (5, 5, "problem 'quadratic': kappa must be at least 1, got 0.5")]),
    "loguniform reversed": (GOOD.replace("lr: 0.1", "lr: {loguniform: [1.0, 1.0e-3]}")
                            + "    samples: 4\n", [
        (6, 28, "'lr': loguniform needs low < high, got [1.0, 0.001]")]),
    "random search without samples": (GOOD.replace("lr: 0.1", "lr: {uniform: [0.1, 0.2]}"), [
        (6, 17, "sgd: random search (lr) needs 'samples: N' in the experiment")]),
    "python tag": (GOOD.replace("lr: 0.1", "lr: !!python/object/apply:os.system [ls]"), [
        (6, 32, "tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed "
                "(plain YAML only)")]),
    "unknown measure": (GOOD + "    measures: [sharpnes]\n", [
        (8, 16, "unknown measure 'sharpnes'; allowed: …trajectory…")]),
    "init on analytic problem": (GOOD + "    init: default\n    batch_size: 32\n", [
        (9, 5, "problem 'quadratic' has no data to batch; use its 'noise' parameter for "
               "stochastic gradients")]),
    "unknown target metric": (GOOD.replace("{steps: 5}", "{steps: 5, target: {accuracy: 0.9}}"), [
        (7, 33, "no problem of experiment 'e' has a metric 'accuracy'; allowed: loss, "
                "dist_to_opt, grad_norm, suboptimality, train_loss")]),
    "seed not an integer": (GOOD.replace("seeds: [0]", "seeds: [zero]"), [
        (2, 9, "'seed' values must be integers >= 0, got 'zero'")]),
    "exclude unknown axis": (GOOD + "    exclude: [{optimiser: sgd}]\n", [
        (8, 16, "exclude names unknown axis 'optimiser'; allowed: problem, optimizer, …; "
                "did you mean 'optimizer'?")]),
    "zip of non-lists": (GOOD + "    zip: [problem.dim, optimizer.lr]\n", [
        (8, 5, "zip member 'optimizer.lr' is not a list in this experiment…"),
        (8, 5, "zip member 'problem.dim' is not a list in this experiment…")]),
    "import path not an optimizer": (GOOD.replace("name: sgd", "name: torch.nn.Linear"), [
        (6, 17, "'torch.nn.Linear' is not a torch.optim.Optimizer subclass")]),
    "not a spec file": (None, [
        (1, 1, "cannot read spec: [Errno 2] No such file or directory: '…missing.yaml'")]),
}


def _matches(expected: str, actual: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split("…"))
    return re.fullmatch(pattern, actual) is not None


def check_report(err: str, path, expected: list) -> None:
    """stderr is exactly the expected `file:line:col: message` lines, in order, then the
    summary line counting them; no traceback, nothing else."""
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-1] == f"bench: {len(expected)} problem(s) in {path}; nothing was run", err
    located = [re.fullmatch(rf"{re.escape(str(path))}:(\d+):(\d+): (.*)", ln) for ln in lines[:-1]]
    assert all(located), err
    got = [(int(m[1]), int(m[2]), m[3]) for m in located]
    assert len(got) == len(expected), err
    for (line, col, msg), (want_line, want_col, want_msg) in zip(got, expected):
        assert (line, col) == (want_line, want_col), (msg, err)
        assert _matches(want_msg, msg), (want_msg, msg)


def spec_path(case, write_spec, tmp_path):
    text = CASES[case][0]
    return write_spec(text) if text is not None else tmp_path / "missing.yaml"


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_spec_is_rejected_cleanly(case, write_spec, cli, tmp_path, capsys):
    path = spec_path(case, write_spec, tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert cli("run", path) == 2
    captured = capsys.readouterr()
    check_report(captured.err, path, CASES[case][1])
    assert captured.out == ""
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, "nothing may be written"


@pytest.mark.parametrize("case", sorted(CASES))
def test_validate_reports_what_run_reports(case, write_spec, cli, tmp_path, capsys):
    path = spec_path(case, write_spec, tmp_path)
    assert cli("validate", path) == 2
    check_report(capsys.readouterr().err, path, CASES[case][1])


SUBPROCESS_CASES = [("run", "unknown optimizer"), ("validate", "typo in axis"),
                    ("run", "not YAML"), ("validate", "python tag"),
                    ("run", "not a spec file")]


@pytest.mark.parametrize("command, case", SUBPROCESS_CASES)
def test_python_m_bench_exits_2_with_located_messages(command, case, write_spec, tmp_path):
    """The real process: exit status 2, the messages on stderr, no traceback, nothing run."""
    path = spec_path(case, write_spec, tmp_path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.run([sys.executable, "-m", "bench", command, str(path)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    check_report(proc.stderr, path, CASES[case][1])
    assert not (tmp_path / "results").exists()


def test_unknown_profile_names_the_choices(write_spec, cli, capsys):
    path = write_spec(GOOD + "profiles:\n  full: {seeds: [0, 1]}\n")
    assert cli("validate", path, "--profile", "ful") == 2
    check_report(capsys.readouterr().err, path,
                 [(8, 1, "unknown profile 'ful'; allowed: full; did you mean 'full'?")])


def test_all_problems_are_reported_together(write_spec, cli, capsys):
    path = write_spec(GOOD.replace("name: sgd", "name: sgdd").replace("dim: 2", "dimm: 2"))
    assert cli("validate", path) == 2
    check_report(capsys.readouterr().err, path, [
        (5, 32, "problem 'quadratic' has no parameter 'dimm'; allowed: dim, kappa, …; "
                "did you mean 'dim'?"),
        (6, 17, "unknown optimizer 'sgdd'; allowed: …; did you mean 'sgd'?")])


def test_good_spec_validates(write_spec, cli, capsys):
    assert cli("validate", write_spec(GOOD)) == 0
    assert "1 cells" in capsys.readouterr().out


def test_yaml_1_2_numbers_and_booleans(tmp_path):
    from bench.yamlio import load
    data, _ = load("a: 1e-3\nb: yes\nc: 1.0E+2\nd: on\ne: true\n", "x.yaml")
    assert data == {"a": 0.001, "b": "yes", "c": 100.0, "d": "on", "e": True}
