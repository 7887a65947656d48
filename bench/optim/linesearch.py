"""Line searches along a direction d from x, through the Objective (so every trial is counted).

- `backtracking`: Armijo's sufficient decrease, halving t from 1 (loss evaluations only).
- `exact`: Newton's method on φ(t) = f(x + t d), using φ' = ∇f·d and φ'' = dᵀ∇²f d from a
  Hessian-vector product. Exact in one iteration on a quadratic, which is what the finite
  termination of BFGS and conjugate directions assume.
- `strong_wolfe`: torch.optim.LBFGS's strong-Wolfe search (cubic interpolation), reused.
"""
from __future__ import annotations

import torch
from torch.optim.lbfgs import _strong_wolfe  # torch's own; stable since torch 1.4

from bench.objective import Objective

LINE_SEARCHES = ("none", "backtracking", "exact", "strong_wolfe")


def search(kind: str, obj: Objective, x: torch.Tensor, d: torch.Tensor, loss: torch.Tensor,
           grad: torch.Tensor) -> tuple[float, torch.Tensor | None]:
    """The step length t; also ∇f(x + t d) when the search computed it (else None)."""
    if kind == "none":
        return 1.0, None
    if kind == "backtracking":
        return backtracking(obj, x, d, loss, grad), None
    if kind == "exact":
        return exact(obj, x, d, grad)
    if kind == "strong_wolfe":
        return strong_wolfe(obj, x, d, loss, grad)
    raise ValueError(f"unknown line search '{kind}'; allowed: {', '.join(LINE_SEARCHES)}")


def backtracking(obj: Objective, x, d, loss, grad, c1: float = 1e-4, max_halvings: int = 40):
    slope = float(grad @ d)
    t = 1.0
    for _ in range(max_halvings):
        obj.set_flat(x + t * d)
        if float(obj.loss()) <= float(loss) + c1 * t * slope:
            break
        t *= 0.5
    return t


def exact(obj: Objective, x, d, grad, iterations: int = 8, rtol: float = 1e-12):
    slope0 = abs(float(grad @ d)) or 1.0
    t = 0.0
    for _ in range(iterations):
        obj.set_flat(x + t * d)
        with torch.enable_grad():
            _loss, g_graph = obj.value_and_gradient(create_graph=True)
            g = g_graph.detach()
            slope = float(g @ d)
            if abs(slope) <= rtol * slope0:
                return t, g
            curvature = float(d @ obj.hvp(g_graph, d))
        if curvature <= 0:   # not convex along d: Newton on φ is meaningless here
            return (t, g) if t > 0 else (backtracking(obj, x, d, obj.loss(), grad), None)
        t -= slope / curvature
    obj.set_flat(x + t * d)
    return t, obj.value_and_gradient()[1]


def strong_wolfe(obj: Objective, x, d, loss, grad):
    def evaluate(x0, t, direction):
        obj.set_flat(x0 + t * direction)
        value, g = obj.value_and_gradient()
        return float(value), g
    _f, g_new, t, _evals = _strong_wolfe(evaluate, x, 1.0, d, float(loss), grad, float(grad @ d))
    obj.set_flat(x + t * d)
    return float(t), g_new
