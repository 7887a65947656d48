"""Saddle points: gradient descent stalls where the gradient vanishes but no minimum is."""
from __future__ import annotations

from typing import Literal

import torch

from problems import formulas
from problems.base import AnalyticProblem, Context, check_positive, start_point


class Saddle(AnalyticProblem):
    """x² − y² generalised: Σ of `dim − negative` squares minus `negative` squares; or the
    monkey saddle x³ − 3xy². Unbounded below, so there is no minimum: the recorded outcome is
    whether and when the iterate left the ball of `escape_radius` around the saddle point."""

    def __init__(self, x0: torch.Tensor, signs: torch.Tensor | None, escape_radius: float):
        super().__init__(x0)
        self.signs = signs   # None: the monkey saddle
        self.escape_radius = escape_radius

    def metric_names(self) -> list[str]:
        return ["train_loss", "grad_norm", "dist_to_saddle", "escaped"]

    def value(self, x: torch.Tensor) -> torch.Tensor:
        if self.signs is None:
            return formulas.monkey(x)
        return formulas.saddle(x, self.signs)

    def landscape(self) -> dict:
        if self.signs is None:
            return {"formula": "monkey", "args": {}}
        return {"formula": "saddle", "args": {"signs": self.signs.cpu().tolist()}}

    def evaluate(self) -> dict[str, float]:
        out = super().evaluate()
        out["dist_to_saddle"] = self.x.detach().norm().item()
        out["escaped"] = float(out["dist_to_saddle"] > self.escape_radius)
        return out


def saddle(ctx: Context, dim: int = 2, negative: int = 1,
           kind: Literal["quadratic", "monkey"] = "quadratic", start_radius: float = 1e-3,
           escape_radius: float = 1.0, x0: list[float] | None = None,
           dtype: Literal["float32", "float64"] = "float32") -> Saddle:
    """A saddle point at the origin; the start is drawn on a sphere of `start_radius` around it.

    The notes' saddle point: the gradient vanishes there but it is no minimum, so gradient
    descent started near it stalls before it leaves. f is unbounded below; the metrics are
    `dist_to_saddle` (‖x‖) and `escaped`.

    Args:
        dim: d, the number of coordinates: at least 2 for `kind: quadratic` (a high-dimensional
            saddle for large d), exactly 2 for `kind: monkey`.
        negative: the number of descending directions, 1 ≤ negative ≤ d − 1: the last
            `negative` coordinates enter f with a minus sign (x² − y² is dim 2, negative 1).
            Ignored by `kind: monkey`.
        kind: quadratic: f = Σ sᵢxᵢ² with d − negative signs +1 and `negative` signs −1, a
            non-degenerate saddle whose Hessian diag(2sᵢ) has eigenvalues ±2; monkey: the monkey
            saddle x³ − 3xy², degenerate (its Hessian at the origin is 0, three valleys lead
            down), so curvature gives no direction of escape there.
        start_radius: > 0, the distance from the saddle point to the start, in a direction drawn
            from the seed; smaller starts closer, where the gradient is smaller and the stall
            longer. Ignored when `x0` is given.
        escape_radius: > 0, the iterate counts as escaped (`escaped` = 1) once ‖x‖ exceeds it;
            with `target: {escaped: 1}` the step of escape is recorded.
        x0: the starting point, d numbers, instead of a random one at `start_radius`; exactly 0
            is the saddle itself, where the gradient is 0 and gradient methods never move.
        dtype: the floating-point type of x and the arithmetic.
    """
    check_positive(start_radius=start_radius, escape_radius=escape_radius)
    if kind == "monkey":
        if dim != 2:
            raise ValueError("the monkey saddle is 2-dimensional: set dim: 2")
        signs = None
    else:
        if not 1 <= negative < dim:
            raise ValueError(f"negative must be between 1 and dim - 1 = {dim - 1}, got {negative}")
        signs = torch.ones(dim, dtype=torch.float64)
        signs[dim - negative:] = -1
    x = start_point(x0, dim, ctx, dtype, radius=start_radius)
    return Saddle(x, None if signs is None else signs.to(x), escape_radius)
