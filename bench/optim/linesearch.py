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
           grad: torch.Tensor, grad_graph: torch.Tensor | None = None) -> tuple:
    """(t, ∇f(x + t d), f(x + t d)); the last two are None where the search did not compute
    them. `grad_graph` (∇f at x with its graph) spares the exact search one evaluation."""
    if kind == "none":
        return 1.0, None, None
    if kind == "backtracking":
        return backtracking(obj, x, d, loss, grad)
    if kind == "exact":
        return exact(obj, x, d, grad, grad_graph)
    if kind == "strong_wolfe":
        return strong_wolfe(obj, x, d, loss, grad)
    raise ValueError(f"unknown line search '{kind}'; allowed: {', '.join(LINE_SEARCHES)}")


def backtracking(obj: Objective, x, d, loss, grad, c1: float = 1e-4, max_halvings: int = 40):
    slope = float(grad @ d)
    t, value = 1.0, None
    for _ in range(max_halvings):
        obj.set_flat(x + t * d)
        value = obj.loss()
        if float(value) <= float(loss) + c1 * t * slope:
            break
        t *= 0.5
    return t, None, value


def exact(obj: Objective, x, d, grad, grad_graph=None, iterations: int = 8, rtol: float = 1e-12):
    slope0 = abs(float(grad @ d)) or 1.0
    t = 0.0
    for i in range(iterations):
        with torch.enable_grad():
            if i == 0 and grad_graph is not None:   # t = 0 is x, already evaluated
                value, g_graph = None, grad_graph
            else:
                obj.set_flat(x + t * d)
                value, g_graph = obj.value_and_gradient(create_graph=True)
            g = g_graph.detach()
            slope = float(g @ d)
            if abs(slope) <= rtol * slope0:
                return t, g, value
            curvature = float(d @ obj.hvp(g_graph, d))
        if curvature <= 0:   # not convex along d: Newton on φ is meaningless here
            if t > 0:
                return t, g, value
            return backtracking(obj, x, d, obj.loss() if value is None else value, grad)
        t -= slope / curvature
    obj.set_flat(x + t * d)
    value, g = obj.value_and_gradient()
    return t, g, value


def strong_wolfe(obj: Objective, x, d, loss, grad):
    def evaluate(x0, t, direction):
        obj.set_flat(x0 + t * direction)
        value, g = obj.value_and_gradient()
        return float(value), g
    f_new, g_new, t, _evals = _strong_wolfe(evaluate, x, 1.0, d, float(loss), grad,
                                            float(grad @ d))
    obj.set_flat(x + t * d)
    return float(t), g_new, torch.as_tensor(f_new)
