"""Loss landscapes around solutions: the LANDSCAPES registry and `bench landscape`.

An experiment declares landscapes (`landscapes: [{name: interpolation, between: {batch_size:
[32, 4096]}}, {name: contour}]`); they need the model and the data, so they are computed once
after the cells have run (by `bench run`, or by `bench landscape RESULTS`), from the weights
the `checkpoint` measure stored, and written as data to `landscapes/<experiment>/*.json`.
`bench report` only draws them.

- `interpolation`: the training and test metrics along θ(α) = (1 − α)·θ_a + α·θ_b, α from
  −1 to 2, between two cells that differ only in batch size (Keskar et al. 2017, figure 3),
  or (`between: init`) from a cell's initial to its final weights (Goodfellow et al. 2015).
- `contour`: the training loss on a plane through a cell's final weights spanned by two
  random, filter-normalised directions (Li et al. 2018), on a fixed, seeded training subset.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cell import Cell
from bench.registry import Registry

LANDSCAPES = Registry("landscape")
SELECTABLE = ("batch_size", "seed")   # the axes `at:` may restrict


@LANDSCAPES.register("interpolation")
@dataclass
class Interpolation:
    """Metrics along the line through two sets of weights, α from −1 to 2.

    Args:
        between: {batch_size: [a, b]}: from the final weights of each cell with batch size a
            to those of the cell that differs from it only in having batch size b (Keskar's
            figure 3); init: from each cell's initial to its final weights.
        points: values of α, evenly spaced from −1 to 2 (0 and 1 included when points ≡ 1
            mod 3).
        at: restricts the cells, e.g. {seed: [0]} ({axis: value or list}; axes batch_size,
            seed); none: every cell.
    """
    between: Any = "init"
    points: int = 31
    at: dict | None = None

    def __post_init__(self):
        if self.points < 2:
            raise ValueError(f"points must be at least 2, got {self.points}")
        if self.between != "init" and not (
                isinstance(self.between, dict) and list(self.between) == ["batch_size"]):
            keys = ", ".join(map(str, self.between)) if isinstance(self.between, dict) else \
                repr(self.between)
            raise ValueError("a landscape interpolates between cells that differ only in "
                             f"batch size: 'between' is {{batch_size: [a, b]}} or init, got "
                             f"{keys}")
        if isinstance(self.between, dict):
            pair = self.between["batch_size"]
            if not (isinstance(pair, list) and len(pair) == 2 and all(
                    isinstance(b, int) and not isinstance(b, bool) or b is None for b in pair)
                    and pair[0] != pair[1]):
                raise ValueError(f"between: {{batch_size: [a, b]}} takes two different batch "
                                 f"sizes, got {pair!r}")
        check_at(self.at)

    def alphas(self) -> list[float]:
        return [-1.0 + 3.0 * i / (self.points - 1) for i in range(self.points)]


@LANDSCAPES.register("contour")
@dataclass
class Contour:
    """The training loss on a plane through the final weights, θ + a·d₁ + b·d₂.

    d₁ and d₂ are Gaussian directions, filter-normalised (Li et al. 2018): each filter (a
    row of a weight matrix, an output channel of a convolution) is scaled to the norm of the
    same filter of θ; biases and batch-norm parameters do not move.

    Args:
        resolution: grid points per side (odd, so that θ itself is on the grid).
        span: a and b run from −span to span.
        samples: training examples the loss is taken on (a fixed, seeded subset).
        at: restricts the cells, e.g. {batch_size: [32, 4096], seed: 0} ({axis: value or
            list}; axes batch_size, seed); none: every cell.
    """
    resolution: int = 21
    span: float = 1.0
    samples: int = 2048
    at: dict | None = None

    def __post_init__(self):
        if self.resolution < 3 or self.resolution % 2 == 0:
            raise ValueError(f"resolution must be odd and at least 3, got {self.resolution}")
        if not self.span > 0 or self.samples < 1:
            raise ValueError("contour needs span > 0 and samples >= 1")
        check_at(self.at)

    def grid(self) -> list[float]:
        n = self.resolution
        return [self.span * (2.0 * i / (n - 1) - 1.0) for i in range(n)]


def check_at(at: Any) -> None:
    if at is None:
        return
    if not isinstance(at, dict) or any(k not in SELECTABLE for k in at):
        raise ValueError(f"'at' maps axes to values, e.g. {{seed: 0}}; axes: "
                         f"{', '.join(SELECTABLE)}, got {at!r}")


def selected(cell: Cell, at: dict | None) -> bool:
    for axis, wanted in (at or {}).items():
        values = wanted if isinstance(wanted, list) else [wanted]
        if getattr(cell, axis) not in values:
            return False
    return True


# ---- which cells each declared landscape is taken on ---------------------------------------
@dataclass(frozen=True)
class Job:
    """One landscape to compute: its declaration and the cells (one or two) it is taken on."""
    experiment: str
    index: int                 # the declaration's place in the experiment's `landscapes`
    name: str
    params: dict
    cells: tuple               # (cell,) or (cell_a, cell_b)
    key: str = field(init=False, default="")

    def __post_init__(self):
        text = json.dumps([self.name, self.params, [c.id for c in self.cells]], sort_keys=True)
        object.__setattr__(self, "key", hashlib.sha256(text.encode()).hexdigest()[:12])

    @property
    def file(self) -> str:
        ids = "-".join(c.id for c in self.cells)
        return f"{self.experiment}/{self.name}-{ids}-{self.key[:6]}.json"


def declared(experiment_data: dict) -> list[tuple[str, dict]]:
    """(name, params) of an experiment's `landscapes` list (checked when it was planned)."""
    out = []
    for item in experiment_data.get("landscapes") or []:
        item = {"name": item} if isinstance(item, str) else item
        out.append((item["name"], {k: v for k, v in item.items() if k != "name"}))
    return out


def jobs(experiment: str, decls: list[tuple[str, dict]], cells: list[Cell]) -> list[Job]:
    """Every landscape the declarations ask for on these cells of one experiment."""
    out = []
    for index, (name, params) in enumerate(decls):
        spec = LANDSCAPES.get(name).factory(**params)
        chosen = [c for c in cells if c.experiment == experiment and selected(c, spec.at)]
        if name == "interpolation" and spec.between != "init":
            a, b = spec.between["batch_size"]
            for cell in chosen:
                if cell.batch_size == a:
                    partner = _partner(cell, b, chosen)
                    if partner is not None:
                        out.append(Job(experiment, index, name, params, (cell, partner)))
        else:
            out += [Job(experiment, index, name, params, (c,)) for c in chosen]
    return out


def _partner(cell: Cell, batch_size: int | None, cells: list[Cell]) -> Cell | None:
    """The cell equal to `cell` in everything but the batch size, which is `batch_size`."""
    want = cell.to_dict() | {"batch_size": batch_size}
    return next((c for c in cells if c.to_dict() == want), None)


# ---- computing them --------------------------------------------------------------------------
def compute(job: Job, checkpoints: list[dict], device: str = "cpu",
            data_dir: str | None = None) -> dict:
    """The landscape of one job as plain data, from the cells' stored checkpoints."""
    import torch

    from bench.train import build_problem
    spec = LANDSCAPES.get(job.name).factory(**job.params)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(job.cells[0].seed)
        problem, _, _ = build_problem(job.cells[0], torch.device(device), data_dir)
        out = {"name": job.name, "experiment": job.experiment, "params": job.params,
               "cells": [c.to_dict() for c in job.cells], "ids": [c.id for c in job.cells]}
        if job.name == "interpolation":
            if spec.between == "init":
                ends = checkpoints[0]["initial"], checkpoints[0]["final"]
            else:
                ends = checkpoints[0]["final"], checkpoints[1]["final"]
            out |= interpolate(problem, *ends, spec.alphas())
        else:
            out |= contour(problem, checkpoints[0]["final"], spec, job.cells[0].seed)
    return out


def interpolate(problem, start: dict, end: dict, alphas: list[float]) -> dict:
    """The problem's metrics at (1 − α)·start + α·end for every α (integer buffers, such as
    batch norm's step count, are taken from `start`)."""
    from bench.measures import load_state
    series: dict[str, list] = {}
    for alpha in alphas:
        load_state(problem, {k: ((1 - alpha) * v + alpha * end[k]) if v.is_floating_point()
                             else v for k, v in start.items()})
        for metric, value in problem.evaluate().items():
            series.setdefault(metric, []).append(value)
    load_state(problem, end)
    return {"alphas": alphas, "metrics": series}


def contour(problem, center: dict, spec: Contour, seed: int) -> dict:
    """The training loss on the grid of `spec` around `center` (two seeded directions)."""
    import torch

    from bench.measures import evaluation_batch, load_state
    generator = torch.Generator().manual_seed(seed)
    trainable = {name for name, _ in _named_parameters(problem)}
    d1, d2 = (filter_normalised(center, trainable, generator) for _ in range(2))
    batch = evaluation_batch(problem, spec.samples)
    grid = spec.grid()
    losses = []
    with torch.no_grad():
        for b in grid:
            row = []
            for a in grid:
                load_state(problem, {k: v + a * d1[k] + b * d2[k] if k in d1 else v
                                     for k, v in center.items()})
                row.append(float(_eval_loss(problem, batch)))
            losses.append(row)
    load_state(problem, center)
    return {"a": grid, "b": grid, "train_loss": losses,
            "center_loss": losses[len(grid) // 2][len(grid) // 2]}


def _named_parameters(problem):
    model = getattr(problem, "model", None)
    if model is not None:
        return list(model.named_parameters())
    return [(f"param.{i}", p) for i, p in enumerate(problem.parameters())]


def filter_normalised(state: dict, trainable: set, generator) -> dict:
    """A Gaussian direction with each filter scaled to the norm of θ's filter (Li et al.
    2018); tensors of one dimension (biases, batch-norm scales) get no direction, except
    a problem's single parameter vector, which is scaled as a whole."""
    import torch
    out = {}
    for name, weight in state.items():
        if name not in trainable or not weight.is_floating_point():
            continue
        d = torch.randn(weight.shape, generator=generator, dtype=weight.dtype)
        if weight.dim() <= 1:
            if len(trainable) > 1:
                out[name] = torch.zeros_like(weight)
                continue
            out[name] = d * weight.norm() / d.norm().clamp_min(1e-12)
            continue
        rows = d.reshape(d.shape[0], -1)
        scale = weight.reshape(weight.shape[0], -1).norm(dim=1) / rows.norm(dim=1).clamp_min(1e-12)
        out[name] = (rows * scale[:, None]).reshape(weight.shape)
    return out


def _eval_loss(problem, batch):
    """The problem's loss on `batch`, a network in eval mode (as the measures see it)."""
    model = getattr(problem, "model", None)
    if model is None:
        return problem.loss(batch)
    model.eval()
    inputs, targets = problem.inputs(batch)
    return problem.criterion(model(inputs), targets)


# ---- the step of `bench run` and the `bench landscape` command -------------------------------
def run_all(store, cells: list[Cell], device: str = "cpu", data_dir: str | None = None,
            rerun: bool = False, log=print) -> tuple[int, int]:
    """Compute every declared landscape of the stored spec whose cells finished and have
    checkpoints; returns (computed, skipped because stored already)."""
    from bench.results import load_artifact, write_atomic
    experiments = store.read_spec().get("experiments") or {}
    finished = store.statuses()
    done = skipped = 0
    for name, data in experiments.items():
        decls = declared(data or {})
        usable = [c for c in cells if c.experiment == name
                  and finished.get(c.id) in ("ok", "timeout")
                  and store.artifact_path(c.id, "checkpoint").is_file()]
        for job in jobs(name, decls, usable) if decls else []:
            path = store.root / "landscapes" / job.file
            if path.is_file() and not rerun:
                skipped += 1
                continue
            states = [load_artifact(store.artifact_path(c.id, "checkpoint")) for c in job.cells]
            write_atomic(path, compute(job, states, device, data_dir))
            done += 1
            log(f"bench: landscape {job.file}")
    return done, skipped


def load_all(root: Path) -> dict[str, list[dict]]:
    """Stored landscapes per experiment (no torch: the report draws these)."""
    out: dict[str, list[dict]] = {}
    for path in sorted(Path(root, "landscapes").glob("*/*.json")):
        try:
            data = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(data, dict) and "name" in data:
            out.setdefault(path.parent.name, []).append(data)
    return out
