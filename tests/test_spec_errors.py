"""Malformed specs: exit code 2, a `file:line:col: message` per problem, no traceback, and
nothing written. Each case names the line the message must point at."""
from __future__ import annotations

import re

import pytest

GOOD = """
name: t
seeds: [0]
experiments:
  e:
    problem: {name: quadratic, dim: 2}
    optimizer: {name: sgd, lr: 0.1}
    budget: {steps: 5}
"""

CASES = {  # id: (spec text, line of the error, a phrase the message must contain)
    "empty file": ("", 1, "empty"),
    "only a comment": ("# nothing here\n", 1, "empty"),
    "not YAML": ("name: t\nexperiments: [unclosed\n", 3, "not valid YAML"),
    "top level is a list": ("- a\n- b\n", 1, "mapping"),
    "unknown problem": (GOOD.replace("name: quadratic", "name: quadratc"), 5,
                        "did you mean 'quadratic'"),
    "unknown optimizer": (GOOD.replace("name: sgd", "name: adamm"), 6, "did you mean 'adam'"),
    "unknown optimizer parameter": (GOOD.replace("lr: 0.1", "lrr: 0.1"), 6,
                                    "did you mean 'lr'"),
    "wrong type": (GOOD.replace("lr: 0.1", "lr: fast"), 6, "must be a number"),
    "bool is not a number": (GOOD.replace("dim: 2", "dim: true"), 5, "must be an integer"),
    "missing budget": (GOOD.replace("    budget: {steps: 5}\n", ""), 4, "budget"),
    "missing optimizer": (GOOD.replace("    optimizer: {name: sgd, lr: 0.1}\n", ""), 4,
                          "needs 'optimizer'"),
    "missing name": (GOOD.replace("name: t\n", ""), 1, "'name'"),
    "duplicate key": (GOOD.replace("    budget: {steps: 5}\n",
                                   "    budget: {steps: 5}\n    budget: {steps: 6}\n"), 8,
                      "duplicate key 'budget'"),
    "typo in axis": (GOOD.replace("    optimizer:", "    optimiser:"), 6, "unknown key 'optimiser'"),
    "typo in top-level key": (GOOD.replace("seeds:", "seed:"), 2, "did you mean 'seeds'"),
    "unknown budget key": (GOOD.replace("{steps: 5}", "{steps: 5, stesp: 3}"), 7,
                           "did you mean 'steps'"),
    "both steps and epochs": (GOOD.replace("{steps: 5}", "{steps: 5, epochs: 1}"), 7,
                              "exactly one"),
    "negative steps": (GOOD.replace("{steps: 5}", "{steps: -5}"), 7, "integer >= 1"),
    "bad learning rate range": (GOOD.replace("lr: 0.1", "lr: -0.1"), 6, "Invalid learning rate"),
    "bad kappa": (GOOD.replace("dim: 2", "dim: 2, kappa: 0.5"), 5, "kappa must be at least 1"),
    "loguniform reversed": (GOOD.replace("lr: 0.1", "lr: {loguniform: [1.0, 1.0e-3]}")
                            + "    samples: 4\n", 6, "low < high"),
    "random search without samples": (GOOD.replace("lr: 0.1", "lr: {uniform: [0.1, 0.2]}"), 6,
                                      "needs 'samples"),
    "python tag": (GOOD.replace("lr: 0.1", "lr: !!python/object/apply:os.system [ls]"), 6,
                   "not allowed"),
    "unknown measure": (GOOD + "    measures: [sharpnes]\n", 8, "unknown measure"),
    "init on analytic problem": (GOOD + "    init: default\n    batch_size: 32\n", 9,
                                 "no data to batch"),
    "unknown target metric": (GOOD.replace("{steps: 5}", "{steps: 5, target: {accuracy: 0.9}}"),
                              7, "metric 'accuracy'"),
    "seed not an integer": (GOOD.replace("seeds: [0]", "seeds: [zero]"), 2, "integers"),
    "exclude unknown axis": (GOOD + "    exclude: [{optimiser: sgd}]\n", 8, "unknown axis"),
    "zip of non-lists": (GOOD + "    zip: [problem.dim, optimizer.lr]\n", 8, "not a list"),
    "import path not an optimizer": (GOOD.replace("name: sgd", "name: torch.nn.Linear"), 6,
                                     "not a torch.optim.Optimizer"),
    "not a spec file": (None, 1, "cannot read"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_spec_is_rejected_cleanly(case, write_spec, cli, tmp_path, capsys):
    text, line, phrase = CASES[case]
    path = write_spec(text) if text is not None else tmp_path / "missing.yaml"
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert cli("run", path) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    located = re.findall(rf"^{re.escape(str(path))}:(\d+):(\d+): (.*)$", err, re.M)
    assert located, err
    assert any(int(ln) == line and phrase.lower() in msg.lower()
               for ln, _col, msg in located), err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, "nothing may be written"


def test_unknown_profile_names_the_choices(write_spec, cli, capsys):
    path = write_spec(GOOD + "profiles:\n  full: {seeds: [0, 1]}\n")
    assert cli("validate", path, "--profile", "ful") == 2
    err = capsys.readouterr().err
    assert re.search(r"spec.yaml:8:\d+: unknown profile 'ful'.*did you mean 'full'", err), err


def test_all_problems_are_reported_together(write_spec, cli, capsys):
    text = GOOD.replace("name: sgd", "name: sgdd").replace("dim: 2", "dimm: 2")
    assert cli("validate", write_spec(text)) == 2
    err = capsys.readouterr().err
    assert "sgdd" in err and "dimm" in err and "2 problem(s)" in err


def test_good_spec_validates(write_spec, cli, capsys):
    assert cli("validate", write_spec(GOOD)) == 0
    assert "1 cells" in capsys.readouterr().out


def test_yaml_1_2_numbers_and_booleans(tmp_path):
    from bench.yamlio import load
    data, _ = load("a: 1e-3\nb: yes\nc: 1.0E+2\nd: on\ne: true\n", "x.yaml")
    assert data == {"a": 0.001, "b": "yes", "c": 100.0, "d": "on", "e": True}
