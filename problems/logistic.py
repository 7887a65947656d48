"""Binary logistic regression on a seeded synthetic data set: small enough for a dense Hessian,
with a known minimum, and with minibatches for the stochastic side of the comparison."""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from problems.base import DTYPES, BaseProblem, Context
from problems.imagedata import EpochBatches


class Logistic(BaseProblem):
    """mean log(1 + exp(−y·xᵀw)) over n samples (a bias column included), labels in {0, 1}.

    The minimiser w* is found once at construction by Newton's method in float64 with the
    closed-form Hessian XᵀDX/n, so suboptimality and distance to the optimum are exact."""
    accepts_batch_size = True

    def __init__(self, X: torch.Tensor, y: torch.Tensor, w0: torch.Tensor,
                 batch_size: int | None):
        self.X, self.y = X, y
        self.w = torch.nn.Parameter(w0)
        self.batches = EpochBatches(len(y), batch_size)
        self.train_size = len(y)
        self.steps_per_epoch = self.batches.steps_per_epoch
        self.samples_per_step = self.batches.batch_size
        w_star = _newton_minimiser(X.double(), y.double())
        self.x_star = w_star.to(X.dtype)
        self.f_star = float(_loss(X.double(), y.double(), w_star))
        self.cheap_metrics = frozenset(self.metric_names())

    def parameters(self) -> list[torch.Tensor]:
        return [self.w]

    def sample_batch(self, generator: torch.Generator):
        """Indices of the next minibatch (None: the full batch)."""
        if self.batches.batch_size == len(self.y):
            return None
        return self.batches.next(generator, self.X.device)

    def inputs(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        if batch is None:
            return self.X, self.y
        return self.X[batch], self.y[batch]

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return X @ self.w

    def criterion(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, y)

    def hessian(self, batch) -> torch.Tensor:
        """Xᵀ diag(p(1−p)) X / n on the batch, p = σ(Xw)."""
        X = self.X if batch is None else self.X[batch]
        with torch.no_grad():
            p = torch.sigmoid(X @ self.w)
            return (X.T * (p * (1 - p))) @ X / len(X)

    def metric_names(self) -> list[str]:
        return ["train_loss", "grad_norm", "suboptimality", "dist_to_opt", "train_accuracy"]

    def evaluate(self) -> dict[str, float]:
        w = self.w.detach().requires_grad_(True)
        with torch.enable_grad():
            f = _loss(self.X, self.y, w)
            (grad,) = torch.autograd.grad(f, w)
        accuracy = ((self.X @ w.detach() > 0).to(self.y.dtype) == self.y).float().mean()
        return {"train_loss": f.item(), "grad_norm": grad.norm().item(),
                "suboptimality": f.item() - self.f_star,
                "dist_to_opt": (w.detach() - self.x_star).norm().item(),
                "train_accuracy": accuracy.item()}


def _loss(X, y, w):
    return F.binary_cross_entropy_with_logits(X @ w, y)


def _newton_minimiser(X: torch.Tensor, y: torch.Tensor, iterations: int = 100) -> torch.Tensor:
    w = torch.zeros(X.shape[1], dtype=X.dtype, device=X.device)
    for _ in range(iterations):
        p = torch.sigmoid(X @ w)
        grad = X.T @ (p - y) / len(y)
        if grad.norm() < 1e-13:
            break
        hessian = (X.T * (p * (1 - p))) @ X / len(y)
        w = w - torch.linalg.solve(hessian, grad)
    return w


def logistic(ctx: Context, samples: int = 1000, features: int = 20, label_noise: float = 0.1,
             scale: float = 2.0,
             dtype: Literal["float32", "float64"] = "float32") -> Logistic:
    """Binary logistic regression on seeded Gaussian features, with some labels flipped.

    Labels come from a random true weight vector, a fraction flipped so the classes overlap
    and the minimum is finite; w starts at 0.

    The loss is the mean binary cross-entropy over the samples, convex, with a closed-form
    Hessian; its minimiser w* is found once by Newton's method in float64. A cell's batch_size
    draws minibatches from the samples (none: full-batch gradient descent).

    Args:
        samples: n ≥ 2, the number of synthetic examples, the whole training set. Keep n well
            above `features`: n points in p + 1 dimensions are often linearly separable despite
            the flipped labels (always when n ≤ p + 1), and then no finite minimiser exists.
        features: p ≥ 1, the number of standard-Gaussian features per example; a constant 1 is
            appended as a bias column, so w and the Hessian have p + 1 rows.
        label_noise: 0 < q < 0.5, the probability with which each label is flipped from the
            true linear classifier's, so that the classes overlap.
        scale: the true weight vector is scale · N(0, I)/√p. Labels take only the sign of xᵀw
            (before flipping), so every positive scale gives the same data set.
        dtype: the floating-point type of the data, w and the arithmetic (w* is computed in
            float64 either way).
    """
    if samples < 2 or features < 1:
        raise ValueError("logistic needs samples >= 2 and features >= 1")
    if not 0 < label_noise < 0.5:
        raise ValueError(f"label_noise must be in (0, 0.5), got {label_noise}")
    g = ctx.generator
    X = torch.randn(samples, features, generator=g, dtype=torch.float64)
    X = torch.cat([X, torch.ones(samples, 1, dtype=torch.float64)], dim=1)
    truth = scale * torch.randn(features + 1, generator=g, dtype=torch.float64) / math.sqrt(features)
    y = (X @ truth > 0).double()
    flip = torch.rand(samples, generator=g, dtype=torch.float64) < label_noise
    y = torch.where(flip, 1 - y, y)
    kind = DTYPES[dtype]
    return Logistic(X.to(kind).to(ctx.device), y.to(kind).to(ctx.device),
                    torch.zeros(features + 1, dtype=kind, device=ctx.device), ctx.batch_size)
