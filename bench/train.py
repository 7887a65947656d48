"""run_cell: the one training loop. Pure: no globals, no file I/O, randomness from the seed.

Every optimizer steps through an Objective (a torch closure that also gives Hessian products),
so line-search and second-order methods fit the same loop and every evaluation is counted.
The schedule writes `base_lr × factor(step)` into the param groups before each step.
Targets are checked after every step when the problem computes them cheaply (analytic
problems), else at every evaluation. Evaluation time is not counted in `seconds`; the
budget's `time_limit` is wall-clock time, evaluation included.
"""
from __future__ import annotations

import math
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field

import torch

from bench import optimizers
from bench.inits import INITS
from bench.measures import MEASURES
from bench.objective import Objective, count_fields
from bench.plan import Cell, metric_name
from bench.regularizers import REGULARIZERS
from bench.schedules import SCHEDULES
from bench.timing import Clock
from problems import PROBLEMS
from problems.base import Context

MAXIMIZED = ("accuracy", "escaped")   # metrics where larger is better
EXPLODE_FACTOR = 1e6                  # loss above this × max(1, |initial loss|) has diverged


@dataclass
class Outcome:
    status: str = "ok"
    history: list = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    diverged_at: int | None = None
    target_step: int | None = None
    target_seconds: float | None = None
    measures: dict = field(default_factory=dict)
    error: str | None = None


def maximized(metric: str) -> bool:
    return any(word in metric for word in MAXIMIZED)


def target_met(metrics: dict, targets: dict) -> bool:
    return bool(targets) and all(
        m in metrics and (metrics[m] >= v if maximized(m) else metrics[m] <= v)
        for m, v in targets.items())


def run_cell(cell: Cell, device: str = "cpu", data_dir: str | None = None) -> Outcome:
    """Train one cell; failures become statuses, never exceptions (Ctrl-C excepted).

    torch's global random state is forked and seeded from the cell, so anything that draws
    from it (layer initialisation, dropout) is reproducible and nothing leaks out."""
    run = None
    try:
        with torch.random.fork_rng(devices=_cuda_devices(device)):
            torch.manual_seed(cell.seed)
            run = _Run(cell, torch.device(device), data_dir)
            return run.train()
    except Exception:   # any failure of the cell is its outcome, recorded with the traceback
        return Outcome(status="error", error=traceback.format_exc())
    finally:
        if run is not None:
            run.close()


def _cuda_devices(device: str) -> list:
    return [torch.device(device)] if device.startswith("cuda") else []


class _Run:
    def __init__(self, cell: Cell, device: torch.device, data_dir: str | None = None):
        self.cell = cell
        self.generator = torch.Generator().manual_seed(cell.seed)
        ctx = Context(cell.seed, device, self.generator, cell.batch_size, data_dir)
        self.problem = PROBLEMS.get(cell.problem["name"]).factory(ctx, **cell.problem["params"])
        INITS.get(cell.init["name"]).factory(**cell.init["params"])(self.problem, self.generator)
        self.penalty = REGULARIZERS.get(cell.regularizer["name"]).factory(
            **cell.regularizer["params"])
        self.params = self.problem.parameters()
        self.penalised = self.penalty(self.params) is not None
        self.optimizer = optimizers.build(cell.optimizer["name"], self.params,
                                          cell.optimizer["params"])
        self.schedule = SCHEDULES.get(cell.schedule["name"]).factory(**cell.schedule["params"])
        self.base_lrs = [g.get("lr", 1.0) for g in self.optimizer.param_groups]
        self.measures = {m: MEASURES.get(m).factory() for m in cell.measures
                         if MEASURES.get(m).factory.unsuitable(self.problem) is None}
        budget = cell.budget
        spe = self.problem.steps_per_epoch
        self.total = budget.get("steps") or max(1, math.ceil(budget["epochs"] * spe))
        per_epoch = budget.get("evals_per_epoch")
        self.eval_every = (max(1, spe // per_epoch) if per_epoch else
                           budget.get("eval_every") or max(1, self.total // 100))
        self.time_limit = budget.get("time_limit")
        known = set(self.problem.metric_names())   # a target applies where its metric exists
        self.targets = {metric_name(k): v for k, v in (budget.get("target") or {}).items()
                        if metric_name(k) in known}
        self.cheap_targets = bool(self.targets) and set(self.targets) <= self.problem.cheap_metrics
        self.clock = Clock(device)
        self.counts: Counter = Counter()
        self.dim = sum(p.numel() for p in self.params)
        self.out = Outcome()

    def objective_for(self, batch) -> Objective:
        def loss_fn():
            loss = self.problem.loss(batch)
            penalty = self.penalty(self.params)
            return loss if penalty is None else loss + penalty
        # the problem's closed-form Hessian holds only for its own loss, without a penalty
        closed = None if self.penalised else (lambda: self.problem.hessian(batch))
        return Objective(loss_fn, self.params, self.counts, closed, fixed_batch=batch is None)

    def set_lr(self, step: int) -> None:
        factor = self.schedule.factor(step, self.total)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor

    def train(self) -> Outcome:
        out = self.out
        self.set_lr(0)                      # the first entry shows the lr the first step uses
        first = self.evaluate(0)
        self.limit = EXPLODE_FACTOR * max(1.0, abs(first.get("train_loss", 1.0)))
        self.observe(0)
        if out.status == "diverged":
            return self.finish()
        if target_met(first, self.targets):
            out.target_step, out.target_seconds = 0, 0.0
            return self.finish()
        self.started = time.perf_counter()
        self.clock.start()
        for step in range(1, self.total + 1):
            self.set_lr(step - 1)
            batch = self.problem.sample_batch(self.generator)
            loss = float(self.optimizer.step(self.objective_for(batch)))
            out.steps = step
            # step() returns the loss *before* the update, at the iterate of step − 1
            if self.exploded(loss):
                self.diverge(step - 1)
                break
            self.observe(step)
            if self.after_step(step):
                break
        return self.finish()

    def exploded(self, loss: float) -> bool:
        return not math.isfinite(loss) or loss > self.limit

    def diverge(self, step: int) -> None:
        """Record divergence at `step`, dropping any evaluation from that step on (no
        exploded point is drawn, and nothing is back-filled)."""
        self.out.status, self.out.diverged_at = "diverged", step
        self.out.history = [h for h in self.out.history if h["step"] < step]

    def after_step(self, step: int) -> bool:
        """Evaluate, check divergence, target and time; True when the run should stop."""
        metrics, recorded = None, False
        if step % self.eval_every == 0 or step == self.total:
            metrics, recorded = self.evaluate(step), True
        elif self.cheap_targets:
            with self.clock.paused():
                metrics = self.problem.evaluate()
        if self.out.status == "diverged":
            return True
        if metrics is not None and target_met(metrics, self.targets):
            self.out.target_step = step
            self.out.target_seconds = self.clock.synced_seconds()
            if not recorded:
                self.evaluate(step)
            return True
        if self.time_limit and time.perf_counter() - self.started > self.time_limit:
            self.out.status = "timeout"
            if not recorded:
                self.evaluate(step)
            return True
        return False

    def observe(self, step: int) -> None:
        active = [m for m in self.measures.values() if step == 0 or m.every_step]
        if not active:
            return   # no clock pause (and no device sync) on steps nobody observes
        with self.clock.paused():   # measuring is not training
            for measure in active:
                measure.observe(self.problem, step)

    def evaluate(self, step: int) -> dict:
        seconds = self.clock.synced_seconds()
        with self.clock.paused(), torch.no_grad():
            metrics = self.problem.evaluate()
        if "train_loss" in metrics and step > 0 and self.exploded(metrics["train_loss"]):
            self.diverge(step)   # the evaluated loss shows it first (e.g. on the last step)
            return metrics
        if "train_loss" in metrics and step == 0 and not math.isfinite(metrics["train_loss"]):
            self.diverge(0)
            return metrics
        entry = {"step": step, "epoch": step / self.problem.steps_per_epoch,
                 "samples": step * getattr(self.problem, "samples_per_step", 1),
                 "seconds": seconds, "lr": self.optimizer.param_groups[0].get("lr"),
                 **count_fields(self.counts, self.dim), **metrics}
        self.out.history.append(entry)
        return metrics

    def close(self) -> None:
        """Release what outlives a step (the scipy driver's thread), whatever happened."""
        close = getattr(self.optimizer, "close", None)
        if close is not None:
            close()

    def finish(self) -> Outcome:
        self.out.seconds = self.clock.synced_seconds()
        for measure in self.measures.values():
            if hasattr(measure, "finish"):
                measure.finish(self.problem)
        self.out.measures = {name: m.result() for name, m in self.measures.items()}
        return self.out
