"""Ill-conditioned quadratics f(x) = ½ xᵀAx: the lecture notes' zig-zag problem."""
from __future__ import annotations

import math
from typing import Literal

import torch

from problems import formulas
from problems.base import DTYPES, AnalyticProblem, Context, check_positive, start_point


class Quadratic(AnalyticProblem):
    """½ xᵀAx with A = Q diag(λ) Qᵀ; the minimum is 0 at x = 0.

    Kept in the eigenbasis (z = Qᵀx) so a rotated problem costs two small mat-vecs.
    `noise` adds a fresh ξ ~ N(0, noise² I) to the gradient each step, through the loss
    ½ xᵀAx + ξᵀx: the same batch reaches every closure call of one step, as a minibatch would.
    """

    def __init__(self, eigenvalues: torch.Tensor, basis: torch.Tensor | None,
                 x0: torch.Tensor, noise: float):
        super().__init__(x0)
        self.eigenvalues = eigenvalues
        self.basis = basis
        self.noise = noise
        self.x_star = torch.zeros_like(x0)
        self.f_star = 0.0

    def hessian(self, batch=None) -> torch.Tensor:
        """A, in closed form (the noise term is linear in x and adds nothing)."""
        if self.basis is None:
            return torch.diag(self.eigenvalues)
        return self.basis @ torch.diag(self.eigenvalues) @ self.basis.T

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return formulas.quadratic(x, self.eigenvalues, self.basis)

    def landscape(self) -> dict:
        basis = None if self.basis is None else self.basis.cpu().tolist()
        return {"formula": "quadratic",
                "args": {"eigenvalues": self.eigenvalues.cpu().tolist(), "basis": basis}}

    def sample_batch(self, generator: torch.Generator) -> torch.Tensor | None:
        if self.noise == 0:
            return None
        xi = torch.randn(self.dim, generator=generator, dtype=torch.float64)
        return (self.noise * xi).to(self.x.dtype).to(self.x.device)

    def forward(self, batch: torch.Tensor | None) -> torch.Tensor:
        f = self.value(self.x)
        return f if batch is None else f + batch @ self.x


def quadratic(ctx: Context, dim: int = 2, kappa: float = 10.0,
              eigenvalues: list[float] | None = None, rotate: bool = True,
              x0: list[float] | None = None, noise: float = 0.0,
              dtype: Literal["float32", "float64"] = "float32") -> Quadratic:
    """½ xᵀAx with eigenvalues log-spaced from 1/kappa to 1 (or given), rotated by a seeded basis.

    The lecture notes' zig-zag problem: with a high condition number the loss is steep along
    one axis and shallow along another. The minimum is f = 0 at x = 0; the Hessian is A.

    Args:
        dim: d ≥ 1, the number of coordinates (the size of x and of A). Ignored when
            `eigenvalues` is given; d = 1 has the single eigenvalue 1, whatever `kappa` is.
        kappa: the condition number κ = L/μ = λ_max/λ_min ≥ 1 of A (the notes' "condition
            number"); the d eigenvalues are log-spaced in [1/κ, 1], so L = 1 and μ = 1/κ.
            Ignored when `eigenvalues` is given.
        eigenvalues: the spectrum λ of A itself, a non-empty list of positive numbers; it
            replaces `dim` and `kappa` (d is its length, κ its max/min ratio).
        rotate: true: A = Q diag(λ) Qᵀ with Q a random orthogonal matrix drawn from the seed, so
            the steep and shallow directions are not the coordinate axes; false: A = diag(λ),
            axis-aligned, which per-coordinate methods (AdaGrad, RMSProp, Adam) can exploit.
        x0: the starting point, d numbers; when omitted, a point drawn from the seed uniformly
            on the unit sphere ‖x‖ = 1.
        noise: σ ≥ 0, the standard deviation of the gradient noise: each step the gradient
            Ax gets a fresh ξ ~ N(0, σ²I) (the loss is ½xᵀAx + ξᵀx), standing in for the notes'
            noisy minibatch gradients; every closure call of one step sees the same ξ. 0 is
            exact, deterministic gradients. The recorded train_loss is the noise-free f(x).
        dtype: the floating-point type of x, A and the arithmetic; float64 to follow the loss
            below float32's resolution (e.g. to targets like 1e-8, or Newton's steps).
    """
    if eigenvalues is not None:
        if not eigenvalues or min(eigenvalues) <= 0:
            raise ValueError("eigenvalues must be a non-empty list of positive numbers")
        lam = torch.tensor(eigenvalues, dtype=torch.float64)
    else:
        check_positive(dim=dim)
        if not kappa >= 1:
            raise ValueError(f"kappa must be at least 1, got {kappa}")
        lam = torch.logspace(-math.log10(kappa), 0, dim, dtype=torch.float64)
        lam[-1] = 1.0   # the largest is 1 (logspace of one point gives its start)
    if noise < 0:
        raise ValueError(f"noise must be at least 0, got {noise}")
    dim = lam.numel()
    basis = None
    if rotate:
        q, r = torch.linalg.qr(torch.randn(dim, dim, generator=ctx.generator, dtype=torch.float64))
        basis = (q * torch.sign(torch.diagonal(r))).to(DTYPES[dtype]).to(ctx.device)
    start = start_point(x0, dim, ctx, dtype)
    return Quadratic(lam.to(DTYPES[dtype]).to(ctx.device), basis, start, noise)
