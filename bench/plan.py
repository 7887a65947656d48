"""Spec → cells: grids, zip, exclude and random draws, each cell bound to its factories.

A cell is fully resolved (every factory default filled in) and its id is a hash of that
resolution, so the same cell has the same id whatever the order or spelling of the spec.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from bench import choices, filters, optimizers
from bench.data import DataError
from bench.inits import INITS
from bench.measures import MEASURES
from bench.optim.flat import too_many_params_message
from bench.registry import ChoiceError, bind_params, did_you_mean, normalized
from bench.regularizers import REGULARIZERS
from bench.schedules import SCHEDULES
from bench.spec import AXES, Experiment, Issues, Spec
from bench.yamlio import SpecError
from problems import PROBLEMS
from problems.base import Context

CHOICE_AXES = ("problem", "optimizer", "schedule", "init", "regularizer")
DEFAULT_CHOICE = {"schedule": "constant", "init": "default", "regularizer": "none"}
REGISTRIES = {"problem": PROBLEMS, "schedule": SCHEDULES, "init": INITS,
              "regularizer": REGULARIZERS}


@dataclass(frozen=True)
class Cell:
    experiment: str
    problem: dict
    optimizer: dict
    schedule: dict
    init: dict
    regularizer: dict
    batch_size: int | None
    seed: int
    budget: dict
    measures: tuple = field(default=())

    @property
    def id(self) -> str:
        return cell_id(asdict(self))

    def to_dict(self) -> dict:
        return dict(asdict(self), measures=list(self.measures))

    @classmethod
    def from_dict(cls, d: dict) -> Cell:
        return cls(**dict(d, measures=tuple(d.get("measures", ()))))


def cell_id(cell: dict) -> str:
    """sha256 of the resolved cell without presentation-only labels."""
    bare = {k: ({kk: vv for kk, vv in v.items() if kk != "label"} if isinstance(v, dict) else v)
            for k, v in cell.items()}
    bare["measures"] = list(bare.get("measures", ()))
    text = json.dumps(bare, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def make_cells(spec: Spec) -> list[Cell]:
    """Every cell of the spec; raises SpecError with all problems, the spec's own included."""
    issues = Issues(spec.issues)
    cells: list[Cell] = []
    for exp in spec.experiments:
        if exp.checked:
            cells += _experiment_cells(exp, issues)
    if issues:
        raise SpecError(issues)
    return cells


def entry_for(axis: str, name: str):
    return optimizers.lookup(name) if axis == "optimizer" else REGISTRIES[axis].get(name)


def _experiment_cells(exp: Experiment, issues: Issues) -> list[Cell]:
    axes = {axis: _axis_choices(exp, axis, issues) for axis in CHOICE_AXES}
    axes["batch_size"] = [(v, {"batch_size": i}) for i, v in enumerate(_listed(exp, "batch_size"))]
    axes["seed"] = [(v, {"seed": i}) for i, v in enumerate(_listed(exp, "seed"))]
    measures = _measures(exp, issues)
    _check_problem_fit(exp, axes, measures, issues)
    zips = filters.zip_groups(exp, axes, issues)
    exclude = filters.exclude_patterns(exp, axes, issues)
    budget = normalized_budget(exp.data.get("budget") or {})
    exp.probes.clear()   # the problems built for checking (datasets included) are not kept
    if issues:
        return []
    cells, seen = [], set()
    for combo in itertools.product(*(axes[a] for a in AXES)):
        values = dict(zip(AXES, combo))
        if not filters.zipped(values, zips):
            continue
        cell = Cell(exp.name, **{a: values[a][0] for a in AXES},
                    budget=budget, measures=tuple(measures))
        if cell.id not in seen and not any(filters.matches(cell, p) for p in exclude):
            seen.add(cell.id)   # the same cell written twice (or under two labels) runs once
            cells.append(cell)
    if not cells:
        issues.add(exp.where(()), f"experiment '{exp.name}' has no cells left after exclude/zip")
    return cells


def _listed(exp: Experiment, axis: str) -> list:
    value = exp.data.get(axis)
    return value if isinstance(value, list) else [value]


def _axis_choices(exp: Experiment, axis: str, issues: Issues) -> list[tuple[dict, dict]]:
    value = exp.data.get(axis, DEFAULT_CHOICE.get(axis))
    if value is None:
        if axis in DEFAULT_CHOICE:
            issues.add(exp.where((axis,)), f"'{axis}' is null; leave it out for "
                                           f"'{DEFAULT_CHOICE[axis]}', or name a choice")
        return []
    items = value if isinstance(value, list) else [value]
    if not items:
        issues.add(exp.where((axis,)), f"'{axis}' is an empty list")
    out = []
    for i, item in enumerate(items):
        path = (axis, i) if isinstance(value, list) else (axis,)
        out += [(c, {f"{axis}.{k}": v for k, v in coords.items()} | {axis: i})
                for c, coords in _resolve(exp, axis, item, path, issues)]
    return out


def _resolve(exp: Experiment, axis: str, item: Any, path: tuple, issues: Issues) -> list:
    try:
        raw = choices.parse(item)
        entry = entry_for(axis, raw.name)
        seed_text = f"{exp.name}/{'/'.join(map(str, path))}"
        concrete = choices.expand(raw, entry, exp.data.get("samples"), seed_text)
    except ChoiceError as exc:
        where = path + ("name",) if isinstance(item, dict) and "name" in item else path
        issues.add(exp.where(path + (exc.key,) if exc.key else where), str(exc))
        return []
    out = []
    for choice in concrete:
        resolved = _bind(exp, axis, entry, choice, path, issues)
        if resolved is None:
            return out   # one message per written choice is enough
        out.append((resolved, choice.coords))
    return out


def _bind(exp: Experiment, axis: str, entry, choice, path: tuple, issues: Issues) -> dict | None:
    what = f"{axis} '{choice.name}'"
    try:
        bound = bind_params(entry.factory, choice.params, what, entry.skip_params)
        bound.apply_defaults()
        params = {k: _plain(v) for k, v in bound.arguments.items()}
        params = normalized(entry.factory, {k: v for k, v in params.items() if v is not _SKIP})
        _construct(exp, axis, entry, choice.name, params)
    except ChoiceError as exc:
        issues.add(exp.where(path + (exc.key,) if exc.key else path), str(exc))
        return None
    except (ValueError, TypeError, RuntimeError, DataError) as exc:
        issues.add(exp.where(path), f"{what}: {exc}")
        return None
    out = {"name": choice.name, "params": params}
    if choice.label:
        out["label"] = choice.label
    return out


_SKIP = object()


def _plain(value: Any) -> Any:
    """JSON-safe parameter values; anything else (a default object) is left out of the cell."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return _SKIP if any(v is _SKIP for v in items) else items
    return _SKIP


def _construct(exp: Experiment, axis: str, entry, name: str, params: dict) -> None:
    """Build the object once on dummy inputs, so the factory's own checks run now. Problems
    are kept (per experiment) for the checks that need them, and built once per choice."""
    if axis == "optimizer":
        entry.factory([torch.zeros(2, requires_grad=True)], **params)
    elif axis == "problem":
        probe_problem(exp, {"name": name, "params": params})
    else:
        entry.factory(**params)


def probe_problem(exp: Experiment, choice: dict):
    key = json.dumps(choice, sort_keys=True)
    if key not in exp.probes:
        ctx = Context(0, torch.device("cpu"), torch.Generator().manual_seed(0),
                      data_dir=exp.data_dir)
        exp.probes[key] = PROBLEMS.get(choice["name"]).factory(ctx, **choice["params"])
    return exp.probes[key]


def _measures(exp: Experiment, issues: Issues) -> list[str]:
    raw = exp.data.get("measures") or []
    if not isinstance(raw, list) or not all(isinstance(m, str) for m in raw):
        issues.add(exp.where(("measures",)), f"'measures' is a list of names; "
                                             f"allowed: {', '.join(MEASURES.names())}")
        return []
    for i, name in enumerate(raw):
        if name not in MEASURES:
            issues.add(exp.where(("measures", i)), f"unknown measure '{name}'; "
                                                   f"{did_you_mean(name, MEASURES.names())}")
    return [m for m in raw if m in MEASURES]


def _check_problem_fit(exp: Experiment, axes: dict, measures: list[str], issues: Issues) -> None:
    """Axes a problem cannot use are errors, not silently ignored."""
    target = (exp.data.get("budget") or {}).get("target") or {}
    seen, known, reasons = set(), set(), {}
    for choice, _coords in axes["problem"]:
        key = json.dumps(choice, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        problem = probe_problem(exp, {"name": choice["name"], "params": choice["params"]})
        name = choice["name"]
        if not problem.accepts_init and any(c["name"] != "default" for c, _ in axes["init"]):
            issues.add(exp.where(("init",)), f"problem '{name}' has no layers to initialise: "
                                             "leave 'init' out (it is 'default')")
        if not problem.accepts_batch_size and any(v is not None for v, _ in axes["batch_size"]):
            issues.add(exp.where(("batch_size",)), f"problem '{name}' has no data to batch; "
                       "use its 'noise' parameter for stochastic gradients")
        reasons.update({m: MEASURES.get(m).factory.unsuitable(problem) for m in measures
                        if reasons.get(m, "") is not None})
        known.update(problem.metric_names())
        _check_dense_limits(exp, name, problem, axes["optimizer"], issues)
    for m, reason in reasons.items():   # a measure applies to the problems that suit it
        if reason:
            issues.add(exp.where(("measures",)), f"measure '{m}' suits no problem here: {reason}")
    for metric in target:   # a target applies to the problems that have its metric
        if metric_name(metric) not in known:
            issues.add(exp.where(("budget", "target", metric)),
                       f"no problem of experiment '{exp.name}' has a metric '{metric}'; "
                       f"{did_you_mean(metric, ['loss'] + sorted(known))}")


def _check_dense_limits(exp: Experiment, name: str, problem, optimizer_axis, issues) -> None:
    """Methods that form an n×n matrix refuse big problems now, not after hours of queueing."""
    n = sum(p.numel() for p in problem.parameters())
    for choice, _coords in optimizer_axis:
        limit = choice["params"].get("max_params")
        if isinstance(limit, int) and n > limit:
            issues.add(exp.where(("optimizer",)), f"optimizer '{choice['name']}' on problem "
                       f"'{name}': " + too_many_params_message(choice["name"], n, limit))


def normalized_budget(budget: dict) -> dict:
    """One spelling per budget: `loss` is `train_loss`, counts are ints, the rest floats."""
    out = {k: (float(v) if k in ("epochs", "time_limit") else v) for k, v in budget.items()}
    if "target" in out:
        out["target"] = {metric_name(k): float(v) for k, v in out["target"].items()}
    return out


def metric_name(name: str) -> str:
    """`loss` in a target means the training loss."""
    return "train_loss" if name == "loss" else name


def filter_cells(cells: list[Cell], only: list[str]) -> list[Cell]:
    """Keep the cells that match any of the `--only` filters (all cells when none given)."""
    if not only:
        return cells
    wanted = [filters.parse_only(text) for text in only]
    return [c for c in cells if any(filters.only_matches(c, c.id, w) for w in wanted)]
