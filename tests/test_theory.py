"""Gradient descent at lr = 2/(L+μ) on the κ sweep needs ⌈log ε / log((κ−1)/(κ+1))⌉ steps.

On a 2-D quadratic at that step size both eigen-directions contract by exactly
q = (κ−1)/(κ+1) per step, so ‖x_t‖ = qᵗ‖x_0‖ with ‖x_0‖ = 1: the count is exact, not a bound.
The trajectory measure keeps every iterate, so the distance one step before the target is read
from the run itself."""
from __future__ import annotations

import math

from bench.results import Store
from bench.theory import gd_steps_to_distance

SPEC = """
name: theory
seeds: [0, 1]
experiments:
  sweep:
    problem: {name: quadratic, dim: 2, kappa: [10, 100, 1000]}
    optimizer:
      - {name: sgd, label: gd, lr: [1.8181818181818181, 1.9801980198019802, 1.998001998001998]}
    zip: [problem.kappa, optimizer.lr]
    measures: [{name: trajectory, max_points: 8001}]
    budget: {steps: 8000, eval_every: 500, target: {dist_to_opt: 1.0e-6}}
"""
# ⌈log 1e-6 / log q⌉; log 1e-6 / log q is 68.85, 690.75 and 6907.75: no rounding near the edge
EXPECTED = {10.0: 69, 100.0: 691, 1000.0: 6908}


def test_theory_formula_gives_the_expected_counts():
    for kappa, count in EXPECTED.items():
        q = (kappa - 1) / (kappa + 1)
        assert math.ceil(math.log(1e-6) / math.log(q)) == count
        assert gd_steps_to_distance(kappa, 1e-6) == count          # what the report draws
        assert q ** count <= 1e-6 < q ** (count - 1)


def test_gd_steps_to_target_match_theory(write_spec, cli, tmp_path):
    assert cli("run", write_spec(SPEC), "--workers", "1") == 0
    runs = Store(tmp_path / "results" / "theory").load_all()
    assert len(runs) == 6
    assert sorted((r["cell"]["problem"]["params"]["kappa"], r["cell"]["seed"]) for r in runs) == \
        [(k, s) for k in EXPECTED for s in (0, 1)]
    for r in runs:
        kappa = r["cell"]["problem"]["params"]["kappa"]
        predicted = EXPECTED[kappa]
        assert r["status"] == "ok"
        assert r["summary"]["steps_to_target"] == predicted, (kappa, r["summary"])
        assert r["summary"]["steps"] == predicted               # the run stopped there
        last = r["history"][-1]
        assert last["step"] == predicted and last["dist_to_opt"] <= 1e-6
        assert r["history"][-2]["dist_to_opt"] > 1e-6
        # every iterate: x_0 … x_predicted; x_{predicted−1} is still outside the target
        points = r["summary"]["measures"]["trajectory"]["points"]
        assert len(points) == predicted + 1
        dist = [math.hypot(*p) for p in points]            # x* = 0
        assert math.isclose(dist[0], 1.0, rel_tol=1e-6)
        assert dist[predicted] <= 1e-6 < dist[predicted - 1], (kappa, dist[-2:])
        assert math.isclose(dist[predicted], last["dist_to_opt"], rel_tol=1e-6)
        q = (kappa - 1) / (kappa + 1)
        for t in (1, predicted // 2, predicted - 1):       # ‖x_t‖ = qᵗ, to float32 rounding
            assert math.isclose(dist[t], q ** t, rel_tol=1e-3), (kappa, t, dist[t], q ** t)
    assert (tmp_path / "results" / "theory" / "figures" /
            "sweep-steps-to-target-vs-kappa.png").exists()
