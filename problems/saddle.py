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
    """A saddle point at the origin; the start is drawn on a sphere of `start_radius` around it."""
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
