"""The REGULARIZERS registry: what a cell adds to the training loop to generalise better.

A regularizer is a set of hooks on the one training loop (`bench/train.py`), each doing
nothing unless the regularizer overrides it: it may change the model once it is built
(`build`: dropout layers, DropConnect and weight-noise parametrizations), the batch before
the forward pass (`on_batch`: input noise, mixup, augmentation), the loss on the batch's
outputs (`criterion`: label smoothing, mixup's two targets), add a penalty (`penalty`),
change the weights after each step (`after_step`: max-norm), look at every evaluation
(`on_evaluation`) and stop the run after one (`should_stop`), putting back the weights it
prefers (`restore`: early stopping). Its dataclass fields are its parameters. A list of
choices is one `combined` regularizer whose parts' hooks run in order.

Penalties apply to weight tensors only (rank ≥ 2, nanoGPT's rule), never to biases or norm
scales; an analytic problem's single vector `x` counts as a weight, so the effect of a
penalty on a quadratic can be studied too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from bench.registry import Registry

REGULARIZERS = Registry("regularizer")


class Regularizer:
    """The hooks; a subclass overrides the ones it needs."""
    mixes_targets = False   # on_batch returns targets only its own criterion understands

    def unsuitable(self, problem) -> str | None:
        return None

    def build(self, problem, generator: torch.Generator) -> None:
        """Once, after the model is built and initialised (e.g. insert dropout layers)."""

    def on_batch(self, inputs, targets, generator: torch.Generator):
        """The training batch before the forward pass (e.g. noise, augmentation, mixup)."""
        return inputs, targets

    def criterion(self, criterion, outputs, targets) -> torch.Tensor:
        """The training loss of the batch's outputs (e.g. smoothed or mixed targets)."""
        return criterion(outputs, targets)

    def penalty(self, params: list[torch.Tensor]) -> torch.Tensor | None:
        """A term added to the training loss, or None."""
        return None

    def after_step(self, problem) -> None:
        """After every optimizer step (e.g. a max-norm projection of the weights)."""

    def on_evaluation(self, problem, entry: dict) -> None:
        """After every evaluation, with its history entry (e.g. keep the best weights)."""

    def should_stop(self, history: list[dict]) -> bool:
        """After every evaluation: True ends the run (e.g. early stopping)."""
        return False

    def restore(self, problem) -> int | None:
        """When should_stop ended the run: put back preferred weights; their step, or None."""
        return None

    def alters_loss(self, params: list[torch.Tensor]) -> bool:
        """True when the training loss is not the problem's own (so a closed-form Hessian of
        the problem does not apply)."""
        return (type(self).on_batch is not Regularizer.on_batch
                or type(self).criterion is not Regularizer.criterion
                or type(self).build is not Regularizer.build
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


# ---- on the model ----------------------------------------------------------------------------
def _network(problem, what: str) -> str | None:
    if not isinstance(getattr(problem, "model", None), nn.Module):
        return f"{what} changes a network's layers; this problem has none"
    return None


def _weighted_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def _hidden_layers(model: nn.Module) -> list[nn.Module]:
    """Every linear and convolutional layer but the last (the class scores)."""
    return _weighted_layers(model)[:-1]


def _weight_of(layer: nn.Module) -> torch.Tensor:
    """A layer's weight parameter itself (under a parametrization, the original)."""
    if parametrize.is_parametrized(layer, "weight"):
        return layer.parametrizations.weight.original
    return layer.weight


def _replace(model: nn.Module, old: nn.Module, new: nn.Module) -> None:
    """Put `new` where `old` is (found first, then set: `new` may contain `old`)."""
    places = [(parent, name) for parent in model.modules()
              for name, child in parent.named_children() if child is old]
    for parent, name in places:
        setattr(parent, name, new)


class ScaledDropout(nn.Module):
    """The notes' dropout without inversion: units are dropped with probability p while
    training and every activation is multiplied by 1 − p at test time."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.training:
            return F.dropout(x, self.p, training=True) * (1 - self.p)
        return x * (1 - self.p)


def _probability(name: str, p: float) -> None:
    if not 0 <= p < 1:
        raise ValueError(f"{name} p must be in [0, 1), got {p}")


@REGULARIZERS.register("dropout", sample={"p": 0.5})
@dataclass(frozen=True)
class Dropout(Regularizer):
    """Dropout after every hidden activation (Srivastava et al. 2014).

    Args:
        p: the probability that a unit is dropped, 0 ≤ p < 1.
        inverted: true: survivors are scaled by 1/(1 − p) while training and the test-time
            network is unchanged (torch's nn.Dropout); false: the notes' original form, which
            multiplies activations by 1 − p at test time instead. Both have the same expected
            activation.
    """
    p: float = 0.5
    inverted: bool = True

    def __post_init__(self):
        _probability("dropout", self.p)

    def unsuitable(self, problem) -> str | None:
        if _network(problem, "dropout") or not problem.activation_layers():
            return "dropout needs a network with hidden activation layers"
        return None

    def build(self, problem, generator) -> None:
        for act in problem.activation_layers():
            drop = nn.Dropout(self.p) if self.inverted else ScaledDropout(self.p)
            _replace(problem.model, act, nn.Sequential(act, drop))


class _MaskedWeight(nn.Module):
    """DropConnect's parametrization: each weight dropped with probability p while training
    (survivors scaled by 1/(1 − p), so the test-time weight is the expectation)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, weight):
        return F.dropout(weight, self.p, training=self.training)


class _NoisyWeight(nn.Module):
    """Gaussian noise of standard deviation std on the weight, while training only."""

    def __init__(self, std: float):
        super().__init__()
        self.std = std

    def forward(self, weight):
        return weight + self.std * torch.randn_like(weight) if self.training else weight


@REGULARIZERS.register("dropconnect", sample={"p": 0.5})
@dataclass(frozen=True)
class DropConnect(Regularizer):
    """DropConnect (Wan et al. 2013): random masks on the weights of the hidden layers.

    A fresh mask per forward pass while training (a torch parametrization of each hidden
    layer's weight); the output layer is left alone.

    Args:
        p: the probability that a weight is dropped, 0 ≤ p < 1.
    """
    p: float = 0.5

    def __post_init__(self):
        _probability("dropconnect", self.p)

    def unsuitable(self, problem) -> str | None:
        if _network(problem, "dropconnect") or not _hidden_layers(problem.model):
            return "dropconnect needs a network with hidden layers"
        return None

    def build(self, problem, generator) -> None:
        for layer in _hidden_layers(problem.model):
            parametrize.register_parametrization(layer, "weight", _MaskedWeight(self.p))


@REGULARIZERS.register("weight_noise", sample={"std": 0.01})
@dataclass(frozen=True)
class WeightNoise(Regularizer):
    """Gaussian noise on every weight for the forward pass, while training only.

    Args:
        std: the noise's standard deviation, > 0.
    """
    std: float = 0.01

    def __post_init__(self):
        if not self.std > 0:
            raise ValueError(f"weight_noise std must be > 0, got {self.std}")

    def unsuitable(self, problem) -> str | None:
        return _network(problem, "weight_noise")

    def build(self, problem, generator) -> None:
        for layer in _weighted_layers(problem.model):
            parametrize.register_parametrization(layer, "weight", _NoisyWeight(self.std))


@REGULARIZERS.register("max_norm", sample={"c": 3.0})
@dataclass(frozen=True)
class MaxNorm(Regularizer):
    """After every step, each unit's incoming weight vector is projected onto the ball of
    radius c (the notes' max-norm constraint, used with dropout by Srivastava et al.).

    Args:
        c: the largest norm of a unit's incoming weights (a row of a linear layer, an output
            channel of a convolution), > 0.
    """
    c: float = 3.0

    def __post_init__(self):
        if not self.c > 0:
            raise ValueError(f"max_norm c must be > 0, got {self.c}")

    def unsuitable(self, problem) -> str | None:
        return _network(problem, "max_norm")

    def after_step(self, problem) -> None:
        with torch.no_grad():
            for layer in _weighted_layers(problem.model):
                weight = _weight_of(layer)
                weight.copy_(torch.renorm(weight, p=2, dim=0, maxnorm=self.c))


# ---- on the batch and the targets ------------------------------------------------------------
def _classifier(problem, what: str) -> str | None:
    if _network(problem, what) or getattr(problem, "loss_kind", None) is None:
        return f"{what} needs a classification network (class labels as targets)"
    return None


@REGULARIZERS.register("input_noise", sample={"std": 0.1})
@dataclass(frozen=True)
class InputNoise(Regularizer):
    """Gaussian noise added to the training inputs (never to evaluation inputs).

    Args:
        std: the noise's standard deviation, > 0, in the units of the normalised inputs.
    """
    std: float = 0.1

    def __post_init__(self):
        if not self.std > 0:
            raise ValueError(f"input_noise std must be > 0, got {self.std}")

    def unsuitable(self, problem) -> str | None:
        return _network(problem, "input_noise")

    def on_batch(self, inputs, targets, generator):
        noise = torch.randn(inputs.shape, generator=generator, dtype=inputs.dtype)
        return inputs + self.std * noise.to(inputs.device), targets


@REGULARIZERS.register("label_smoothing", sample={"eps": 0.1})
@dataclass(frozen=True)
class LabelSmoothing(Regularizer):
    """Cross-entropy against targets smoothed to (1 − ε)·one-hot + ε/K (Szegedy et al. 2016).

    Args:
        eps: ε, 0 < ε < 1, the probability mass spread evenly over the K classes.
    """
    eps: float = 0.1

    def __post_init__(self):
        if not 0 < self.eps < 1:
            raise ValueError(f"label_smoothing eps must be in (0, 1), got {self.eps}")

    def unsuitable(self, problem) -> str | None:
        if _classifier(problem, "label_smoothing") or problem.loss_kind != "cross_entropy":
            return "label_smoothing needs a classification network with loss: cross_entropy"
        return None

    def criterion(self, criterion, outputs, targets):
        return F.cross_entropy(outputs, targets, label_smoothing=self.eps)


@REGULARIZERS.register("mixup", sample={"alpha": 0.2})
@dataclass(frozen=True)
class Mixup(Regularizer):
    """mixup (Zhang et al. 2018): train on λx + (1 − λ)x' with loss λ·ℓ(y) + (1 − λ)·ℓ(y').

    λ ~ Beta(α, α) once per batch, drawn from the cell's generator; x' is the batch in a
    random order. Evaluation sees clean inputs.

    Args:
        alpha: α > 0 of the Beta distribution (small α: λ near 0 or 1, little mixing).
    """
    alpha: float = 0.2
    mixes_targets = True

    def __post_init__(self):
        if not self.alpha > 0:
            raise ValueError(f"mixup alpha must be > 0, got {self.alpha}")

    def unsuitable(self, problem) -> str | None:
        return _classifier(problem, "mixup")

    def on_batch(self, inputs, targets, generator):
        lam = beta_sample(self.alpha, generator)
        order = torch.randperm(len(inputs), generator=generator).to(inputs.device)
        return lam * inputs + (1 - lam) * inputs[order], (targets, targets[order], lam)

    def criterion(self, criterion, outputs, targets):
        first, second, lam = targets
        return lam * criterion(outputs, first) + (1 - lam) * criterion(outputs, second)


def beta_sample(alpha: float, generator: torch.Generator) -> float:
    """λ ~ Beta(α, α) from two Gamma draws of torch's seeded generator (torch.distributions
    cannot take a generator)."""
    a = torch._standard_gamma(torch.full((2,), alpha, dtype=torch.float64), generator=generator)
    return float(a[0] / a.sum())


# ---- on evaluation ---------------------------------------------------------------------------
@REGULARIZERS.register("early_stopping", sample={"metric": "train_loss", "patience": 2})
@dataclass
class EarlyStopping(Regularizer):
    """Stop when `metric` has not improved for `patience` evaluations, and restore the best
    weights: the run's last history entry then holds the restored weights' metrics (test
    accuracy included) and the summary `stopped_at` and `restored_step`.

    Args:
        metric: the metric watched (val_loss needs the problem's `validation` split; any
            metric of the problem is accepted).
        patience: evaluations without improvement before stopping, ≥ 1.
        min_delta: the least change that counts as an improvement, ≥ 0.
    """
    metric: str = "val_loss"
    patience: int = 5
    min_delta: float = 0.0
    best: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.patience < 1 or not self.min_delta >= 0:
            raise ValueError("early_stopping needs patience >= 1 and min_delta >= 0")

    def unsuitable(self, problem) -> str | None:
        names = problem.metric_names()
        if self.metric not in names:
            hint = " (val_ metrics need the problem's `validation` split)" \
                if self.metric.startswith("val_") else ""
            return f"early_stopping metric '{self.metric}' is not recorded{hint}; " \
                   f"allowed: {', '.join(names)}"
        return None

    def on_evaluation(self, problem, entry: dict) -> None:
        value = entry.get(self.metric)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        from bench.cell import maximized
        sign = 1 if maximized(self.metric) else -1
        if not self.best or sign * (value - self.best["value"]) > self.min_delta:
            from bench.measures import state_of
            self.best.update(value=value, step=entry["step"], state=state_of(problem),
                             evaluations=0)
        else:
            self.best["evaluations"] += 1

    def should_stop(self, history: list[dict]) -> bool:
        return bool(self.best) and self.best["evaluations"] >= self.patience

    def restore(self, problem) -> int | None:
        from bench.measures import load_state
        load_state(problem, self.best["state"])
        return self.best["step"]


# ---- several at once ---------------------------------------------------------------------------
class Combined(Regularizer):
    """Several regularizers in one cell (a list in the spec): hooks run in the list's order;
    penalties add up; the first that asks to stop (and restore) decides."""

    def __init__(self, parts: list):
        self.parts = parts

    def unsuitable(self, problem) -> str | None:
        return next((r for r in (p.unsuitable(problem) for p in self.parts) if r), None)

    def build(self, problem, generator) -> None:
        for part in self.parts:
            part.build(problem, generator)

    def on_batch(self, inputs, targets, generator):
        for part in self.parts:
            inputs, targets = part.on_batch(inputs, targets, generator)
        return inputs, targets

    def criterion(self, criterion, outputs, targets):
        # parts that split the targets (mixup) are outermost, so label smoothing inside
        # them sees plain labels; otherwise the first part's criterion is outermost
        for part in sorted(reversed(self.parts), key=lambda p: p.mixes_targets):
            criterion = _bound(part, criterion)
        return criterion(outputs, targets)

    def penalty(self, params):
        terms = [t for t in (p.penalty(params) for p in self.parts) if t is not None]
        return sum(terms) if terms else None

    def after_step(self, problem) -> None:
        for part in self.parts:
            part.after_step(problem)

    def on_evaluation(self, problem, entry) -> None:
        for part in self.parts:
            part.on_evaluation(problem, entry)

    def should_stop(self, history) -> bool:
        return any(p.should_stop(history) for p in self.parts)

    def restore(self, problem) -> int | None:
        stopping = [p for p in self.parts if p.should_stop([])]
        return stopping[0].restore(problem) if stopping else None

    def alters_loss(self, params) -> bool:
        return any(p.alters_loss(params) for p in self.parts)


def _bound(part: Regularizer, inner):
    return lambda outputs, targets: part.criterion(inner, outputs, targets)


@REGULARIZERS.register("combined", unsuitable=lambda problem, parts: combined(
    parts).unsuitable(problem))
def combined(parts: list[dict]) -> Combined:
    """Several regularizers in one cell; written in a spec as a list of choices
    (`regularizer: [none, [l2, {name: dropout, p: 0.5}]]`: the second cell has both).

    Args:
        parts: the regularizers, {name, params} each; their hooks run in this order.
    """
    if not parts or any(p.get("name") == "combined" for p in parts):
        raise ValueError("a combined regularizer takes a non-empty list of other regularizers")
    return Combined([REGULARIZERS.get(p["name"]).factory(**p.get("params", {}))
                     for p in parts])


# regularizers kept in their own modules register themselves on import
from bench import augment  # noqa: E402,F401
