"""The OPTIMIZERS registry: torch.optim algorithms under the lecture notes' names.

Nothing here re-implements a torch.optim update. Factories take the parameters first and
then exactly the keys a spec may set. Any `torch.optim.Optimizer` subclass can also be named
by import path (`torch.optim.NAdam`); its constructor signature is then the schema.
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

import torch

from bench.registry import ChoiceError, Entry, Registry

OPTIMIZERS = Registry("optimizer")
_reg = OPTIMIZERS.register


@_reg("sgd", skip_params=1, sample={"lr": 0.1})
def sgd(params, lr: float = 0.01, weight_decay: float = 0.0):
    """Gradient descent: x ← x − α∇f(x)."""
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)


@_reg("momentum", skip_params=1, sample={"lr": 0.05, "momentum": 0.9})
def momentum(params, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0):
    """Heavy ball: v ← ρv + ∇f(x); x ← x − αv."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


@_reg("nesterov", skip_params=1, sample={"lr": 0.05, "momentum": 0.9})
def nesterov(params, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0):
    """Nesterov momentum in torch's change-of-variables form (the iterate is x̃ = x + ρv)."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True,
                           weight_decay=weight_decay)


@_reg("adagrad", skip_params=1, sample={"lr": 0.1})
def adagrad(params, lr: float = 0.01, eps: float = 1e-7, weight_decay: float = 0.0):
    """s ← s + g²; x ← x − α g / (√s + ε), ε = 1e-7 as in the notes."""
    return torch.optim.Adagrad(params, lr=lr, eps=eps, weight_decay=weight_decay)


@_reg("rmsprop", skip_params=1, sample={"lr": 0.01, "alpha": 0.9})
def rmsprop(params, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
            momentum: float = 0.0, weight_decay: float = 0.0):
    """s ← αs + (1−α)g²; x ← x − η g / (√s + ε)  (α is the notes' decay rate)."""
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=eps, momentum=momentum,
                               weight_decay=weight_decay)


@_reg("adam", skip_params=1, sample={"lr": 0.01})
def adam(params, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
         eps: float = 1e-8, weight_decay: float = 0.0):
    """Adam with bias correction: x ← x − α m̂ / (√v̂ + ε)."""
    return torch.optim.Adam(params, lr=lr, betas=(beta1, beta2), eps=eps,
                            weight_decay=weight_decay)


@_reg("adamw", skip_params=1, sample={"lr": 0.01, "weight_decay": 0.1})
def adamw(params, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
          eps: float = 1e-8, weight_decay: float = 1e-2):
    """Adam with decoupled weight decay: x ← x(1 − αλ) before the Adam step."""
    return torch.optim.AdamW(params, lr=lr, betas=(beta1, beta2), eps=eps,
                             weight_decay=weight_decay)


@_reg("adadelta", skip_params=1, sample={})
def adadelta(params, rho: float = 0.9, eps: float = 1e-6, lr: float = 1.0,
             weight_decay: float = 0.0):
    """Δθ = −(RMS[Δθ]ₜ₋₁ / RMS[g]ₜ) g: no learning rate (lr = 1 scales the step, as in torch)."""
    return torch.optim.Adadelta(params, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay)


def is_import_path(name: str) -> bool:
    return "." in name


def lookup(name: str) -> Entry:
    """A registered optimizer, or a torch.optim.Optimizer subclass named by import path."""
    if not is_import_path(name):
        return OPTIMIZERS.get(name)
    module_name, _, attr = name.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ChoiceError(f"cannot import optimizer '{name}': {exc}") from None
    if not (inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer)):
        raise ChoiceError(f"'{name}' is not a torch.optim.Optimizer subclass")
    return Entry(name, obj, about=f"{name} by import path", skip_params=1)


def build(name: str, params: list[torch.Tensor], options: dict) -> torch.optim.Optimizer:
    factory: Callable = lookup(name).factory
    return factory(params, **options)
