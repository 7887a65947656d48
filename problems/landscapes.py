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
    """Rosenbrock's banana valley; starts at the classic (−1.2, 1, −1.2, …) unless x0 is given.

    f(x) = Σᵢ b(xᵢ₊₁ − xᵢ²)² + (a − xᵢ)² over i = 1 … d − 1 (the chained form): a narrow curved
    valley, easy to reach and slow to follow (the notes' Rosenbrock valley). For a = 1 the
    minimum is 0 at (1, …, 1); with b = 100 and d = 2 the Hessian's condition number there is
    about 2508.

    Args:
        dim: d ≥ 2, the number of coordinates.
        a: where the valley leads: the target of every (a − xᵢ)² term. suboptimality and
            dist_to_opt are measured from the value 0 at (a, a², a⁴, …): the true minimum for
            d = 2 or a ∈ {0, 1}; for d ≥ 3 and other a the terms conflict and the true minimum
            is above 0, elsewhere.
        b: > 0, the weight of the valley walls b(xᵢ₊₁ − xᵢ²)²: larger b makes the valley
            narrower and steeper across, i.e. more ill-conditioned.
        x0: the starting point, d numbers; when omitted, (−1.2, 1, −1.2, 1, …), the same for
            every seed.
        dtype: the floating-point type of x and the arithmetic.
    """
    if dim < 2:
        raise ValueError(f"rosenbrock needs dim >= 2, got {dim}")
    start = x0 if x0 is not None else [(-1.2 if i % 2 == 0 else 1.0) for i in range(dim)]
    return Rosenbrock(start_point(start, dim, ctx, dtype), a, b)


def rastrigin(ctx: Context, dim: int = 2, amplitude: float = 10.0,
              x0: list[float] | None = None,
              dtype: Literal["float32", "float64"] = "float32") -> Rastrigin:
    """Rastrigin's function; the start is drawn uniformly from [−5.12, 5.12]^dim unless given.

    f(x) = Σᵢ A + xᵢ² − A cos(2πxᵢ): a bowl covered in local minima near the integer points
    (the notes' local minima); the global minimum is 0 at x = 0.

    Args:
        dim: d ≥ 1, the number of coordinates; the number of local minima grows exponentially
            with d.
        amplitude: A ≥ 0, the height of the cosine bumps: larger A gives deeper local minima; 0
            leaves the plain bowl Σ xᵢ².
        x0: the starting point, d numbers; when omitted, drawn from the seed uniformly in the
            classic domain [−5.12, 5.12]^d.
        dtype: the floating-point type of x and the arithmetic.
    """
    if x0 is None:
        u = torch.rand(dim, generator=ctx.generator, dtype=torch.float64)
        x0 = (10.24 * u - 5.12).tolist()
    return Rastrigin(start_point(x0, dim, ctx, dtype).to(DTYPES[dtype]), amplitude)
