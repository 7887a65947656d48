"""The MEASURES registry: extra observations a cell records beside its metrics.

A measure is built per cell, sees the problem after every step, and returns plain data
that goes into the Result's summary under `measures.<name>`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from bench.registry import Registry
from problems.base import AnalyticProblem

MEASURES = Registry("measure")


@MEASURES.register("trajectory")
@dataclass
class Trajectory:
    """The iterate after every step (2-D analytic problems), for the contour plots."""
    every_step = True
    max_points: int = 500
    points: list = field(default_factory=list)

    @staticmethod
    def unsuitable(problem) -> str | None:
        if not isinstance(problem, AnalyticProblem) or problem.dim != 2:
            return "trajectory needs a 2-dimensional analytic problem (it is drawn on contours)"
        return None

    def observe(self, problem, step: int) -> None:
        if len(self.points) < self.max_points:
            self.points.append(problem.x.detach().cpu().tolist())

    def result(self) -> list:
        return self.points


@MEASURES.register("activation_stats")
@dataclass
class ActivationStats:
    """Per-layer activation mean, std and histogram on a fixed batch of training inputs, at
    initialisation and at the end of training (the notes' histogram grid)."""
    every_step = False   # observes step 0 only (the end comes through finish)
    bins: int = 30
    start: list | None = None
    end: list | None = None

    @staticmethod
    def unsuitable(problem) -> str | None:
        if not hasattr(problem, "activation_layers") or not problem.activation_layers():
            return "activation_stats needs a network with hidden activation layers"
        return None

    def observe(self, problem, step: int) -> None:
        if step == 0:
            self.start = self.snapshot(problem)

    def result(self) -> dict:
        return {"init": self.start, "end": self.end}

    def finish(self, problem) -> None:
        self.end = self.snapshot(problem)

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
