"""The analytic landscapes' formulas, written once for torch tensors and numpy arrays alike.

The problems evaluate them on tensors (autograd sees every operation); the report evaluates
them on numpy grids to draw contours from a Result's stored landscape, without torch. Every
function maps points of shape [..., d] to values of shape [...].
"""
from __future__ import annotations

import math

import numpy as np


def quadratic(x, eigenvalues, basis=None):
    """½ xᵀAx with A = Q diag(λ) Qᵀ, computed in the eigenbasis z = Qᵀx."""
    z = x if basis is None else x @ basis
    return 0.5 * (eigenvalues * z * z).sum(-1)


def saddle(x, signs):
    """Σ sᵢ xᵢ² with signs ±1: x² − y² generalised."""
    return (signs * x * x).sum(-1)


def monkey(x):
    """The monkey saddle x³ − 3xy²."""
    a, b = x[..., 0], x[..., 1]
    return a ** 3 - 3 * a * b ** 2


def rosenbrock(x, a=1.0, b=100.0):
    """Σᵢ b(xᵢ₊₁ − xᵢ²)² + (a − xᵢ)²."""
    head, tail = x[..., :-1], x[..., 1:]
    return (b * (tail - head ** 2) ** 2 + (a - head) ** 2).sum(-1)


def rastrigin(x, amplitude=10.0):
    """Σᵢ A + xᵢ² − A cos(2πxᵢ)."""
    return (amplitude + x * x - amplitude * _cos(2 * math.pi * x)).sum(-1)


def _cos(x):
    return np.cos(x) if isinstance(x, np.ndarray) else x.cos()


FORMULAS = {"quadratic": quadratic, "saddle": saddle, "monkey": monkey,
            "rosenbrock": rosenbrock, "rastrigin": rastrigin}


def evaluate(landscape: dict, points: np.ndarray) -> np.ndarray:
    """A stored landscape ({"formula": name, "args": {...}}) at numpy points [..., d]."""
    args = {k: (np.asarray(v, dtype=float) if isinstance(v, list) else v)
            for k, v in landscape["args"].items()}
    return FORMULAS[landscape["formula"]](np.asarray(points, dtype=float), **args)
