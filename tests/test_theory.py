"""Gradient descent at lr = 2/(L+μ) on the κ sweep needs ⌈log ε / log((κ−1)/(κ+1))⌉ steps."""
from __future__ import annotations

import math

from bench.results import Store

SPEC = """
name: theory
seeds: [0, 1]
experiments:
  sweep:
    problem: {name: quadratic, dim: 2, kappa: [10, 100, 1000]}
    optimizer:
      - {name: sgd, label: gd, lr: [1.8181818181818181, 1.9801980198019802, 1.998001998001998]}
    zip: [problem.kappa, optimizer.lr]
    budget: {steps: 8000, eval_every: 500, target: {dist_to_opt: 1.0e-6}}
"""


def test_gd_steps_to_target_match_theory(write_spec, cli, tmp_path):
    assert cli("run", write_spec(SPEC), "--workers", "1") == 0
    runs = Store(tmp_path / "results" / "theory").load_all()
    assert len(runs) == 6
    for r in runs:
        kappa = r["cell"]["problem"]["params"]["kappa"]
        predicted = math.ceil(math.log(1e-6) / math.log((kappa - 1) / (kappa + 1)))
        assert abs(r["summary"]["steps_to_target"] - predicted) <= 2, (kappa, r["summary"])
        assert r["history"][-1]["dist_to_opt"] <= 1e-6 < r["history"][-2]["dist_to_opt"]
    assert (tmp_path / "results" / "theory" / "figures" /
            "sweep-steps-to-target-vs-kappa.png").exists()
