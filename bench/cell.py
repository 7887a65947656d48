"""The suite's shared words, importable without torch: axes, cells, metrics.

Planning, training, results and the report all speak of the same things: the axes of a
matrix, the cell that is one point of it, and the metrics a cell records. They live here, in
plain Python, so that `bench report` (which reads result files only) never imports torch.

A new axis is one entry in `AXES`: the spec accepts the key, the planner expands it, cells
carry it, `--only` and `exclude` match it, and tables and legends show it when it varies.
"""
from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Axis:
    """One axis of the matrix.

    `registry` is "module:NAME" of the Registry its choices come from (None for integer axes);
    `default` is its value when a spec leaves it out (`REQUIRED`: the spec must set it)."""
    name: str
    registry: str | None = None
    default: Any = None
    minimum: int | None = None   # integer axes: the smallest allowed value
    in_legend: bool = True       # named in legends and table columns when it varies
    about: str = ""

    @property
    def is_choice(self) -> bool:
        return self.registry is not None

    def entries(self):
        """The axis's Registry (imported on first use: registries import torch)."""
        module, _, name = self.registry.partition(":")
        return getattr(importlib.import_module(module), name)


REQUIRED = object()

AXES: tuple[Axis, ...] = (
    Axis("problem", "problems.catalog:PROBLEMS", REQUIRED, in_legend=False,
         about="what is minimised: a landscape, a model on data"),
    Axis("optimizer", "bench.optimizers:OPTIMIZERS", REQUIRED,
         about="the update rule (or a torch.optim.Optimizer by import path)"),
    Axis("schedule", "bench.schedules:SCHEDULES", "constant", about="the learning-rate schedule"),
    Axis("init", "bench.inits:INITS", "default", about="how a network's weights start"),
    Axis("batch_size", None, None, minimum=1, about="examples per step (null: full batch)"),
    Axis("regularizer", "bench.regularizers:REGULARIZERS", "none",
         about="what is added to the training loop to generalise better"),
    Axis("seed", None, REQUIRED, minimum=0, in_legend=False,
         about="the seed of every random draw of the cell"),
)
AXIS = {a.name: a for a in AXES}
AXIS_NAMES = tuple(AXIS)
CHOICE_AXES = tuple(a.name for a in AXES if a.is_choice)
LEGEND_AXES = tuple(a.name for a in AXES if a.in_legend)


@dataclass(frozen=True)
class Cell:
    """One point of the matrix, fully resolved: every axis's value, the budget, the measures.

    Axis values are read as attributes (`cell.optimizer`, `cell.seed`)."""
    experiment: str
    axes: dict
    budget: dict
    measures: tuple = field(default=())   # resolved measure choices {name, params}
    lr_scaling: dict | None = None        # {rule, base_batch_size}: lr scaled with batch size

    def __getattr__(self, name: str) -> Any:
        if name in AXIS:
            return self.axes[name]
        raise AttributeError(name)

    @property
    def id(self) -> str:
        return cell_id(self.to_dict())

    def to_dict(self) -> dict:
        out = {"experiment": self.experiment, **self.axes, "budget": self.budget,
               "measures": list(self.measures)}
        if self.lr_scaling:   # only when set: the ids of cells without it stay as they were
            out["lr_scaling"] = self.lr_scaling
        return out

    @classmethod
    def build(cls, experiment: str, budget: dict, measures: tuple = (),
              lr_scaling: dict | None = None, **axes: Any) -> Cell:
        """A cell from keyword axes, the unset ones at their defaults (`Cell.build("t",
        {"steps": 10}, problem=..., optimizer=..., seed=0)`). Choices are taken as given,
        not resolved: for the ids `bench run` uses, plan a spec."""
        unknown = set(axes) - set(AXIS)
        if unknown:
            raise TypeError(f"unknown axes {sorted(unknown)}; axes: {', '.join(AXIS)}")
        values = {}
        for a in AXES:
            if a.name not in axes and a.default is REQUIRED:
                raise TypeError(f"Cell.build needs the '{a.name}' axis")
            value = axes.get(a.name, a.default)
            values[a.name] = {"name": value, "params": {}} if isinstance(value, str) else value
        return cls(experiment, values, budget, tuple(
            {"name": m, "params": {}} if isinstance(m, str) else m for m in measures),
            lr_scaling)

    @classmethod
    def from_dict(cls, d: dict) -> Cell:
        return cls(d["experiment"], {a: d.get(a) for a in AXIS_NAMES}, d["budget"],
                   tuple(d.get("measures", ())), d.get("lr_scaling"))


def cell_id(cell: dict) -> str:
    """sha256 of the resolved cell, without presentation-only labels. A measure whose
    parameters are all at their defaults hashes as its bare name (measures took no
    parameters before; the ids of those results stay valid)."""
    bare = {k: ({kk: vv for kk, vv in v.items() if kk != "label"} if isinstance(v, dict) else v)
            for k, v in cell.items()}
    bare["measures"] = [m["name"] if isinstance(m, dict) and not m.get("params") else m
                        for m in bare.get("measures", ())]
    text = json.dumps(bare, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# ---- metrics ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    """What a metric means: which way is better, how it is named and drawn."""
    maximized: bool = False
    display: str = ""
    log_scale: bool = True
    in_table: bool = False      # its final value is a column of the summary tables


METRICS = {
    "train_loss": Metric(display="training loss", in_table=True),
    "suboptimality": Metric(display="f(x) − f*", in_table=True),
    "dist_to_opt": Metric(display="‖x − x*‖", in_table=True),
    "dist_to_saddle": Metric(display="‖x − saddle‖"),
    "grad_norm": Metric(display="‖∇f(x)‖"),
    "escaped": Metric(maximized=True, display="escaped the saddle", log_scale=False,
                      in_table=True),
    "train_accuracy": Metric(maximized=True, display="training accuracy", log_scale=False,
                             in_table=True),
    "val_accuracy": Metric(maximized=True, display="validation accuracy", log_scale=False,
                           in_table=True),
    "test_accuracy": Metric(maximized=True, display="test accuracy", log_scale=False,
                            in_table=True),
    "sharpness": Metric(display="sharpness (top Hessian eigenvalue)", in_table=True),
    "eps_sharpness": Metric(display="ε-sharpness", in_table=True),
    "hessian_trace": Metric(display="Hessian trace", log_scale=False, in_table=True),
    "gap_accuracy": Metric(display="gap: train − test accuracy", log_scale=False),
    "gap_loss": Metric(display="gap: test − train loss", log_scale=False),
    "sparsity": Metric(display="sparsity (fraction of |w| < 1e-3)", log_scale=False),
    "val_loss": Metric(display="validation loss"),
    "test_loss": Metric(display="test loss"),
}
# The metric a loss figure draws: the first of these that the runs record.
CURVE_METRICS = ("suboptimality", "dist_to_saddle", "train_loss")
# The summary table's columns, in order (final values; best test accuracy too).
TABLE_COLUMNS = tuple(f"final_{m}" for m, info in METRICS.items() if info.in_table) + (
    "best_test_accuracy",)
# History fields that are bookkeeping, not metrics (no final_/best_ summaries of them).
BOOKKEEPING = ("step", "epoch", "samples", "seconds", "lr", "function_evals", "gradient_evals",
               "hvp_evals", "hessian_evals", "grad_equivalents")


def metric_name(name: str) -> str:
    """`loss` in a target means the training loss."""
    return "train_loss" if name == "loss" else name


def metric(name: str) -> Metric:
    """A metric's meaning; unknown ones (a measure's, a plugin's) are guessed from the name."""
    if name in METRICS:
        return METRICS[name]
    return Metric(maximized="accuracy" in name, display=name.replace("_", " "),
                  log_scale="accuracy" not in name)


def maximized(name: str) -> bool:
    return metric(name).maximized


def target_met(metrics: dict, targets: dict) -> bool:
    """Every target reached: at least its value for maximised metrics, at most for the rest."""
    return bool(targets) and all(
        m in metrics and (metrics[m] >= v if maximized(m) else metrics[m] <= v)
        for m, v in targets.items())
