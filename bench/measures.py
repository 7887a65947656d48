"""The MEASURES registry: observations a cell records beside its metrics.

A measure is a choice like any other (`trajectory`, or `{name: trajectory, max_points: 200}`):
its dataclass fields are its parameters. It is built per cell and may
- `observe(problem, step)` after every step (`every_step`) and at step 0,
- return values at every evaluation (`at_evaluation`), merged into that history entry,
- `finish` at the end; `result()` goes into the Result's summary under `measures.<name>`,
- `artifacts()`: tensors (a checkpoint's weights) that the results folder stores beside the
  cell's result file, never inside it.
A measure that sets `at = "end"` (a parameter of the curvature measures) is taken once, at
the last evaluation, instead of at every one. `refuses(problem)` names what makes a measure
too expensive for a problem (its size): validation reports it as an error wherever it
occurs, whereas `unsuitable` only means "does not apply here".
At evaluations and at the end it gets a `Probe`: the problem, the step, the step's batch and
an Objective with its own evaluation counts, so a measure's Hessian products are never
counted as training work. How a measure is drawn is a figure in `bench/report/figures.py`.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

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
    metrics: dict = field(default_factory=dict)   # the evaluation's metrics ({} at the end)

    def objective(self, batch: Any = None) -> Objective:
        return Objective(lambda: self.loss_fn(batch), self.problem.parameters(), self.counts)


class Measure:
    """The hooks, each doing nothing unless a measure overrides it."""
    every_step = False   # observe after every step (else at step 0 only)
    watches_cycles = False   # cycle_end after each cycle of a restarting schedule
    at = "evaluations"   # when at_evaluation runs: "evaluations" (every one) or "end" (the last)

    def unsuitable(self, problem) -> str | None:
        return None

    def refuses(self, problem) -> str | None:
        return None

    def observe(self, problem, step: int) -> None:
        return None

    def at_evaluation(self, probe: Probe) -> dict:
        return {}

    def cycle_end(self, problem, step: int) -> None:
        return None

    def finish(self, probe: Probe) -> None:
        return None

    def result(self) -> Any:
        return None

    def artifacts(self) -> dict:
        return {}


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
When = Literal["evaluations", "end"]
MAX_PARAMS = 2_000_000   # ARPACK and L-BFGS-B keep ~20 vectors of n float64s: 320 MB at 2M


@dataclass
class Curvature(Measure):
    """What the curvature measures share: when they run and the largest model they accept."""
    at: When = "evaluations"
    max_params: int = MAX_PARAMS

    def __post_init__(self):
        if self.at not in ("evaluations", "end"):
            raise ValueError(f"at must be 'evaluations' or 'end', got {self.at!r}")
        if self.max_params < 1:
            raise ValueError(f"max_params must be at least 1, got {self.max_params}")

    def refuses(self, problem) -> str | None:
        n = sum(p.numel() for p in problem.parameters())
        if n > self.max_params:
            return (f"the model has {n:,} parameters, above max_params={self.max_params:,} "
                    "(the solver keeps about 20 vectors of that size and every product is a "
                    "double backward pass); raise max_params to measure it anyway")
        return None


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
class Sharpness(Curvature):
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
        at: evaluations: at every evaluation (drawn over training); end: once, at the end.
        max_params: the largest model accepted (default 2,000,000); a larger one is a
            validation error.
    """
    k: int = 1
    samples: int = 2048
    tol: float = 1e-3
    max_iter: int = 100

    def __post_init__(self):
        super().__post_init__()
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
class HessianTrace(Curvature):
    """Hutchinson's estimate of the trace of the training loss's Hessian, E[vᵀHv].

    v has independent ±1 entries (Rademacher), drawn from a seeded generator. Records
    `hessian_trace` and its standard error `hessian_trace_se` over the probes.

    Args:
        probes: Hessian-vector products averaged (≥ 2).
        samples: training examples the Hessian is taken on (a fixed, seeded subset).
        at: evaluations: at every evaluation (drawn over training); end: once, at the end.
        max_params: the largest model accepted (default 2,000,000); a larger one is a
            validation error.
    """
    probes: int = 100
    samples: int = 2048

    def __post_init__(self):
        super().__post_init__()
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
class EpsSharpness(Curvature):
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
        at: end (the default: it is expensive): once, at the end; evaluations: at every
            evaluation.
        max_params: the largest model accepted (default 2,000,000); a larger one is a
            validation error.
    """
    at: When = "end"
    eps: float = 1e-3
    max_iter: int = 10
    samples: int = 2048

    def __post_init__(self):
        super().__post_init__()
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


# ---- checkpoints: the weights, for landscapes and for looking at later ---------------------
def state_of(problem) -> dict[str, torch.Tensor]:
    """A copy of the problem's weights on the CPU: a network's state dict (batch-norm
    statistics included), else its parameters by position."""
    model = getattr(problem, "model", None)
    state = (model.state_dict() if isinstance(model, torch.nn.Module) else
             {f"param.{i}": p for i, p in enumerate(problem.parameters())})
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def load_state(problem, state: dict[str, torch.Tensor]) -> None:
    """Put weights taken by `state_of` back into a problem built for the same cell."""
    model = getattr(problem, "model", None)
    if isinstance(model, torch.nn.Module):
        model.load_state_dict(state)
        return
    with torch.no_grad():
        for i, p in enumerate(problem.parameters()):
            p.copy_(state[f"param.{i}"])


@MEASURES.register("checkpoint")
@dataclass
class Checkpoint(Measure):
    """The weights at the start and the end of training, and at the best evaluation.

    Saved beside the cell's result as `cells/<id>.checkpoint.pt` (atomically, like every
    result file): a mapping from `initial`, `final` and, with `best`, `best` to state dicts,
    read back with `torch.load(weights_only=True)` (`bench.results.load_artifact`), which
    refuses a file holding anything but tensors and plain containers. Landscapes start from
    these weights. The summary records which were saved, and the best one's step and value.

    Args:
        best: a metric of the problem (test_accuracy, val_loss, …) whose best evaluation's
            weights are kept as well; none: only the initial and final weights.
    """
    best: str | None = None
    states: dict = field(default_factory=dict, init=False, repr=False)
    best_step: int | None = field(default=None, init=False, repr=False)
    best_value: float | None = field(default=None, init=False, repr=False)

    def refuses(self, problem) -> str | None:
        if self.best is not None and self.best not in problem.metric_names():
            return (f"checkpoint best={self.best!r}: the problem has no such metric; "
                    f"allowed: {', '.join(problem.metric_names())}")
        return None

    def observe(self, problem, step: int) -> None:
        if step == 0:
            self.states["initial"] = state_of(problem)

    def at_evaluation(self, probe: Probe) -> dict:
        value = probe.metrics.get(self.best) if self.best else None
        if isinstance(value, (int, float)) and math.isfinite(value) and self._better(value):
            self.states["best"] = state_of(probe.problem)
            self.best_step, self.best_value = probe.step, float(value)
        return {}

    def _better(self, value: float) -> bool:
        from bench.cell import maximized
        if self.best_value is None:
            return True
        return value > self.best_value if maximized(self.best) else value < self.best_value

    def finish(self, probe: Probe) -> None:
        self.states["final"] = state_of(probe.problem)

    def result(self) -> dict:
        out: dict = {"saved": sorted(self.states)}
        if self.best:
            out["best"] = {"metric": self.best, "step": self.best_step, "value": self.best_value}
        return out

    def artifacts(self) -> dict:
        return {"checkpoint": self.states}


# ---- predictions: ensembles are built from them in the report ------------------------------
@MEASURES.register("predictions")
@dataclass
class Predictions(Measure):
    """The test set's class probabilities after training, for ensembles in the report.

    Stored compactly beside the result as `cells/<id>.predictions.npz` (numpy, float16
    probabilities and the labels; read with `numpy.load`, no pickle). The report averages
    the probabilities of cells that differ only in their seed (a seed ensemble) and, with
    `snapshots`, those of one run's cycles (a snapshot ensemble, Huang et al. 2017).

    Args:
        snapshots: also keep the probabilities at the end of every cycle of a restarting
            schedule (sgdr, cyclic); with another schedule there are none.
    """
    snapshots: bool = False
    taken: dict = field(default_factory=dict, init=False, repr=False)

    @property
    def watches_cycles(self) -> bool:
        return self.snapshots

    def unsuitable(self, problem) -> str | None:
        data = getattr(problem, "data", None)
        if getattr(data, "test", None) is None or getattr(problem, "loss_kind", None) is None:
            return "predictions needs a classifier with a test set"
        return None

    def cycle_end(self, problem, step: int) -> None:
        self.taken[f"snapshot_{step}"] = self._probabilities(problem)

    def finish(self, probe: Probe) -> None:
        self.taken["final"] = self._probabilities(probe.problem)
        self.taken["labels"] = probe.problem.data.test.y.cpu().numpy().astype(np.int64)

    def result(self) -> dict:
        final = self.taken.get("final")
        return {"snapshots": sorted(int(k.split("_")[1]) for k in self.taken
                                    if k.startswith("snapshot_")),
                "examples": 0 if final is None else int(final.shape[0])}

    def artifacts(self) -> dict:
        return {"predictions": dict(self.taken)}

    @staticmethod
    def _probabilities(problem) -> np.ndarray:
        model, was_training = problem.model, problem.model.training
        model.eval()
        try:
            with torch.no_grad():
                x = problem.data.test.x
                probs = torch.cat([model(x[i:i + 5000]).softmax(1)
                                   for i in range(0, len(x), 5000)])
        finally:
            model.train(was_training)
        return probs.cpu().numpy().astype(np.float16)


# measures kept in their own modules register themselves on import
from bench import weight_stats  # noqa: E402,F401
