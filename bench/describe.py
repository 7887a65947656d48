"""Short human names for choices and cells: `adam(lr=0.1)`, for tables, legends and `bench list`."""
from __future__ import annotations

import inspect

from bench import plan


def defaults_of(axis: str, name: str) -> dict:
    try:
        entry = plan.entry_for(axis, name)
    except ValueError:
        return {}
    params = list(inspect.signature(entry.factory).parameters.values())[entry.skip_params:]
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


ALWAYS_SHOWN = {"optimizer": ("lr",)}   # the learning rate is named even at its default


def short(axis: str, choice: dict, show: tuple = ()) -> str:
    """`name(k=v, …)` with the parameters off their defaults, plus those in `show`."""
    if choice.get("label"):
        return choice["label"]
    base = defaults_of(axis, choice["name"])
    show = tuple(show) + ALWAYS_SHOWN.get(axis, ())
    changed = {k: v for k, v in choice["params"].items()
               if k not in base or base[k] != v or k in show}
    if not changed:
        return choice["name"]
    return f"{choice['name']}(" + ", ".join(f"{k}={_fmt(v)}" for k, v in changed.items()) + ")"


def _fmt(v) -> str:
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.4g}"
    return str(v)


def cell_row(cell) -> dict:
    return {"experiment": cell.experiment, "problem": short("problem", cell.problem),
            "optimizer": short("optimizer", cell.optimizer),
            "schedule": short("schedule", cell.schedule), "init": short("init", cell.init),
            "regularizer": short("regularizer", cell.regularizer),
            "batch_size": cell.batch_size, "seed": cell.seed}
