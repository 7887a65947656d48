"""The MEASURES registry: extra observations a cell records beside its metrics.

A measure is built per cell, sees the problem after every step, and returns plain data
that goes into the Result's summary under `measures.<name>`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from bench.registry import Registry
from problems.base import AnalyticProblem

MEASURES = Registry("measure")


@MEASURES.register("trajectory")
@dataclass
class Trajectory:
    """The iterate after every step (analytic problems of dimension ≤ 3), for contour plots."""
    max_points: int = 500
    points: list = field(default_factory=list)

    @staticmethod
    def unsuitable(problem) -> str | None:
        if not isinstance(problem, AnalyticProblem) or problem.dim > 3:
            return "trajectory needs an analytic problem of dimension 3 or less"
        return None

    def observe(self, problem, step: int) -> None:
        if len(self.points) < self.max_points:
            self.points.append(problem.x.detach().cpu().tolist())

    def result(self) -> list:
        return self.points
