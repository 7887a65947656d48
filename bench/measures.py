"""The MEASURES registry: observations a cell records beside its metrics.

A measure is a choice like any other (`trajectory`, or `{name: trajectory, max_points: 200}`):
its dataclass fields are its parameters. It is built per cell and may
- `observe(problem, step)` after every step (`every_step`) and at step 0,
- return values at every evaluation (`at_evaluation`), merged into that history entry,
- `finish` at the end; `result()` goes into the Result's summary under `measures.<name>`.
At evaluations and at the end it gets a `Probe`: the problem, the step, the step's batch and
an Objective with its own evaluation counts, so a measure's Hessian products are never
counted as training work. How a measure is drawn is a figure in `bench/report/figures.py`.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from bench.objective import Objective
from bench.registry import Registry
from problems.base import AnalyticProblem, Network

MEASURES = Registry("measure")


@dataclass
class Probe:
    """What a measure may look at: the problem at `step`, the batch of the latest step, and
    `objective(batch)`, an Objective counting into `counts` (the measure's, not training's)."""
    problem: Any
    step: int
    batch: Any
    loss_fn: Callable[[Any], torch.Tensor]
    counts: Counter = field(default_factory=Counter)

    def objective(self, batch: Any = None) -> Objective:
        return Objective(lambda: self.loss_fn(batch), self.problem.parameters(), self.counts)


class Measure:
    """The hooks, each doing nothing unless a measure overrides it."""
    every_step = False   # observe after every step (else at step 0 only)

    def unsuitable(self, problem) -> str | None:
        return None

    def observe(self, problem, step: int) -> None:
        return None

    def at_evaluation(self, probe: Probe) -> dict:
        return {}

    def finish(self, probe: Probe) -> None:
        return None

    def result(self) -> Any:
        return None


@MEASURES.register("trajectory")
@dataclass
class Trajectory(Measure):
    """The iterate after every step (2-D analytic problems), drawn over the contours of f.

    Besides the points it stores the problem's landscape (its formula and arguments, a few
    numbers) and minimiser, so the report draws the contours without rebuilding the problem.

    Args:
        max_points: iterates kept (the start included); later ones are dropped.
    """
    every_step = True
    max_points: int = 500
    points: list = field(default_factory=list, init=False, repr=False)
    landscape: dict | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        if self.max_points < 2:
            raise ValueError(f"max_points must be at least 2, got {self.max_points}")

    def unsuitable(self, problem) -> str | None:
        if not isinstance(problem, AnalyticProblem) or problem.dim != 2:
            return "trajectory needs a 2-dimensional analytic problem (it is drawn on contours)"
        return None

    def observe(self, problem, step: int) -> None:
        if len(self.points) < self.max_points:
            self.points.append(problem.x.detach().cpu().tolist())

    def finish(self, probe: Probe) -> None:
        problem = probe.problem
        star = problem.x_star
        self.landscape = {"f": problem.landscape(), "f_star": problem.f_star,
                          "x_star": None if star is None else star.detach().cpu().tolist()}

    def result(self) -> dict:
        return {"points": self.points, "landscape": self.landscape}


@MEASURES.register("activation_stats")
@dataclass
class ActivationStats(Measure):
    """Per-layer activation mean, std and histogram at initialisation and at the end.

    Taken on a fixed batch of training inputs, in eval mode (the notes' histogram grid).

    Args:
        bins: histogram bins per layer.
    """
    bins: int = 30
    start: list | None = field(default=None, init=False, repr=False)
    end: list | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        if self.bins < 1:
            raise ValueError(f"bins must be at least 1, got {self.bins}")

    def unsuitable(self, problem) -> str | None:
        if not isinstance(problem, Network) or not problem.activation_layers():
            return "activation_stats needs a network with hidden activation layers"
        return None

    def observe(self, problem, step: int) -> None:
        if step == 0:
            self.start = self.snapshot(problem)

    def finish(self, probe: Probe) -> None:
        self.end = self.snapshot(probe.problem)

    def result(self) -> dict:
        return {"init": self.start, "end": self.end}

    def snapshot(self, problem) -> list[dict]:
        outputs: list = []
        hooks = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach()))
                 for m in problem.activation_layers()]
        try:
            was_training = problem.model.training
            problem.model.eval()
            with torch.no_grad():
                problem.model(problem.probe_inputs())
            problem.model.train(was_training)
        finally:
            for h in hooks:
                h.remove()
        return [self._stats(out) for out in outputs]

    def _stats(self, out) -> dict | None:
        """Statistics of the finite activations (a diverged network has none: None)."""
        values = out.flatten().double()
        values = values[torch.isfinite(values)]
        if not len(values):
            return None
        lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            hi = lo + 1e-12
        counts = torch.histc(values, bins=self.bins, min=lo, max=hi)
        return {"mean": float(values.mean()), "std": float(values.std()), "range": [lo, hi],
                "counts": [int(c) for c in counts]}
