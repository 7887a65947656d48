"""The REGULARIZERS registry: explicit penalties λR(W) added to the training loss.

Penalties apply to weight tensors only (rank ≥ 2, nanoGPT's rule), never to biases or
norm scales; an analytic problem's single vector `x` counts as a weight, so the effect of a
penalty on a quadratic can be studied too.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.registry import Registry

REGULARIZERS = Registry("regularizer")


def _weights(params: list[torch.Tensor]) -> list[torch.Tensor]:
    ranked = [p for p in params if p.dim() >= 2]
    return ranked or list(params)


@REGULARIZERS.register("none")
@dataclass(frozen=True)
class NoPenalty:
    """No penalty."""

    def __call__(self, params: list[torch.Tensor]) -> torch.Tensor | None:
        return None


@REGULARIZERS.register("l2", sample={"strength": 1e-3})
@dataclass(frozen=True)
class L2:
    """λ ΣW² (weight decay through the loss)."""
    strength: float = 1e-4

    def __call__(self, params):
        return self.strength * sum((w * w).sum() for w in _weights(params))


@REGULARIZERS.register("l1", sample={"strength": 1e-3})
@dataclass(frozen=True)
class L1:
    """λ Σ|W|: drives weights to exactly zero."""
    strength: float = 1e-4

    def __call__(self, params):
        return self.strength * sum(w.abs().sum() for w in _weights(params))


@REGULARIZERS.register("elastic_net", sample={"strength": 1e-3})
@dataclass(frozen=True)
class ElasticNet:
    """λ Σ (βW² + |W|)."""
    strength: float = 1e-4
    beta: float = 1.0

    def __call__(self, params):
        return self.strength * sum((self.beta * w * w + w.abs()).sum() for w in _weights(params))
