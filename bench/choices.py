"""Axis choices: `name` or `{name: …, label: …, params…}`, with grids and random draws.

A list inside params expands as a grid, unless the parameter itself takes a list (its
annotation says so), in which case only a list of lists is a grid. `{loguniform: [lo, hi]}`
and `{uniform: [lo, hi]}` are drawn `samples` times from a generator seeded by the choice's
place in the spec, so draws are reproducible and independent of everything else.
"""
from __future__ import annotations

import hashlib
import itertools
import math
import typing
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.registry import ChoiceError, Entry

DISTRIBUTIONS = ("loguniform", "uniform")


@dataclass(frozen=True)
class Choice:
    """One concrete choice: a name, its parameters and its grid coordinates (for `zip`)."""
    name: str
    params: dict
    label: str | None = None
    coords: dict = field(default_factory=dict)   # "param" -> index in its grid list


@dataclass
class RawChoice:
    name: str
    params: dict
    label: str | None


def parse(value: Any) -> RawChoice:
    if isinstance(value, str):
        return RawChoice(value, {}, None)
    if not isinstance(value, dict):
        raise ChoiceError(f"a choice is a name or a mapping with 'name', got {value!r}")
    if "name" not in value or not isinstance(value["name"], str):
        raise ChoiceError("a choice mapping needs 'name: <registered name>'")
    label = value.get("label")
    if label is not None and not isinstance(label, str):
        raise ChoiceError("label must be a string", "label")
    params = {k: v for k, v in value.items() if k not in ("name", "label")}
    return RawChoice(value["name"], params, label)


def takes_list(entry: Entry, key: str) -> bool:
    target = entry.factory.__init__ if isinstance(entry.factory, type) else entry.factory
    try:
        hint = typing.get_type_hints(target).get(key)
    except Exception:
        return False
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, _UnionType()) \
        else (hint,)
    return any(typing.get_origin(h) in (list, tuple) or h in (list, tuple) for h in options)


def _UnionType():
    import types
    return types.UnionType


def is_distribution(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in DISTRIBUTIONS


def check_distribution(value: dict, key: str) -> None:
    kind, bounds = next(iter(value.items()))
    if not (isinstance(bounds, list) and len(bounds) == 2
            and all(isinstance(b, (int, float)) and not isinstance(b, bool)
                    and math.isfinite(b) for b in bounds)):
        raise ChoiceError(f"'{key}': {kind} takes [low, high], two finite numbers, "
                          f"got {bounds!r}", key)
    lo, hi = bounds
    if not lo < hi:
        raise ChoiceError(f"'{key}': {kind} needs low < high, got [{lo}, {hi}]", key)
    if kind == "loguniform" and lo <= 0:
        raise ChoiceError(f"'{key}': loguniform needs low > 0, got {lo}", key)


def grid_axes(raw: RawChoice, entry: Entry) -> tuple[dict, dict, dict]:
    """Split params into fixed values, grid lists and distributions."""
    fixed, grids, dists = {}, {}, {}
    for key, value in raw.params.items():
        if is_distribution(value):
            check_distribution(value, key)
            dists[key] = value
        elif isinstance(value, list) and _is_grid(value, takes_list(entry, key)):
            if not value:
                raise ChoiceError(f"'{key}': an empty list gives no cells", key)
            grids[key] = value
        else:
            fixed[key] = value
    return fixed, grids, dists


def _is_grid(value: list, param_takes_list: bool) -> bool:
    return not param_takes_list or all(isinstance(v, list) for v in value)


def expand(raw: RawChoice, entry: Entry, samples: int | None, seed_text: str) -> list[Choice]:
    """Every concrete choice a raw choice stands for (grid product × random draws)."""
    fixed, grids, dists = grid_axes(raw, entry)
    draws = _draws(dists, samples, seed_text, raw) if dists else [{}]
    keys = list(grids)
    out = []
    for index in itertools.product(*(range(len(grids[k])) for k in keys)):
        for d, draw in enumerate(draws):
            params = dict(fixed, **{k: grids[k][i] for k, i in zip(keys, index)}, **draw)
            coords = dict(zip(keys, index))
            if dists:
                coords["#sample"] = d
            out.append(Choice(raw.name, params, raw.label, coords))
    return out


def _draws(dists: dict, samples: int | None, seed_text: str, raw: RawChoice) -> list[dict]:
    if samples is None:
        raise ChoiceError(f"{raw.name}: random search ({', '.join(dists)}) needs 'samples: N' "
                          "in the experiment")
    digest = hashlib.sha256(seed_text.encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    out = []
    for _ in range(samples):
        draw = {}
        for key, spec in dists.items():
            kind, (lo, hi) = next(iter(spec.items()))
            if kind == "loguniform":
                draw[key] = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
            else:
                draw[key] = float(rng.uniform(lo, hi))
        out.append(draw)
    return out
