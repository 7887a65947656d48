"""Results → flat rows with dotted columns (`optimizer.lr`), and grouping across seeds."""
from __future__ import annotations

import statistics
from collections import defaultdict

from bench import describe
from bench.cell import AXIS, AXIS_NAMES, CHOICE_AXES

KEY_AXES = tuple(a for a in AXIS_NAMES if a != "seed")   # a configuration: all but the seed


def defaults(result: dict, axis: str) -> dict:
    """The defaults of the result's choice on `axis`, as stored with it; results written
    before they were stored ask the registry when torch is importable."""
    if "defaults" in result:
        return result["defaults"].get(axis, {})
    try:
        return describe.defaults_of(axis, result["cell"][axis]["name"])
    except ImportError:
        return {}


def flatten(result: dict) -> dict:
    cell = result["cell"]
    row = {"id": result["id"], "status": result["status"], "experiment": cell["experiment"]}
    for axis in CHOICE_AXES:
        row[axis] = describe.short(axis, cell[axis], defaults(result, axis))
        for k, v in cell[axis]["params"].items():
            row[f"{axis}.{k}"] = v
    for axis in AXIS_NAMES:
        if not AXIS[axis].is_choice:
            row[axis] = cell[axis]
    for k, v in result["summary"].items():
        if k != "measures":
            row[k] = v
    return row


def varying_params(results: list[dict]) -> dict[str, tuple]:
    """Per axis, the (choice name, parameter) pairs whose values differ between the results:
    those parameters are shown in names even at their defaults."""
    out = {}
    for axis in CHOICE_AXES:
        seen: dict[tuple, set] = {}   # (choice name, param) -> values seen
        for r in results:
            choice = r["cell"][axis]
            for k, v in choice["params"].items():
                seen.setdefault((choice["name"], k), set()).add(repr(v))
        out[axis] = {key for key, vals in seen.items() if len(vals) > 1}
    return out


def name_of(result: dict, axis: str, show: dict | None = None) -> str:
    choice = result["cell"][axis]
    params = tuple(k for name, k in (show or {}).get(axis, ()) if name == choice["name"])
    return describe.short(axis, choice, defaults(result, axis), params)


def config_key(result: dict, show: dict | None = None) -> tuple:
    """Everything but the seed (the runs a median is taken over), as (axis, value) pairs:
    `dict(key)["optimizer"]` is the optimizer's name."""
    c = result["cell"]
    return (("experiment", c["experiment"]),) + tuple(
        (a, name_of(result, a, show) if AXIS[a].is_choice else c[a]) for a in KEY_AXES)


def group_by_config(results: list[dict], show: dict | None = None) -> dict[tuple, list[dict]]:
    show = varying_params(results) if show is None else show
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        groups[config_key(r, show)].append(r)
    return dict(groups)


def median(values: list) -> float | None:
    finite = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(finite) if finite else None
