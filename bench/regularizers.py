"""The REGULARIZERS registry: what a cell adds to the training loop to generalise better.

A regularizer is a set of hooks on the one training loop (`bench/train.py`), each doing
nothing unless the regularizer overrides it: it may change the model once it is built
(`build`), the batch before the forward pass (`on_batch`), add a penalty to the loss
(`penalty`), change the weights after each step (`after_step`) and stop the run after an
evaluation (`should_stop`). Its dataclass fields are its parameters.

Penalties apply to weight tensors only (rank ≥ 2, nanoGPT's rule), never to biases or norm
scales; an analytic problem's single vector `x` counts as a weight, so the effect of a
penalty on a quadratic can be studied too.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.registry import Registry

REGULARIZERS = Registry("regularizer")


class Regularizer:
    """The hooks; a subclass overrides the ones it needs."""

    def unsuitable(self, problem) -> str | None:
        return None

    def build(self, problem, generator: torch.Generator) -> None:
        """Once, after the model is built and initialised (e.g. insert dropout layers)."""

    def on_batch(self, inputs, targets, generator: torch.Generator):
        """The training batch before the forward pass (e.g. noise, augmentation, mixup)."""
        return inputs, targets

    def penalty(self, params: list[torch.Tensor]) -> torch.Tensor | None:
        """A term added to the training loss, or None."""
        return None

    def after_step(self, problem) -> None:
        """After every optimizer step (e.g. a max-norm projection of the weights)."""

    def should_stop(self, history: list[dict]) -> bool:
        """After every evaluation: True ends the run (e.g. early stopping)."""
        return False

    def alters_loss(self, params: list[torch.Tensor]) -> bool:
        """True when the training loss is not the problem's own (so a closed-form Hessian of
        the problem does not apply)."""
        return (type(self).on_batch is not Regularizer.on_batch
                or self.penalty(params) is not None)


def _weights(params: list[torch.Tensor]) -> list[torch.Tensor]:
    ranked = [p for p in params if p.dim() >= 2]
    return ranked or list(params)


@REGULARIZERS.register("none")
@dataclass(frozen=True)
class NoRegularizer(Regularizer):
    """No regularization."""


@REGULARIZERS.register("l2", sample={"strength": 1e-3})
@dataclass(frozen=True)
class L2(Regularizer):
    """λ ΣW² added to the loss (weight decay through the gradient).

    Args:
        strength: λ ≥ 0, the penalty's weight.
    """
    strength: float = 1e-4

    def penalty(self, params):
        return self.strength * sum((w * w).sum() for w in _weights(params))


@REGULARIZERS.register("l1", sample={"strength": 1e-3})
@dataclass(frozen=True)
class L1(Regularizer):
    """λ Σ|W| added to the loss: drives weights to exactly zero.

    Args:
        strength: λ ≥ 0, the penalty's weight.
    """
    strength: float = 1e-4

    def penalty(self, params):
        return self.strength * sum(w.abs().sum() for w in _weights(params))


@REGULARIZERS.register("elastic_net", sample={"strength": 1e-3})
@dataclass(frozen=True)
class ElasticNet(Regularizer):
    """λ Σ (βW² + |W|) added to the loss.

    Args:
        strength: λ ≥ 0, the weight of the whole penalty.
        beta: β ≥ 0, the weight of the squared term against the absolute one.
    """
    strength: float = 1e-4
    beta: float = 1.0

    def penalty(self, params):
        return self.strength * sum((self.beta * w * w + w.abs()).sum() for w in _weights(params))
