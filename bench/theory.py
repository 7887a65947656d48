"""Closed-form predictions on quadratics f(x) = ½xᵀAx, to draw measured against predicted.

Gradient descent, heavy-ball momentum and Nesterov (torch's form) are linear iterations on a
quadratic: per eigenvalue λ of A their error evolves by a fixed matrix, so the asymptotic
rate at which ‖x − x*‖ shrinks is the largest spectral radius over the eigenvalues. Newton's
method lands on the minimiser in one step; BFGS with an exact line search needs at most n
(n + 1 allowing for rounding).
"""
from __future__ import annotations

import math

import numpy as np

NEWTON_STEPS = 1


def quadratic_eigenvalues(params: dict) -> np.ndarray | None:
    if params.get("eigenvalues") is not None:
        return np.asarray(params["eigenvalues"], dtype=float)
    if params.get("kappa") is None:
        return None
    return np.logspace(-math.log10(params["kappa"]), 0, params["dim"])


def iteration_matrix(name: str, opt: dict, lam: float) -> np.ndarray | None:
    lr = opt.get("lr")
    if name == "sgd" and not opt.get("weight_decay"):
        return np.array([[1 - lr * lam]])
    rho = opt.get("momentum")
    if name == "momentum" and not opt.get("weight_decay"):
        # v' = ρv + λx;  x' = x − αv'
        return np.array([[1 - lr * lam, -lr * rho], [lam, rho]])
    if name == "nesterov" and not opt.get("weight_decay"):
        # b' = ρb + λx;  x' = x − α(λx + ρb')
        return np.array([[1 - lr * lam * (1 + rho), -lr * rho * rho], [lam, rho]])
    return None


def predicted_rate(optimizer: dict, problem: dict) -> float | None:
    """Asymptotic contraction factor of ‖x − x*‖ per step, or None when theory is silent."""
    if problem["name"] != "quadratic" or problem["params"].get("noise"):
        return None
    lams = quadratic_eigenvalues(problem["params"])
    if lams is None:
        return None
    radii = []
    for lam in lams:
        m = iteration_matrix(optimizer["name"], optimizer["params"], float(lam))
        if m is None:
            return None
        radii.append(max(abs(np.linalg.eigvals(m))))
    return float(max(radii))


def predicted_steps_bound(optimizer: dict, problem: dict) -> int | None:
    """Steps within which the method must reach the minimiser (to rounding), if theory says."""
    if problem["name"] != "quadratic" or problem["params"].get("noise"):
        return None
    if optimizer["name"] == "newton" and not optimizer["params"].get("damping"):
        return NEWTON_STEPS
    if optimizer["name"] == "bfgs" and optimizer["params"].get("line_search") == "exact":
        # n in exact arithmetic; the notes (and rounding) allow n + 1
        lams = quadratic_eigenvalues(problem["params"])
        return None if lams is None else len(lams) + 1
    return None


def measured_rate(history: list[dict], metric: str = "dist_to_opt",
                  floor: float = 1e-11, min_points: int = 4) -> float | None:
    """Per-step contraction of `metric`: exp of the least-squares slope of its log against
    the step over the second half of the run above `floor` (below it, float rounding takes
    over). None with fewer than `min_points` there: momentum methods spiral, so a rate read
    off two or three points can be far from the truth."""
    points = [(h["step"], math.log(h[metric])) for h in history
              if isinstance(h.get(metric), (int, float)) and h[metric] > floor]
    half = points[len(points) // 2:]
    if len(half) < min_points:
        return None
    steps, logs = np.array(half).T
    if np.ptp(steps) == 0:
        return None
    slope = np.polyfit(steps, logs, 1)[0]
    return float(math.exp(slope))


def gd_steps_to_distance(kappa: float, eps: float) -> int:
    """Steps of GD at lr = 2/(L+μ) to shrink ‖x − x*‖ by ε: ⌈log ε / log((κ−1)/(κ+1))⌉."""
    return math.ceil(math.log(eps) / math.log((kappa - 1) / (kappa + 1)))
