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
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from bench.calibrate import DuringCell
from bench.cell import AXIS, Cell, metric_name, target_met
from bench.measures import MEASURES, Probe
from bench.objective import Objective, count_fields
from bench.timing import Clock
from problems.base import Context, Network

EXPLODE_FACTOR = 1e6   # loss above this × max(1, |initial loss|) has diverged


@dataclass
class Outcome:
    status: str = "ok"
    history: list = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    diverged_at: int | None = None
    target_step: int | None = None
    target_seconds: float | None = None
    stopped_at: int | None = None       # the step early stopping ended the run at
    restored_step: int | None = None    # the step whose weights it put back
    measures: dict = field(default_factory=dict)
    measure_keys: list = field(default_factory=list)   # history fields the measures wrote
    artifacts: dict = field(default_factory=dict)      # measure tensors stored beside the result
    yardstick: list = field(default_factory=list)      # bench/calibrate.py, at evaluations
    error: str | None = None


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


def lr_scale(scaling: dict | None, batch: int) -> float:
    """The factor every learning rate is multiplied by for a batch of `batch` examples:
    batch / base (`linear`, Goyal et al. 2017), its square root (`sqrt`), or 1."""
    if not scaling or scaling.get("rule", "none") == "none":
        return 1.0
    ratio = batch / scaling["base_batch_size"]
    return ratio if scaling["rule"] == "linear" else math.sqrt(ratio)


def _cuda_devices(device: str) -> list:
    return [torch.device(device)] if device.startswith("cuda") else []


def build(axis: str, choice: dict):
    """The object a cell's choice on `axis` names, from its registry."""
    return AXIS[axis].entries().get(choice["name"]).factory(**choice["params"])


def build_problem(cell: Cell, device: torch.device, data_dir: str | None = None):
    """The cell's problem as its training starts: built, initialised and with the regularizer
    built into it, all from the cell's seed; returns (problem, regularizer, generator)."""
    generator = torch.Generator().manual_seed(cell.seed)
    ctx = Context(cell.seed, device, generator, cell.batch_size, data_dir)
    problem = AXIS["problem"].entries().get(cell.problem["name"]).factory(
        ctx, **cell.problem["params"])
    build("init", cell.init)(problem, generator)
    regularizer = build("regularizer", cell.regularizer)
    regularizer.build(problem, generator)
    return problem, regularizer, generator


class _Run:
    def __init__(self, cell: Cell, device: torch.device, data_dir: str | None = None):
        self.cell = cell
        self.device = device
        self.problem, self.regularizer, self.generator = build_problem(cell, device, data_dir)
        self.params = self.problem.parameters()
        # the problem's closed-form Hessian holds only for its own loss, unaltered
        self.exact_loss = not self.regularizer.alters_loss(self.params)
        self.optimizer = AXIS["optimizer"].entries().get(cell.optimizer["name"]).factory(
            self.params, **cell.optimizer["params"])
        self.schedule = build("schedule", cell.schedule)
        scale = lr_scale(cell.lr_scaling, self.problem.samples_per_step)
        self.base_lrs = [g.get("lr", 1.0) * scale for g in self.optimizer.param_groups]
        self.measures = self.build_measures()
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
        self.limit = math.inf          # set from the first loss: EXPLODE_FACTOR × its size
        self.started = time.perf_counter()
        # Reading the loss is a device sync: on the CPU it costs nothing and every step is
        # checked at once; on a GPU the losses wait on the device until metrics are read
        self.sync_every = 1 if device.type == "cpu" else self.eval_every
        self.pending: list = []        # (step, loss tensor) not yet checked
        self.batch = None
        self.out = Outcome()
        self.yardstick = DuringCell(max(1, self.total // self.eval_every))

    def build_measures(self) -> dict:
        """The cell's measures that apply to its problem; one it refuses (validation reports
        that) is an error of the cell."""
        out = {}
        for m in self.cell.measures:
            entry = MEASURES.get(m["name"])
            if entry.unsuitable(self.problem, m["params"]) is not None:
                continue   # a measure applies where it suits
            measure = entry.factory(**m["params"])
            reason = measure.refuses(self.problem)
            if reason:
                raise ValueError(f"measure '{m['name']}': {reason}")
            out[m["name"]] = measure
        return out

    # -- the loss the optimizer minimises ----------------------------------------------------
    def training_loss(self, batch) -> torch.Tensor:
        """criterion(forward(inputs)), with the regularizer's hooks on the batch and the loss."""
        inputs, targets = self.problem.inputs(batch)
        inputs, targets = self.regularizer.on_batch(inputs, targets, self.generator)
        loss = self.regularizer.criterion(self.problem.criterion,
                                          self.problem.forward(inputs), targets)
        penalty = self.regularizer.penalty(self.params)
        return loss if penalty is None else loss + penalty

    def objective_for(self, batch) -> Objective:
        closed = (lambda: self.problem.hessian(batch)) if self.exact_loss else None
        return Objective(lambda: self.training_loss(batch), self.params, self.counts, closed,
                         fixed_batch=batch is None)

    def set_lr(self, step: int) -> None:
        factor = self.schedule.factor(step, self.total)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor

    # -- the loop ------------------------------------------------------------------------------
    def train(self) -> Outcome:
        self.set_lr(0)                      # the first entry shows the lr the first step uses
        metrics = self.record(0)
        first = metrics.get("train_loss", 1.0)
        if math.isfinite(first):
            self.limit = EXPLODE_FACTOR * max(1.0, abs(first))
        self.observe(0)
        if self.settle(0, metrics, recorded=True):
            return self.finish()
        self.started = time.perf_counter()
        self.clock.start()
        for step in range(1, self.total + 1):
            self.set_lr(step - 1)
            self.batch = self.problem.sample_batch(self.generator)
            loss = self.optimizer.step(self.objective_for(self.batch))
            self.regularizer.after_step(self.problem)
            self.out.steps = step
            # step() returns the loss *before* the update, at the iterate of step − 1
            self.pending.append((step - 1, loss))
            if self.diverged_on_loss(force=step % self.sync_every == 0):
                break
            self.observe(step)
            self.end_of_cycle(step)
            if self.settle(step, *self.metrics_at(step)):
                break
        self.diverged_on_loss(force=True)
        return self.finish()

    def metrics_at(self, step: int) -> tuple[dict | None, bool]:
        """(metrics, recorded): a full evaluation at evaluation steps; else the cheap metrics
        when targets are checked every step; else nothing."""
        if step % self.eval_every == 0 or step == self.total:
            if self.diverged_on_loss(force=True):
                return None, False
            return self.record(step), True
        if self.cheap_targets:
            if self.diverged_on_loss(force=True):
                return None, False
            with self.clock.paused():
                return self.problem.evaluate(), False
        return None, False

    def check(self, step: int, metrics: dict | None, recorded: bool) -> str | None:
        """The one decision to stop, and why: `diverged`, `target`, `timeout`, `stopped` (the
        regularizer's early stopping), or None to go on."""
        if self.out.status == "diverged":
            return "diverged"
        if metrics is not None and target_met(metrics, self.targets):
            return "target"
        if step > 0 and self.time_limit and time.perf_counter() - self.started > self.time_limit:
            return "timeout"
        if recorded and self.regularizer.should_stop(self.out.history):
            return "stopped"
        return None

    def settle(self, step: int, metrics: dict | None, recorded: bool) -> bool:
        """Act on check(): record the outcome (and a last evaluation); True to stop."""
        reason = self.check(step, metrics, recorded)
        if reason is None or reason == "diverged":
            return reason is not None
        if reason == "target":
            self.out.target_step, self.out.target_seconds = step, self.clock.synced_seconds()
        elif reason == "timeout":
            self.out.status = "timeout"
        elif reason == "stopped":
            self.out.stopped_at = step
            self.out.restored_step = self.regularizer.restore(self.problem)
            if self.out.restored_step is not None:
                recorded = False   # the last entry is the restored weights' evaluation
        if not recorded:
            self.record(step)
        return True

    def exploded(self, loss: float) -> bool:
        return not math.isfinite(loss) or loss > self.limit

    def diverged_on_loss(self, force: bool) -> bool:
        """Check the losses the steps returned (one device read for all that are pending)."""
        if self.out.status == "diverged":
            return True
        if not force or not self.pending:
            return False
        steps = [s for s, _ in self.pending]
        losses = torch.stack([torch.as_tensor(v, dtype=torch.float64).reshape(())
                              for _, v in self.pending]).tolist() \
            if len(self.pending) > 1 else [float(self.pending[0][1])]
        self.pending.clear()
        for step, loss in zip(steps, losses):
            if self.exploded(loss):
                self.diverge(step)
                return True
        return False

    def diverge(self, step: int) -> None:
        """Record divergence at `step`, dropping any evaluation from that step on (no
        exploded point is drawn, and nothing is back-filled)."""
        self.out.status, self.out.diverged_at = "diverged", step
        self.out.history = [h for h in self.out.history if h["step"] < step]

    # -- observing -----------------------------------------------------------------------------
    def probe(self, step: int, metrics: dict | None = None) -> Probe:
        return Probe(self.problem, step, self.batch, self.measured_loss, metrics=metrics or {})

    def measured_loss(self, batch) -> torch.Tensor:
        """The problem's loss for measures: a network in eval mode (no dropout, no update of
        batch-norm statistics), so that measuring never changes the training run."""
        if not isinstance(self.problem, Network):
            return self.problem.loss(batch)
        model, was_training = self.problem.model, self.problem.model.training
        inputs, targets = self.problem.inputs(batch)
        model.eval()
        try:
            return self.problem.criterion(model(inputs), targets)
        finally:
            model.train(was_training)

    @contextmanager
    def measuring(self):
        """Measures run off the clock, on a forked random state (nothing they draw shifts
        the training run's random numbers)."""
        with self.clock.paused(), torch.random.fork_rng(devices=_cuda_devices(str(self.device))):
            yield

    def observe(self, step: int) -> None:
        active = [m for m in self.measures.values() if step == 0 or m.every_step]
        if not active:
            return   # no clock pause (and no device sync) on steps nobody observes
        with self.clock.paused():   # measuring is not training
            for measure in active:
                measure.observe(self.problem, step)

    def end_of_cycle(self, step: int) -> None:
        """Measures that keep snapshots hear of each cycle a restarting schedule ends."""
        watching = [m for m in self.measures.values() if m.watches_cycles]
        if watching and self.schedule.cycle_ended(step, self.total):
            with self.measuring():
                for measure in watching:
                    measure.cycle_end(self.problem, step)

    def record(self, step: int) -> dict:
        """Evaluate and append a history entry; an exploded loss diverges the run instead."""
        if self.diverged_on_loss(force=True):   # a step's loss, not yet read, exploded
            return {}
        seconds = self.clock.synced_seconds()
        with self.clock.paused():
            self.yardstick.at_evaluation()   # how fast the machine is now (bench/calibrate.py)
            with torch.no_grad():
                metrics = self.problem.evaluate()
        if "train_loss" in metrics and self.exploded(metrics["train_loss"]):
            self.diverge(step)   # the evaluated loss shows it first (e.g. on the last step)
            return metrics
        entry = {"step": step, "epoch": step / self.problem.steps_per_epoch,
                 "samples": self.problem.samples_seen(step),
                 "seconds": seconds, "lr": self.optimizer.param_groups[0].get("lr"),
                 **count_fields(self.counts, self.dim), **metrics}
        self.measure_into(entry, step, metrics, "evaluations")
        self.out.history.append(entry)
        self.regularizer.on_evaluation(self.problem, entry)
        return metrics

    def measure_into(self, entry: dict, step: int, metrics: dict, at: str) -> None:
        """The values of the measures taken `at` this moment, merged into a history entry."""
        due = [m for m in self.measures.values() if m.at == at]
        if not due:
            return
        with self.measuring():
            probe = self.probe(step, metrics)
            for measure in due:
                values = measure.at_evaluation(probe)
                entry.update(values)
                self.out.measure_keys += [k for k in values if k not in self.out.measure_keys]

    def close(self) -> None:
        """Release what outlives a step (the scipy driver's thread), whatever happened."""
        close = getattr(self.optimizer, "close", None)
        if close is not None:
            close()

    def finish(self) -> Outcome:
        self.out.seconds = self.clock.synced_seconds()
        self.out.yardstick = self.yardstick.samples
        last = self.out.history[-1] if self.out.history else None
        if (self.out.status != "diverged" and last is not None
                and last["step"] == self.out.steps):   # `at: end` measures: the last point
            self.measure_into(last, self.out.steps, last, "end")
        if self.measures:
            with self.measuring():
                probe = self.probe(self.out.steps)
                for measure in self.measures.values():
                    measure.finish(probe)
        results = {name: m.result() for name, m in self.measures.items()}
        self.out.measures = {k: v for k, v in results.items() if v is not None}
        self.out.artifacts = {k: v for m in self.measures.values()
                              for k, v in m.artifacts().items()}
        return self.out
