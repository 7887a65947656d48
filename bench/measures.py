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

import numpy as np
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


# ---- curvature: the geometry of the minimum (sharp against flat) ---------------------------
def evaluation_batch(problem, samples: int):
    """A fixed, seeded subset of `samples` training examples (the same at every evaluation
    and for every cell of a problem); None for problems without data (their loss is f)."""
    if problem.train_size is None:
        return None
    order = torch.randperm(problem.train_size, generator=torch.Generator().manual_seed(0))
    device = problem.parameters()[0].device
    return order[:min(samples, problem.train_size)].to(device)


def loss_gradient(probe: Probe, samples: int):
    """An Objective on the evaluation subset and ∇f with its graph, for Hessian products."""
    objective = probe.objective(evaluation_batch(probe.problem, samples))
    with torch.enable_grad():
        loss = objective.loss(graph=True)
        grad = objective.gradient(loss, create_graph=True)
    return objective, grad


@MEASURES.register("sharpness")
@dataclass
class Sharpness(Measure):
    """The top eigenvalues of the training loss's Hessian, by Lanczos on Hessian products.

    scipy's `eigsh` (ARPACK) runs on a LinearOperator whose products are double-backward
    Hessian-vector products, started from a seeded vector so the result is reproducible.
    Records `sharpness` (the largest) and, for k > 1, `sharpness_top_k` (largest first).

    Args:
        k: how many of the largest eigenvalues (≥ 1, fewer than the parameters).
        samples: training examples the Hessian is taken on (a fixed, seeded subset).
        tol: eigsh's relative accuracy (0: machine precision).
        max_iter: eigsh's cap on Lanczos restarts; unconverged eigenvalues are recorded
            as null.
    """
    k: int = 1
    samples: int = 2048
    tol: float = 1e-3
    max_iter: int = 100

    def __post_init__(self):
        if self.k < 1 or self.samples < 1 or self.max_iter < 1 or not self.tol >= 0:
            raise ValueError("sharpness needs k, samples and max_iter of at least 1 and tol >= 0")

    def unsuitable(self, problem) -> str | None:
        n = sum(p.numel() for p in problem.parameters())
        if n <= self.k:
            return f"sharpness with k={self.k} needs more than {self.k} parameters (has {n})"
        return None

    def at_evaluation(self, probe: Probe) -> dict:
        from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
        objective, grad = loss_gradient(probe, self.samples)
        n = grad.numel()

        # ARPACK works in the model's own precision: no conversion of every vector
        dtype = np.float64 if grad.dtype == torch.float64 else np.float32

        def product(v):
            vector = torch.as_tensor(v.ravel(), device=grad.device).to(grad.dtype)
            return objective.hvp(grad, vector).detach().cpu().numpy().astype(dtype, copy=False)
        operator = LinearOperator((n, n), matvec=product, dtype=dtype)
        start = np.random.default_rng(0).standard_normal(n).astype(dtype)
        try:
            values = eigsh(operator, k=self.k, which="LA", tol=self.tol, maxiter=self.max_iter,
                           v0=start, return_eigenvectors=False)
        except ArpackNoConvergence as exc:
            values = exc.eigenvalues
        top = sorted((float(v) for v in values), reverse=True)
        top += [None] * (self.k - len(top))
        return {"sharpness": top[0]} | ({"sharpness_top_k": top} if self.k > 1 else {})


@MEASURES.register("hessian_trace")
@dataclass
class HessianTrace(Measure):
    """Hutchinson's estimate of the trace of the training loss's Hessian, E[vᵀHv].

    v has independent ±1 entries (Rademacher), drawn from a seeded generator. Records
    `hessian_trace` and its standard error `hessian_trace_se` over the probes.

    Args:
        probes: Hessian-vector products averaged (≥ 2).
        samples: training examples the Hessian is taken on (a fixed, seeded subset).
    """
    probes: int = 100
    samples: int = 2048

    def __post_init__(self):
        if self.probes < 2 or self.samples < 1:
            raise ValueError("hessian_trace needs probes >= 2 and samples >= 1")

    def at_evaluation(self, probe: Probe) -> dict:
        objective, grad = loss_gradient(probe, self.samples)
        generator = torch.Generator().manual_seed(0)
        estimates = []
        for _ in range(self.probes):
            v = (torch.randint(0, 2, (grad.numel(),), generator=generator) * 2 - 1)
            v = v.to(grad.dtype).to(grad.device)
            estimates.append(float(v @ objective.hvp(grad, v)))
        values = np.array(estimates)
        return {"hessian_trace": float(values.mean()),
                "hessian_trace_se": float(values.std(ddof=1) / np.sqrt(len(values)))}


@MEASURES.register("eps_sharpness")
@dataclass
class EpsSharpness(Measure):
    """Keskar et al.'s ε-sharpness (their metric 2.1 in the full space, A = I).

    φ = 100 · (max over y in C_ε of f(x + y) − f(x)) / (1 + f(x)), with the box
    C_ε = {y : |yᵢ| ≤ ε(|xᵢ| + 1)}. The maximum is found by scipy's L-BFGS-B with those
    bounds, from a seeded random point of the box (from y = 0 a stationary point, a minimum
    included, would never move); the parameters are put back exactly afterwards. Records
    `eps_sharpness`.

    Args:
        eps: ε > 0, the box's relative size.
        max_iter: L-BFGS-B iterations for the inner maximisation.
        samples: training examples f is taken on (a fixed, seeded subset).
    """
    eps: float = 1e-3
    max_iter: int = 10
    samples: int = 2048

    def __post_init__(self):
        if not self.eps > 0 or self.max_iter < 1 or self.samples < 1:
            raise ValueError("eps_sharpness needs eps > 0, max_iter >= 1 and samples >= 1")

    def at_evaluation(self, probe: Probe) -> dict:
        from scipy.optimize import minimize
        objective = probe.objective(evaluation_batch(probe.problem, self.samples))
        x = objective.flat()
        f_x = float(objective.loss())

        def negative(y):   # −f(x + y) and its gradient, for a minimiser
            objective.set_flat(x + torch.as_tensor(y, dtype=x.dtype, device=x.device))
            value, grad = objective.value_and_gradient()
            return -float(value), -grad.double().cpu().numpy()
        radius = (self.eps * (x.abs() + 1)).double().cpu().numpy()
        try:
            start = np.random.default_rng(0).uniform(-radius, radius)
            found = minimize(negative, start, jac=True, method="L-BFGS-B",
                             bounds=list(zip(-radius, radius)),
                             # only the iteration budget ends it: f near a minimum is tiny,
                             # and scipy's relative tests would stop short of the corner
                             options={"maxiter": self.max_iter, "ftol": 0.0, "gtol": 0.0})
        finally:
            objective.set_flat(x)
        return {"eps_sharpness": 100.0 * (-found.fun - f_x) / (1.0 + f_x)}
