"""Classic test functions: Rosenbrock's curved valley, Rastrigin's many local minima."""
from __future__ import annotations

from typing import Literal

import torch

from problems import formulas
from problems.base import DTYPES, AnalyticProblem, Context, start_point


class Rosenbrock(AnalyticProblem):
    """Σᵢ b(xᵢ₊₁ − xᵢ²)² + (a − xᵢ)²; minimum 0 at (a, a², …) — (1, …, 1) for a = 1."""

    def __init__(self, x0: torch.Tensor, a: float, b: float):
        super().__init__(x0)
        self.a, self.b = a, b
        star = [a]
        for _ in range(self.dim - 1):
            star.append(star[-1] ** 2)
        self.x_star = torch.tensor(star, dtype=x0.dtype, device=x0.device)
        self.f_star = 0.0

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return formulas.rosenbrock(x, self.a, self.b)

    def landscape(self) -> dict:
        return {"formula": "rosenbrock", "args": {"a": self.a, "b": self.b}}


class Rastrigin(AnalyticProblem):
    """A·d + Σᵢ xᵢ² − A cos(2πxᵢ): a bowl covered in local minima; global minimum 0 at 0."""

    def __init__(self, x0: torch.Tensor, amplitude: float):
        super().__init__(x0)
        self.amplitude = amplitude
        self.x_star = torch.zeros_like(x0)
        self.f_star = 0.0

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return formulas.rastrigin(x, self.amplitude)

    def landscape(self) -> dict:
        return {"formula": "rastrigin", "args": {"amplitude": self.amplitude}}


def rosenbrock(ctx: Context, dim: int = 2, a: float = 1.0, b: float = 100.0,
               x0: list[float] | None = None,
               dtype: Literal["float32", "float64"] = "float32") -> Rosenbrock:
    """Rosenbrock's banana valley; starts at the classic (−1.2, 1, −1.2, …) unless x0 is given."""
    if dim < 2:
        raise ValueError(f"rosenbrock needs dim >= 2, got {dim}")
    start = x0 if x0 is not None else [(-1.2 if i % 2 == 0 else 1.0) for i in range(dim)]
    return Rosenbrock(start_point(start, dim, ctx, dtype), a, b)


def rastrigin(ctx: Context, dim: int = 2, amplitude: float = 10.0,
              x0: list[float] | None = None,
              dtype: Literal["float32", "float64"] = "float32") -> Rastrigin:
    """Rastrigin's function; the start is drawn uniformly from [−5.12, 5.12]^dim unless given."""
    if x0 is None:
        u = torch.rand(dim, generator=ctx.generator, dtype=torch.float64)
        x0 = (10.24 * u - 5.12).tolist()
    return Rastrigin(start_point(x0, dim, ctx, dtype).to(DTYPES[dtype]), amplitude)
