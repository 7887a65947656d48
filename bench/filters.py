"""Selecting cells: `exclude:` patterns and `zip:` groups in a spec, `--only` on the CLI."""
from __future__ import annotations

from typing import Any

from bench.cell import AXIS_NAMES
from bench.registry import did_you_mean
from bench.spec import Experiment, Issues


# ---- zip -------------------------------------------------------------------------------
def zip_groups(exp: Experiment, axes: dict, issues: Issues) -> list[list[str]]:
    """`zip: [a, b]` or `zip: [[a, b], [c, d]]`, members `axis` or `axis.param`; checked."""
    raw = exp.data.get("zip")
    if raw is None:
        return []
    groups = raw if raw and all(isinstance(g, list) for g in raw) else [raw]
    sizes = _coordinate_sizes(axes)
    out = []
    for gi, group in enumerate(groups):
        path = ("zip", gi) if groups is raw else ("zip",)
        if not (isinstance(group, list) and len(group) >= 2 and all(isinstance(m, str) for m in group)):
            issues.add(exp.where(path), "a zip group is a list of two or more 'axis' or "
                                        "'axis.param' names, e.g. [problem.kappa, optimizer.lr]")
            continue
        bad = [m for m in group if m not in sizes]
        for m in bad:
            issues.add(exp.where(path), f"zip member '{m}' is not a list in this experiment; "
                                        f"{did_you_mean(m, sorted(sizes))}")
        lengths = {m: sizes[m] for m in group if m in sizes}
        if not bad and len(set().union(*lengths.values())) > 1:
            issues.add(exp.where(path), "zipped lists must have equal lengths, got "
                       + ", ".join(f"{m}: {' and '.join(map(str, sorted(n)))}"
                                   for m, n in lengths.items()))
        out.append(group)
    return out


def _coordinate_sizes(axes: dict) -> dict[str, set]:
    """For each zippable list (`axis` or `axis.param`), the lengths it has in the choices that
    write it as a list: a parameter must be zipped with equally long lists everywhere."""
    per_choice: dict[tuple, int] = {}
    for axis, items in axes.items():
        for _value, coords in items:
            for key, index in coords.items():
                owner = coords.get(axis) if "." in key else None
                per_choice[key, owner] = max(per_choice.get((key, owner), 0), index + 1)
    sizes: dict[str, set] = {}
    for (key, _owner), n in per_choice.items():
        if n > 1 or "." not in key:
            sizes.setdefault(key, set()).add(n)
    return sizes


def zipped(combo: dict, groups: list[list[str]]) -> bool:
    coords: dict = {}
    for _value, c in combo.values():
        coords.update(c)
    for group in groups:
        seen = {coords[m] for m in group if m in coords}
        if len(seen) > 1:
            return False
    return True


# ---- exclude -----------------------------------------------------------------------------
def exclude_patterns(exp: Experiment, axes: dict, issues: Issues) -> list[dict]:
    names = {axis: {c["name"] for c, _ in items} for axis, items in axes.items()
             if items and isinstance(items[0][0], dict)}
    raw = exp.data.get("exclude")
    if raw is None:
        return []
    patterns = raw if isinstance(raw, list) else [raw]
    for i, pattern in enumerate(patterns):
        path = ("exclude", i) if isinstance(raw, list) else ("exclude",)
        if not isinstance(pattern, dict) or not pattern:
            issues.add(exp.where(path), "an exclude entry maps axes to values, "
                                        "e.g. {optimizer: sgd, problem: {kappa: 1000}}")
            continue
        for key, want in pattern.items():
            if key not in AXIS_NAMES:
                issues.add(exp.where(path + (key,)),
                           f"exclude names unknown axis '{key}'; {did_you_mean(str(key), list(AXIS_NAMES))}")
            elif key in names:
                _check_names(exp, path + (key,), want, names[key], issues)
    return [p for p in patterns if isinstance(p, dict)]


def _check_names(exp: Experiment, path: tuple, want, present: set, issues: Issues) -> None:
    """An exclude pattern naming a choice the experiment does not have excludes nothing:
    almost always a typo, so it is an error."""
    wanted = want.get("name") if isinstance(want, dict) else want
    for name in wanted if isinstance(wanted, list) else [wanted]:
        if isinstance(name, str) and name not in present:
            issues.add(exp.where(path), f"exclude names '{name}', which this experiment does "
                                        f"not have; {did_you_mean(name, sorted(present))}")


def matches(cell, pattern: dict) -> bool:
    return all(_axis_matches(getattr(cell, axis), want) for axis, want in pattern.items())


def _axis_matches(have: Any, want: Any) -> bool:
    if isinstance(have, dict):   # a choice: {name, params}
        if isinstance(want, str):
            return have["name"] == want
        if isinstance(want, dict):
            return all(_one_of(have["name"] if k == "name" else have["params"].get(k), v)
                       for k, v in want.items() if k != "label")
        return False
    return _one_of(have, want)


def _one_of(have: Any, want: Any) -> bool:
    return have in want if isinstance(want, list) and not isinstance(have, list) else have == want


# ---- --only -------------------------------------------------------------------------------
ONLY_KEYS = ("experiment", "id") + AXIS_NAMES


def parse_only(text: str) -> dict[str, str]:
    """`adam`, `experiment=conditioning`, `optimizer=adam,problem.kappa=100`, `id=ab12…`."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip() if sep else "experiment"
        if key.partition(".")[0] not in ONLY_KEYS:
            raise ValueError(f"--only {text}: unknown key '{key}'; "
                             f"{did_you_mean(key.partition('.')[0], list(ONLY_KEYS))}")
        out[key] = value.strip() if sep else part
    return out


def only_matches(cell, cell_id: str, wanted: dict[str, str]) -> bool:
    return all(_field_matches(cell, cell_id, key, value) for key, value in wanted.items())


def _field_matches(cell, cell_id: str, key: str, text: str) -> bool:
    if key == "id":
        return cell_id.startswith(text)
    axis, _, param = key.partition(".")
    value = getattr(cell, axis, None)
    if isinstance(value, dict):
        if not param:
            return text in (value["name"], value.get("label"))
        value = value["params"].get(param)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(text) == value
        except ValueError:
            return False
    return value is not None and str(value) == text
