"""Short human names for choices and cells: `adam(lr=0.1)`, for tables, legends and `bench list`.

Naming is pure (it takes the choice's defaults as data), so the report names choices from
what a Result stores; only `defaults_of` asks a registry, at plan and run time.
"""
from __future__ import annotations

import inspect

from bench.cell import AXIS, CHOICE_AXES, Cell

ALWAYS_SHOWN = {"optimizer": ("lr",)}   # the learning rate is named even at its default


def defaults_of(axis: str, name: str) -> dict:
    """The scalar parameter defaults of a registered choice ({} when it is unknown).
    Sequence-valued parameters (a network's layer widths, a toy problem's examples) are left
    out, so they are always named: they say what the model is."""
    try:
        entry = AXIS[axis].entries().get(name)
    except ValueError:
        return {}
    params = list(inspect.signature(entry.factory).parameters.values())[entry.skip_params:]
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty
            and (p.default is None or isinstance(p.default, (bool, int, float, str)))}


def cell_defaults(cell: Cell) -> dict:
    """Per choice axis, the defaults of the cell's choice: stored in its Result."""
    return {axis: defaults_of(axis, getattr(cell, axis)["name"]) for axis in CHOICE_AXES}


def short(axis: str, choice: dict, defaults: dict, show: tuple = ()) -> str:
    """`name(k=v, …)` with the parameters off their `defaults`, plus those in `show`."""
    if choice.get("label"):
        return choice["label"]
    show = tuple(show) + ALWAYS_SHOWN.get(axis, ())
    changed = {k: v for k, v in choice["params"].items()
               if k not in defaults or defaults[k] != v or k in show}
    if not changed:
        return choice["name"]
    return f"{choice['name']}(" + ", ".join(f"{k}={_fmt(v)}" for k, v in changed.items()) + ")"


def _fmt(v) -> str:
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.4g}"
    return str(v)


def cell_row(cell: Cell) -> dict:
    row = {"experiment": cell.experiment}
    for axis in AXIS:
        value = getattr(cell, axis)
        row[axis] = (short(axis, value, defaults_of(axis, value["name"]))
                     if AXIS[axis].is_choice else value)
    return row
