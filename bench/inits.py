"""The INITS registry: how a network's weights start (the lecture notes' initialisation study).

Each init is applied to every Linear and Conv layer of the problem's model, drawing from the
cell's generator; biases start at zero except under `default`, which keeps torch's own layer
initialisation. Fan-based schemes take the gain of the problem's activation
(torch.nn.init.calculate_gain), so `he_*` is right for ReLU and `xavier_*` for tanh.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.registry import Registry
from problems.base import Network

INITS = Registry("init")
GAIN_NAMES = {"relu": "relu", "leaky_relu": "leaky_relu", "tanh": "tanh", "sigmoid": "sigmoid",
              "elu": "relu", "maxout": "relu"}   # ELU and maxout: ReLU's gain, as is usual


def weight_layers(problem: Network) -> list[nn.Module]:
    return [m for m in problem.model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def nonlinearity(problem: Network) -> str:
    return GAIN_NAMES.get(problem.activation, "relu")


@dataclass(frozen=True)
class _Init:
    def unsuitable(self, problem) -> str | None:
        if not isinstance(problem, Network):
            return "it has no layers to initialise (leave 'init' out: it is 'default')"
        return None

    def __call__(self, problem, generator: torch.Generator) -> None:
        with torch.no_grad():
            for layer in weight_layers(problem):
                # drawn on the CPU from the cell's (CPU) generator, then copied to the device:
                # the same weights on every device, and CUDA refuses a CPU generator
                weight = torch.empty(layer.weight.shape, dtype=layer.weight.dtype)
                self.weight(weight, nonlinearity(problem), generator)
                layer.weight.copy_(weight)
                if layer.bias is not None:
                    layer.bias.zero_()

    def weight(self, w: torch.Tensor, activation: str, generator: torch.Generator) -> None:
        raise NotImplementedError


@INITS.register("default")
@dataclass(frozen=True)
class Default:
    """Keep the problem's own initialisation (torch's layer defaults for networks)."""

    def __call__(self, problem, generator) -> None:
        return None


@INITS.register("zeros")
@dataclass(frozen=True)
class Zeros(_Init):
    """All weights 0: every unit of a layer stays identical (symmetry is never broken)."""

    def weight(self, w, activation, generator):
        w.zero_()


@INITS.register("normal", sample={"std": 0.01})
@dataclass(frozen=True)
class Normal(_Init):
    """N(0, std²): 0.01 is the notes' "small random" (vanishes), 1.0 their "large" (saturates).

    Args:
        std: the standard deviation of every weight (> 0).
    """
    std: float = 0.01

    def weight(self, w, activation, generator):
        nn.init.normal_(w, 0.0, self.std, generator=generator)


@INITS.register("uniform", sample={"a": 0.05})
@dataclass(frozen=True)
class Uniform(_Init):
    """U(−a, a).

    Args:
        a: the half-width of the interval (> 0).
    """
    a: float = 0.05

    def weight(self, w, activation, generator):
        nn.init.uniform_(w, -self.a, self.a, generator=generator)


@INITS.register("lecun")
@dataclass(frozen=True)
class LeCun(_Init):
    """N(0, 1/fan_in): the notes' calibrated randn/√n."""

    def weight(self, w, activation, generator):
        nn.init.kaiming_normal_(w, nonlinearity="linear", generator=generator)


@INITS.register("xavier_normal")
@dataclass(frozen=True)
class XavierNormal(_Init):
    """Glorot: Var(W) = gain²·2/(fan_in + fan_out)."""

    def weight(self, w, activation, generator):
        nn.init.xavier_normal_(w, gain=nn.init.calculate_gain(activation), generator=generator)


@INITS.register("xavier_uniform")
@dataclass(frozen=True)
class XavierUniform(_Init):
    """Glorot, uniform: U(±gain·√(6/(fan_in + fan_out)))."""

    def weight(self, w, activation, generator):
        nn.init.xavier_uniform_(w, gain=nn.init.calculate_gain(activation), generator=generator)


@INITS.register("he_normal")
@dataclass(frozen=True)
class HeNormal(_Init):
    """He/Kaiming: Var(W) = gain²/fan_in (2/fan_in for ReLU)."""

    def weight(self, w, activation, generator):
        nn.init.kaiming_normal_(w, nonlinearity=activation, generator=generator)


@INITS.register("he_uniform")
@dataclass(frozen=True)
class HeUniform(_Init):
    """He/Kaiming, uniform: U(±gain·√(3/fan_in))."""

    def weight(self, w, activation, generator):
        nn.init.kaiming_uniform_(w, nonlinearity=activation, generator=generator)


@INITS.register("orthogonal")
@dataclass(frozen=True)
class Orthogonal(_Init):
    """A (semi-)orthogonal matrix scaled by the activation's gain (Saxe et al.)."""

    def weight(self, w, activation, generator):
        nn.init.orthogonal_(w, gain=nn.init.calculate_gain(activation), generator=generator)
