"""Learning-rate schedules in closed form: factor(step, total) multiplies each group's base lr.

The training loop writes `base_lr * factor` into every param group before each step (as
nanoGPT's get_lr does) rather than wrapping the optimizer. Every schedule takes `warmup`
(linear warm-up steps), so warm-up composes with all of them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from bench.registry import Registry

SCHEDULES = Registry("schedule")


@dataclass(frozen=True)
class Schedule:
    warmup: int = 0

    def __post_init__(self):
        if self.warmup < 0:
            raise ValueError(f"warmup must be at least 0 steps, got {self.warmup}")

    def factor(self, step: int, total: int) -> float:
        ramp = min(1.0, (step + 1) / self.warmup) if self.warmup else 1.0
        return ramp * self.shape(max(0, step - self.warmup), max(1, total - self.warmup))

    def shape(self, step: int, total: int) -> float:
        return 1.0


@SCHEDULES.register("constant")
@dataclass(frozen=True)
class Constant(Schedule):
    """The base learning rate throughout."""


@SCHEDULES.register("warmup")
@dataclass(frozen=True)
class Warmup(Schedule):
    """Linear warm-up over `warmup` steps, then constant."""
    warmup: int = 100


@SCHEDULES.register("step", sample={"every": 10})
@dataclass(frozen=True)
class Step(Schedule):
    """Multiply by `gamma` every `every` steps (step decay)."""
    every: int = 100
    gamma: float = 0.1

    def shape(self, step: int, total: int) -> float:
        if self.every < 1:
            raise ValueError("every must be at least 1")
        return self.gamma ** (step // self.every)


@SCHEDULES.register("exponential")
@dataclass(frozen=True)
class Exponential(Schedule):
    """gamma^step."""
    gamma: float = 0.99

    def shape(self, step: int, total: int) -> float:
        return self.gamma ** step


@SCHEDULES.register("inverse_time")
@dataclass(frozen=True)
class InverseTime(Schedule):
    """1 / (1 + decay·step): the notes' 1/t decay."""
    decay: float = 0.01

    def shape(self, step: int, total: int) -> float:
        return 1.0 / (1.0 + self.decay * step)


@SCHEDULES.register("cosine")
@dataclass(frozen=True)
class Cosine(Schedule):
    """Half a cosine from 1 down to `min_factor` over the whole budget."""
    min_factor: float = 0.0

    def shape(self, step: int, total: int) -> float:
        return _cosine(step / total, self.min_factor)


@SCHEDULES.register("sgdr", sample={"period": 10})
@dataclass(frozen=True)
class SGDR(Schedule):
    """Cosine with warm restarts: periods of `period`, `period·mult`, … steps."""
    period: int = 100
    mult: float = 1.0
    min_factor: float = 0.0

    def shape(self, step: int, total: int) -> float:
        length, start = float(self.period), 0.0
        while step >= start + length:
            start, length = start + length, length * self.mult
        return _cosine((step - start) / length, self.min_factor)


@SCHEDULES.register("cyclic", sample={"period": 10})
@dataclass(frozen=True)
class Cyclic(Schedule):
    """Triangular cycles between 1 and `max_factor` with a full period of `period` steps."""
    period: int = 100
    max_factor: float = 10.0

    def shape(self, step: int, total: int) -> float:
        phase = (step % self.period) / self.period
        tri = 1 - abs(2 * phase - 1)
        return 1 + (self.max_factor - 1) * tri


def _cosine(progress: float, floor: float) -> float:
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
