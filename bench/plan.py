"""Spec → cells: grids, zip, exclude and random draws, each cell bound to its factories.

A cell is fully resolved (every factory default filled in) and its id is a hash of that
resolution, so the same cell has the same id whatever the order or spelling of the spec.
"""
from __future__ import annotations

import itertools
import json
from typing import Any

import torch

from bench import choices, describe, filters
from bench.cell import AXES, AXIS, AXIS_NAMES, CHOICE_AXES, REQUIRED, Cell, metric_name
from bench.data import DataError
from bench.measures import MEASURES
from bench.registry import ChoiceError, bind_params, did_you_mean, normalized
from bench.spec import Experiment, Issues, Spec
from bench.yamlio import SpecError
from problems import PROBLEMS
from problems.base import Context


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
    return AXIS[axis].entries().get(name)


def _experiment_cells(exp: Experiment, issues: Issues) -> list[Cell]:
    try:
        return _plan_experiment(exp, issues)
    finally:
        exp.probes.clear()   # the problems built for checking (datasets included) are not kept


def _plan_experiment(exp: Experiment, issues: Issues) -> list[Cell]:
    before = len(issues)   # this experiment's own findings decide whether it is planned
    axes = {a.name: (_axis_choices(exp, a.name, issues) if a.is_choice else
                     [(v, {a.name: i}) for i, v in enumerate(_listed(exp, a.name))])
            for a in AXES}
    measures = _measures(exp, issues)
    _check_problem_fit(exp, axes, measures, issues)
    scaling = _lr_scaling(exp, axes, issues)
    zips = filters.zip_groups(exp, axes, issues)
    exclude = filters.exclude_patterns(exp, axes, issues)
    budget = normalized_budget(exp.data.get("budget") or {})
    if len(issues) > before:
        return []
    cells, seen = [], set()
    for combo in itertools.product(*(axes[a] for a in AXIS_NAMES)):
        values = dict(zip(AXIS_NAMES, combo))
        if not filters.zipped(values, zips):
            continue
        cell = Cell(exp.name, {a: values[a][0] for a in AXIS_NAMES}, budget, tuple(measures),
                    scaling)
        if cell.id not in seen and not any(filters.matches(cell, p) for p in exclude):
            seen.add(cell.id)   # the same cell written twice (or under two labels) runs once
            cells.append(cell)
    if not cells:
        issues.add(exp.where(()), f"experiment '{exp.name}' has no cells left after exclude/zip")
    _check_landscapes(exp, cells, measures, issues)
    return cells


def _lr_scaling(exp: Experiment, axes: dict, issues: Issues) -> dict | None:
    """The experiment's lr scaling as cells carry it (None for `rule: none`); every
    optimizer must have a learning rate to scale."""
    value = exp.data.get("lr_scaling")
    if not isinstance(value, dict) or value.get("rule", "none") == "none":
        return None
    for choice in _unique(c for c, _ in axes["problem"]):
        if not probe_problem(exp, choice).accepts_batch_size:
            issues.add(exp.where(("lr_scaling",)), f"lr_scaling scales the lr with the batch "
                       f"size, and problem '{choice['name']}' has no data to batch")
    for choice, coords in _unique_with(axes["optimizer"]):
        names = [p.name for p in entry_for("optimizer", choice["name"]).parameters()]
        if "lr" not in names:
            issues.add(exp.where(_choice_path(exp, "optimizer", coords)),
                       f"lr_scaling: optimizer '{choice['name']}' has no learning rate to "
                       "scale; leave it out of this experiment or set lr_scaling rule: none")
    return {"rule": value["rule"], "base_batch_size": value["base_batch_size"]}


def _check_landscapes(exp: Experiment, cells: list[Cell], measures: list[dict],
                      issues: Issues) -> None:
    """`landscapes` are choices of the LANDSCAPES registry; they start from checkpoints, and
    an interpolation's batch sizes must be ones the experiment runs."""
    from bench.landscape import LANDSCAPES, jobs
    raw = exp.data.get("landscapes")
    if raw is None:
        return
    if not isinstance(raw, list):
        issues.add(exp.where(("landscapes",)), "'landscapes' is a list of landscape names or "
                   f"{{name: …, params}} mappings; allowed: {', '.join(LANDSCAPES.names())}")
        return
    if raw and not any(m["name"] == "checkpoint" for m in measures):
        issues.add(exp.where(("landscapes",)), "landscapes start from the weights the "
                   "'checkpoint' measure saves: add checkpoint to this experiment's measures")
    sizes = {c.batch_size for c in cells}
    for i, item in enumerate(raw):
        try:
            choice = choices.parse(item)
            entry = LANDSCAPES.get(choice.name)
            bind_params(entry.factory, choice.params, f"landscape '{choice.name}'")
            spec = entry.factory(**choice.params)
        except ChoiceError as exc:
            issues.add(exp.where(("landscapes", i) + ((exc.key,) if exc.key else ())), str(exc))
            continue
        except (ValueError, TypeError) as exc:
            issues.add(exp.where(("landscapes", i)), f"landscape '{choice.name}': {exc}")
            continue
        if choice.name == "contour" and not any(_is_network(exp, c) for c in cells):
            issues.add(exp.where(("landscapes", i)), "a contour needs a network problem "
                       "(its directions are normalised filter by filter)")
        between = getattr(spec, "between", "init")
        missing = [b for b in (between["batch_size"] if isinstance(between, dict) else [])
                   if b not in sizes]
        if missing:
            issues.add(exp.where(("landscapes", i, "between")),
                       f"no cell of experiment '{exp.name}' has batch_size "
                       f"{', '.join(map(str, missing))}; its batch sizes: "
                       f"{', '.join(map(str, sorted(sizes, key=lambda b: (b is None, b or 0))))}")
        elif cells and not jobs(exp.name, [(choice.name, choice.params)], cells):
            issues.add(exp.where(("landscapes", i)),
                       f"landscape '{choice.name}' selects no cell (or no pair of cells that "
                       "differ only in batch size) of this experiment")


def _is_network(exp: Experiment, cell: Cell) -> bool:
    from problems.base import Network
    return isinstance(probe_problem(exp, cell.problem), Network)


def _listed(exp: Experiment, axis: str) -> list:
    value = exp.data.get(axis)
    return value if isinstance(value, list) else [value]


def _axis_choices(exp: Experiment, axis: str, issues: Issues) -> list[tuple[dict, dict]]:
    default = AXIS[axis].default
    value = exp.data.get(axis, None if default is REQUIRED else default)
    if value is None:
        if default is not REQUIRED:
            issues.add(exp.where((axis,)), f"'{axis}' is null; leave it out for "
                                           f"'{default}', or name a choice")
        return []
    items = value if isinstance(value, list) else [value]
    if not items:
        issues.add(exp.where((axis,)), f"'{axis}' is an empty list")
    out = []
    for i, item in enumerate(items):
        path = (axis, i) if isinstance(value, list) else (axis,)
        if axis == "regularizer" and isinstance(item, list):   # several in one cell
            out += [(c, {axis: i}) for c in _combined(exp, item, path, issues)]
            continue
        out += [(c, {f"{axis}.{k}": v for k, v in coords.items()} | {axis: i})
                for c, coords in _resolve(exp, axis, item, path, issues)]
    return out


def _combined(exp: Experiment, items: list, path: tuple, issues: Issues) -> list[dict]:
    """A list inside the regularizer list: one `combined` choice whose parts are resolved
    like any choice (one value each), labelled by joining the parts' names."""
    if not items:
        issues.add(exp.where(path), "a combined regularizer is a non-empty list of choices")
        return []
    parts = []
    for j, item in enumerate(items):
        resolved = _resolve(exp, "regularizer", item, path + (j,), issues)
        if len(resolved) > 1:
            issues.add(exp.where(path + (j,)), "a part of a combined regularizer takes one "
                       "value per parameter (no grids or random draws)")
        if len(resolved) != 1:
            return []
        part = resolved[0][0]
        if part["name"] in ("combined", "none"):
            issues.add(exp.where(path + (j,)), f"'{part['name']}' cannot be a part of a "
                       "combined regularizer")
            return []
        parts.append(part)
    label = " + ".join(p.get("label") or describe.short(
        "regularizer", p, describe.defaults_of("regularizer", p["name"])) for p in parts)
    bare = [{"name": p["name"], "params": p["params"]} for p in parts]
    return [{"name": "combined", "params": {"parts": bare}, "label": label}]


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


def _measures(exp: Experiment, issues: Issues) -> list[dict]:
    """Measures are choices like any other (`trajectory` or `{name: trajectory, max_points:
    200}`). A cell keeps only the parameters set off their defaults, so the ids of cells
    written before measures took parameters stay valid."""
    raw = exp.data.get("measures") or []
    if not isinstance(raw, list):
        issues.add(exp.where(("measures",)), "'measures' is a list of measure names or "
                   f"{{name: …, params}} mappings; allowed: {', '.join(MEASURES.names())}")
        return []
    out = []
    for i, item in enumerate(raw):
        try:
            choice = choices.parse(item)
            entry = MEASURES.get(choice.name)
            what = f"measure '{choice.name}'"
            bound = bind_params(entry.factory, choice.params, what)
            entry.factory(**choice.params)   # the measure's own range checks
        except ChoiceError as exc:
            issues.add(exp.where(("measures", i) + ((exc.key,) if exc.key else ())), str(exc))
            continue
        except (ValueError, TypeError) as exc:
            issues.add(exp.where(("measures", i)), f"measure '{choice.name}': {exc}")
            continue
        if any(m["name"] == choice.name for m in out):
            issues.add(exp.where(("measures", i)), f"measure '{choice.name}' is listed twice; "
                       "a cell records each measure once")
            continue
        defaults = bound.signature.parameters
        params = {k: v for k, v in choice.params.items() if v != defaults[k].default}
        out.append({"name": choice.name, "params": normalized(entry.factory, params)})
    return out


def _check_problem_fit(exp: Experiment, axes: dict, measures: list[dict], issues: Issues) -> None:
    """Every choice answers whether it suits each problem (`unsuitable(problem) -> reason`):
    an axis choice that does not suit a problem it meets is an error; a measure applies to
    the problems that suit it and is an error only when it suits none of them."""
    target = (exp.data.get("budget") or {}).get("target") or {}
    known, unsuited = set(), {i: [] for i in range(len(measures))}
    for choice in _unique(c for c, _ in axes["problem"]):
        problem = probe_problem(exp, choice)
        name = choice["name"]
        for axis in CHOICE_AXES[1:]:
            for value, coords in _unique_with(axes[axis]):
                reason = entry_for(axis, value["name"]).unsuitable(problem, value["params"])
                if reason:
                    issues.add(exp.where(_choice_path(exp, axis, coords)),
                               f"{axis} '{value['name']}' on problem '{name}': {reason}")
        if not problem.accepts_batch_size and any(v is not None for v, _ in axes["batch_size"]):
            issues.add(exp.where(("batch_size",)), f"problem '{name}' has no data to batch; "
                       "use its 'noise' parameter for stochastic gradients")
        for i, m in enumerate(measures):
            unsuited[i].append(MEASURES.get(m["name"]).unsuitable(problem, m["params"]))
            refused = None if unsuited[i][-1] else \
                MEASURES.get(m["name"]).factory(**m["params"]).refuses(problem)
            if refused:   # too expensive for this problem: an error wherever it happens
                issues.add(exp.where(("measures", i)),
                           f"measure '{m['name']}' on problem '{name}': {refused}")
        known.update(problem.metric_names())
    for i, reasons in unsuited.items():   # a measure applies to the problems that suit it
        if reasons and all(reasons):
            issues.add(exp.where(("measures", i)),
                       f"measure '{measures[i]['name']}' suits no problem here: {reasons[0]}")
    for metric in target:   # a target applies to the problems that have its metric
        if metric_name(metric) not in known:
            issues.add(exp.where(("budget", "target", metric)),
                       f"no problem of experiment '{exp.name}' has a metric '{metric}'; "
                       f"{did_you_mean(metric, ['loss'] + sorted(known))}")


def _unique(items) -> list:
    seen: dict = {}
    for item in items:
        seen.setdefault(json.dumps(item, sort_keys=True), item)
    return list(seen.values())


def _unique_with(pairs: list) -> list:
    seen: dict = {}
    for value, coords in pairs:
        seen.setdefault(json.dumps(value, sort_keys=True), (value, coords))
    return list(seen.values())


def _choice_path(exp: Experiment, axis: str, coords: dict) -> tuple:
    """Where a choice was written: `(axis, i)` in a list, else `(axis,)`."""
    return (axis, coords[axis]) if isinstance(exp.data.get(axis), list) else (axis,)


def normalized_budget(budget: dict) -> dict:
    """One spelling per budget: `loss` is `train_loss`, counts are ints, the rest floats."""
    out = {k: (float(v) if k in ("epochs", "time_limit") else v) for k, v in budget.items()}
    if "target" in out:
        out["target"] = {metric_name(k): float(v) for k, v in out["target"].items()}
    return out


def filter_cells(cells: list[Cell], only: list[str]) -> list[Cell]:
    """Keep the cells that match any of the `--only` filters (all cells when none given)."""
    if not only:
        return cells
    wanted = [filters.parse_only(text) for text in only]
    return [c for c in cells if any(filters.only_matches(c, c.id, w) for w in wanted)]
