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
        self.check()

    def check(self) -> None:
        """Range checks of the subclass's parameters (run at validation, before any step)."""

    def factor(self, step: int, total: int) -> float:
        ramp = min(1.0, (step + 1) / self.warmup) if self.warmup else 1.0
        return ramp * self.shape(max(0, step - self.warmup), max(1, total - self.warmup))

    def shape(self, step: int, total: int) -> float:
        return 1.0

    def cycle_ended(self, step: int, total: int) -> bool:
        """True when the weights after optimizer step `step` (1-based) end a cycle of a
        restarting schedule (the snapshots of a snapshot ensemble)."""
        return False


@SCHEDULES.register("constant")
@dataclass(frozen=True)
class Constant(Schedule):
    """The base learning rate throughout.

    Args:
        warmup: linear warm-up length in optimizer steps, ≥ 0 (0: none). For the first `warmup`
            steps the factor is multiplied by (t+1)/warmup; the schedule's own step counter
            starts after it and runs over the remaining total − warmup steps.
    """


@SCHEDULES.register("warmup")
@dataclass(frozen=True)
class Warmup(Schedule):
    """Linear warm-up over `warmup` steps, then constant.

    The same as `constant` with a warm-up; here the warm-up is on unless set to 0.

    Args:
        warmup: linear warm-up length in optimizer steps, ≥ 0 (0: none). For the first `warmup`
            steps the factor is multiplied by (t+1)/warmup; the schedule's own step counter
            starts after it and runs over the remaining total − warmup steps.
    """
    warmup: int = 100


@SCHEDULES.register("step", sample={"every": 10})
@dataclass(frozen=True)
class Step(Schedule):
    """Multiply by `gamma` every `every` steps (step decay).

    The notes' step decay: factor γ^⌊t/every⌋, t the step after warm-up.

    Args:
        warmup: linear warm-up length in optimizer steps, ≥ 0 (0: none). For the first `warmup`
            steps the factor is multiplied by (t+1)/warmup; the schedule's own step counter
            starts after it and runs over the remaining total − warmup steps.
        every: ≥ 1, the number of optimizer steps between two decays (not epochs: for a decay
            every k epochs use k × the problem's steps per epoch).
        gamma: γ > 0, the factor applied at each decay (e.g. 0.1 or 0.5); γ > 1 is accepted
            and grows the learning rate.
    """
    every: int = 100
    gamma: float = 0.1

    def check(self) -> None:
        _at_least(every=(self.every, 1))
        _positive(gamma=self.gamma)

    def shape(self, step: int, total: int) -> float:
        return self.gamma ** (step // self.every)


@SCHEDULES.register("exponential")
@dataclass(frozen=True)
class Exponential(Schedule):
    """gamma^step.

    The notes' exponential decay α = α₀e^(−kt), written with γ = e^(−k): factor γ^t, t the
    step after warm-up.

    Args:
        warmup: linear warm-up length in optimizer steps, ≥ 0 (0: none). For the first `warmup`
            steps the factor is multiplied by (t+1)/warmup; the schedule's own step counter
            starts after it and runs over the remaining total − warmup steps.
        gamma: γ > 0, the decay factor per optimizer step (not per epoch): γ < 1 decays, and
            0.99 is already ≈ 4e-5 after 1000 steps.
    """
    gamma: float = 0.99

    def check(self) -> None:
        _positive(gamma=self.gamma)

    def shape(self, step: int, total: int) -> float:
        return self.gamma ** step


@SCHEDULES.register("inverse_time")
@dataclass(frozen=True)
class InverseTime(Schedule):
    """1 / (1 + decay·step): the notes' 1/t decay.

    α = α₀ / (1 + kt), t the step after warm-up.

    Args:
        warmup: linear warm-up length in optimizer steps, ≥ 0 (0: none). For the first `warmup`
            steps the factor is multiplied by (t+1)/warmup; the schedule's own step counter
            starts after it and runs over the remaining total − warmup steps.
        decay: k ≥ 0, the decay rate per optimizer step; the factor halves at t = 1/k, and 0
            keeps the learning rate constant.
    """
    decay: float = 0.01

    def check(self) -> None:
        _at_least(decay=(self.decay, 0))

    def shape(self, step: int, total: int) -> float:
        return 1.0 / (1.0 + self.decay * step)


@SCHEDULES.register("cosine")
@dataclass(frozen=True)
class Cosine(Schedule):
    """Half a cosine from 1 down to `min_factor` over the whole budget.

    factor = m + (1 − m)·½(1 + cos(πt/T)), with T = total − warmup steps: the notes' cosine
    schedule (SGDR with a single period as long as the run).

    Args:
        warmup: linear warm-up length in optimizer steps, ≥ 0 (0: none). For the first `warmup`
            steps the factor is multiplied by (t+1)/warmup; the schedule's own step counter
            starts after it and runs over the remaining total − warmup steps.
        min_factor: m ≥ 0, the floor the factor reaches at the end of the budget, i.e. the
            final learning rate as a fraction of the base one (η_min/η_max); 0 anneals to 0.
    """
    min_factor: float = 0.0

    def check(self) -> None:
        _at_least(min_factor=(self.min_factor, 0))

    def shape(self, step: int, total: int) -> float:
        return _cosine(step / total, self.min_factor)


@SCHEDULES.register("sgdr", sample={"period": 10})
@dataclass(frozen=True)
class SGDR(Schedule):
    """Cosine with warm restarts: periods of `period`, `period·mult`, … steps.

    SGDR (Loshchilov & Hutter, in the notes with snapshot ensembles): within each period the
    factor falls as half a cosine from 1 to `min_factor`, then jumps back to 1. Unlike
    `cosine`, the periods do not depend on the budget.

    Args:
        warmup: linear warm-up length in optimizer steps, ≥ 0 (0: none). For the first `warmup`
            steps the factor is multiplied by (t+1)/warmup; the schedule's own step counter
            starts after it and runs over the remaining total − warmup steps.
        period: T₀ ≥ 1, the length of the first period in optimizer steps.
        mult: T_mult ≥ 1, the growth of each period over the previous one (1: equal periods;
            need not be an integer).
        min_factor: m ≥ 0, the factor at the end of each period (η_min/η_max).
    """
    period: int = 100
    mult: float = 1.0
    min_factor: float = 0.0

    def check(self) -> None:
        _at_least(period=(self.period, 1), mult=(self.mult, 1), min_factor=(self.min_factor, 0))

    def shape(self, step: int, total: int) -> float:
        """Closed form: with mult > 1 the k-th restart is at period·(multᵏ − 1)/(mult − 1)."""
        if self.mult == 1:
            start, length = (step // self.period) * self.period, self.period
        else:
            begin = lambda k: self.period * (self.mult ** k - 1) / (self.mult - 1)  # noqa: E731
            k = math.floor(math.log(1 + step * (self.mult - 1) / self.period, self.mult))
            k += (begin(k + 1) <= step) - (begin(k) > step)   # rounding at a boundary
            start, length = begin(k), self.period * self.mult ** k
        return _cosine((step - start) / length, self.min_factor)

    def cycle_ended(self, step: int, total: int) -> bool:
        t = step - self.warmup   # the next step's position: a restart jumps back up
        return t >= 1 and self.shape(t, total) > self.shape(t - 1, total)


@SCHEDULES.register("cyclic", sample={"period": 10})
@dataclass(frozen=True)
class Cyclic(Schedule):
    """Triangular cycles between 1 and `max_factor` with a full period of `period` steps.

    The notes' cyclic learning rate (Smith's triangular policy): each cycle rises linearly
    from the base learning rate to `max_factor` times it at mid-period, then falls back.

    Args:
        warmup: linear warm-up length in optimizer steps, ≥ 0 (0: none). For the first `warmup`
            steps the factor is multiplied by (t+1)/warmup; the schedule's own step counter
            starts after it and runs over the remaining total − warmup steps.
        period: ≥ 1, the length of a whole up-and-down cycle in optimizer steps (twice what
            Smith calls the step size).
        max_factor: ≥ 0, the peak learning rate as a multiple of the base one (max_lr/base_lr);
            the base lr is the cycle's floor. Below 1 the cycle dips under the base instead.
    """
    period: int = 100
    max_factor: float = 10.0

    def check(self) -> None:
        _at_least(period=(self.period, 1), max_factor=(self.max_factor, 0))

    def shape(self, step: int, total: int) -> float:
        phase = (step % self.period) / self.period
        tri = 1 - abs(2 * phase - 1)
        return 1 + (self.max_factor - 1) * tri

    def cycle_ended(self, step: int, total: int) -> bool:
        t = step - self.warmup   # back at the cycle's floor
        return t >= 1 and t % self.period == 0


def _cosine(progress: float, floor: float) -> float:
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _at_least(**bounds: tuple) -> None:
    for name, (value, low) in bounds.items():
        if not (math.isfinite(value) and value >= low):
            raise ValueError(f"{name} must be at least {low}, got {value}")


def _positive(**values: float) -> None:
    for name, value in values.items():
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be positive, got {value}")
