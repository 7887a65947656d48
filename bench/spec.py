"""YAML → Spec: the top level, profiles, defaults merged into experiments, budgets.

Every problem found is collected as an Issue with its file:line:col and reported together;
the axes' choices are checked against their registries when the spec is planned (plan.py).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from bench.cell import AXES, AXIS_NAMES, REQUIRED
from bench.registry import did_you_mean
from bench.yamlio import Issue, Mark, SpecError, load

EXPERIMENT_KEYS = ("about",) + AXIS_NAMES + ("budget", "exclude", "zip", "samples", "measures",
                                              "lr_scaling", "landscapes")
LR_RULES = ("none", "linear", "sqrt")
TOP_KEYS = ("name", "about", "seeds", "defaults", "profiles", "experiments", "data_dir",
            "compare")
PROFILE_KEYS = ("about", "seeds", "defaults", "experiments", "only", "compare")
BUDGET_KEYS = ("steps", "epochs", "eval_every", "evals_per_epoch", "time_limit", "target")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class Experiment:
    name: str
    data: dict                       # defaults, profile and experiment merged
    origin: dict                     # merged path -> path in the file
    marks: dict
    file: str
    data_dir: str | None = None      # the spec's data_dir, resolved against its folder
    probes: dict = field(default_factory=dict, repr=False)   # problems built while checking
    checked: bool = True             # False when its own keys are wrong: it is not planned

    def where(self, path: tuple) -> Mark:
        """The file position a merged path came from (its nearest located ancestor)."""
        for cut in range(len(path), -1, -1):
            if path[:cut] in self.origin:
                source = self.origin[path[:cut]] + path[cut:]
                for k in range(len(source), -1, -1):
                    if source[:k] in self.marks:
                        return self.marks[source[:k]]
        return Mark(self.file, 1, 1)


@dataclass
class Spec:
    name: str
    about: str
    file: str
    profile: str | None
    experiments: list[Experiment]
    issues: list = field(default_factory=list)   # found while loading; planning raises them
    compare: dict = field(default_factory=dict)  # metric -> tolerance for `bench compare`


class Issues(list):
    def add(self, mark: Mark, message: str) -> None:
        self.append(Issue(mark, message))


def load_spec(path: str, profile: str | None = None) -> Spec:
    file = str(path)
    try:
        text = FsPath(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Issue(Mark(file, 1, 1), f"cannot read spec: {exc}")]) from None
    data, marks = load(text, file)
    issues = Issues()
    at = lambda p: marks.get(p, Mark(file, 1, 1))  # noqa: E731
    if not isinstance(data, dict):
        raise SpecError([Issue(at(()), "a spec is a mapping with 'name' and 'experiments'")])
    _check_keys(data, (), TOP_KEYS, "spec", at, issues)
    if "data_dir" in data and not isinstance(data["data_dir"], str):
        issues.add(at(("data_dir",)), "'data_dir' must be a folder path (a string)")
    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        issues.add(at(("name",)) if "name" in data else at(()),
                   "'name' must be a string of letters, digits, '.', '_' or '-' "
                   "(results go to results/<name>/)")
    prof = _select_profile(data, profile, at, issues)
    experiments = _experiments(data, prof, marks, file, at, issues)
    experiments = _only(experiments, prof, ("profiles", _profile_name(data, prof)), at, issues)
    compare = _compare_section(data, prof, ("profiles", _profile_name(data, prof)), at, issues)
    # not raised yet: planning adds its own findings, so that all are reported together
    return Spec(str(name), str(data.get("about", "")), file, profile, experiments, list(issues),
                compare)


def _only(experiments: list, prof: dict, prof_path: tuple, at, issues: Issues) -> list:
    """A profile's `only: [experiment, …]` runs just those experiments (a CI profile)."""
    if "only" not in prof:
        return experiments
    only = prof["only"]
    names = [e.name for e in experiments]
    if not isinstance(only, list) or not only or not all(isinstance(n, str) for n in only):
        issues.add(at(prof_path + ("only",)), "'only' must be a non-empty list of experiment "
                                              f"names; allowed: {', '.join(names)}")
        return experiments
    for i, n in enumerate(only):
        if n not in names:
            issues.add(at(prof_path + ("only", i)),
                       f"'only' names unknown experiment '{n}'; {did_you_mean(n, names)}")
    return [e for e in experiments if e.name in only]


def _compare_section(data: dict, prof: dict, prof_path: tuple, at, issues: Issues) -> dict:
    """`compare: {metric: tolerance}` (the profile's entries over the top level's), checked
    here so that a typo fails at its line, not in CI."""
    from bench.compare import ToleranceError, parse_tolerance
    out = {}
    for section, path in ((data.get("compare"), ("compare",)),
                          (prof.get("compare"), prof_path + ("compare",))):
        if section is None:
            continue
        if not isinstance(section, dict):
            issues.add(at(path), "'compare' must map metric names to tolerances, e.g. "
                                 "{seconds_per_step: 10%, steps_to_target: 0}")
            continue
        for metric, tolerance in section.items():
            try:
                parse_tolerance(str(metric), tolerance)
            except ToleranceError as exc:
                issues.add(at(path + (metric,)), str(exc))
                continue
            out[str(metric)] = tolerance
    return out


def _check_keys(obj: dict, path: tuple, allowed: tuple, what: str, at, issues: Issues) -> None:
    for key in obj:
        if key not in allowed:
            issues.add(at(path + (key,)),
                       f"unknown key '{key}' in {what}; {did_you_mean(str(key), list(allowed))}")


def _select_profile(data: dict, profile: str | None, at, issues: Issues) -> dict:
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        issues.add(at(("profiles",)), "'profiles' must map profile names to overrides")
        return {}
    for pname, body in profiles.items():
        if not isinstance(body, dict):
            issues.add(at(("profiles", pname)), f"profile '{pname}' must be a mapping")
        else:
            _check_keys(body, ("profiles", pname), PROFILE_KEYS, f"profile '{pname}'", at, issues)
    if profile is None:
        return {}
    if profile not in profiles:
        where = at(("profiles",)) if "profiles" in data else at(())
        known = sorted(map(str, profiles))
        hint = did_you_mean(profile, known) if known else "the spec defines no profiles"
        issues.add(where, f"unknown profile '{profile}'; {hint}")
        return {}
    return profiles[profile] if isinstance(profiles[profile], dict) else {}


def _experiments(data: dict, prof: dict, marks: dict, file: str, at, issues: Issues) -> list:
    exps = data.get("experiments")
    if not isinstance(exps, dict) or not exps:
        issues.add(at(("experiments",)) if "experiments" in data else at(()),
                   "'experiments' must be a non-empty mapping of experiment names")
        return []
    prof_path = ("profiles", _profile_name(data, prof))
    prof_exps = prof.get("experiments", {}) if isinstance(prof.get("experiments", {}), dict) else {}
    for key in prof_exps:
        if key not in exps:
            issues.add(at(prof_path + ("experiments", key)),
                       f"profile overrides unknown experiment '{key}'; "
                       f"{did_you_mean(str(key), sorted(map(str, exps)))}")
    out = []
    for ename, body in exps.items():
        if not isinstance(body, dict):
            issues.add(at(("experiments", ename)), f"experiment '{ename}' must be a mapping")
            continue
        if not NAME_RE.match(str(ename)):
            issues.add(at(("experiments", ename)), f"bad experiment name '{ename}'")
        # seeds are defaults of the seed axis: the spec's, then the profile's, each above the
        # defaults of its own level and below anything an experiment says
        layers = [(_seed_layer(data.get("seeds"), ("seeds",))),
                  (data.get("defaults"), ("defaults",)),
                  (_seed_layer(prof.get("seeds"), prof_path + ("seeds",))),
                  (prof.get("defaults"), prof_path + ("defaults",)),
                  (body, ("experiments", ename)),
                  (prof_exps.get(ename), prof_path + ("experiments", ename))]
        stack = [(d, p) for d, p in layers if isinstance(d, dict)]
        origin: dict = {}
        merged = merge(stack, (), origin)
        exp = Experiment(str(ename), merged, origin, marks, file, _data_dir(data, file))
        before = len(issues)
        _check_experiment(exp, issues)
        exp.checked = len(issues) == before   # only a sound experiment is planned
        out.append(exp)
    return out


def _data_dir(data: dict, file: str) -> str | None:
    """`data_dir` relative to the spec's folder (so a spec and its data travel together)."""
    value = data.get("data_dir")
    if not isinstance(value, str):
        return None
    return str((FsPath(file).parent / FsPath(value).expanduser()).resolve())


def _profile_name(data: dict, prof: dict) -> str:
    for pname, body in (data.get("profiles") or {}).items():
        if body is prof:
            return pname
    return ""


def _seed_layer(seeds: Any, path: tuple) -> tuple[dict | None, tuple]:
    # Top-level `seeds` is the default of the experiments' `seed` axis.
    return ({"seed": seeds} if seeds is not None else None), ("#seeds", path)


def merge(layers: list[tuple[Any, tuple]], out: tuple, origin: dict) -> Any:
    """Deep-merge (value, source path) layers, lowest priority first; lists replace."""
    value, source = layers[-1]
    origin[out] = source[1] if source[:1] == ("#seeds",) else source
    if not isinstance(value, dict):
        return value
    dicts = []
    for v, s in reversed(layers):
        if not isinstance(v, dict):
            break
        if dicts and "name" in v and "name" in dicts[0][0] and v["name"] != dicts[0][0]["name"]:
            break   # another registered choice replaces the mapping; it does not merge into it
        dicts.insert(0, (v, s))
    if out == ("budget",):
        dicts = _budget_overrides(dicts)
    keys = list(dict.fromkeys(k for d, _ in dicts for k in d))
    return {k: merge([(d[k], _child(s, k)) for d, s in dicts if k in d], out + (k,), origin)
            for k in keys}


def _child(source: tuple, key: Any) -> tuple:
    if source[:1] == ("#seeds",):
        return source[1]   # the seed axis came from a top-level or profile `seeds` list
    return source + (key,)


EXCLUSIVE_BUDGET = (("steps", "epochs"), ("eval_every", "evals_per_epoch"))


def _budget_overrides(dicts: list) -> list:
    # A layer that sets one of a pair (steps/epochs, eval_every/evals_per_epoch) replaces
    # either of the pair from the layers below it.
    out = []
    for d, s in dicts:
        for pair in EXCLUSIVE_BUDGET:
            if any(k in d for k in pair):
                out = [({k: v for k, v in od.items() if k not in pair}, os) for od, os in out]
        out.append((d, s))
    return out


def _check_experiment(exp: Experiment, issues: Issues) -> None:
    d = exp.data
    _check_keys(d, (), EXPERIMENT_KEYS, f"experiment '{exp.name}'", exp.where, issues)
    for axis in AXES:
        if axis.is_choice and axis.default is REQUIRED and d.get(axis.name) is None:
            issues.add(exp.where(()), f"experiment '{exp.name}' needs '{axis.name}'")
    if "about" in d and not isinstance(d["about"], str):
        issues.add(exp.where(("about",)), "'about' must be a string")
    _check_budget(exp, issues)
    samples = d.get("samples")
    if samples is not None and not (isinstance(samples, int) and not isinstance(samples, bool)
                                    and samples >= 1):
        issues.add(exp.where(("samples",)), f"'samples' must be an integer >= 1, got {samples!r}")
    for axis in AXES:
        if not axis.is_choice:
            _check_int_axis(exp, axis.name, issues, axis.minimum, axis.default is REQUIRED)
    _check_lr_scaling(exp, issues)


def _check_lr_scaling(exp: Experiment, issues: Issues) -> None:
    """`lr_scaling: {rule: none | linear | sqrt, base_batch_size: N}`."""
    value = exp.data.get("lr_scaling")
    if value is None:
        return
    if not isinstance(value, dict):
        issues.add(exp.where(("lr_scaling",)), "'lr_scaling' is a mapping {rule: none | "
                   "linear | sqrt, base_batch_size: N}")
        return
    _check_keys(value, ("lr_scaling",), ("rule", "base_batch_size"), "lr_scaling",
                exp.where, issues)
    rule = value.get("rule", "none")
    if rule not in LR_RULES:
        issues.add(exp.where(("lr_scaling", "rule")),
                   f"lr_scaling rule {rule!r} is unknown; allowed: {', '.join(LR_RULES)}")
    base = value.get("base_batch_size")
    if rule != "none" and not _number(base, int, 1):
        issues.add(exp.where(("lr_scaling", "base_batch_size") if "base_batch_size" in value
                             else ("lr_scaling",)),
                   f"lr_scaling rule '{rule}' needs 'base_batch_size', an integer >= 1 (the "
                   f"batch size the optimizers' lr is given for), got {base!r}")


def _check_int_axis(exp: Experiment, axis: str, issues: Issues, minimum: int, required: bool):
    value = exp.data.get(axis)
    if value is None:
        if required:
            issues.add(exp.where(()), f"experiment '{exp.name}' has no seeds: set 'seeds' "
                                      "at the top or 'seed' in the experiment")
        return
    values = value if isinstance(value, list) else [value]
    if not values:
        issues.add(exp.where((axis,)), f"'{axis}' is an empty list")
    for i, v in enumerate(values):
        if v is None and not required:   # a null batch size is the full batch
            continue
        if not (isinstance(v, int) and not isinstance(v, bool) and v >= minimum):
            path = (axis, i) if isinstance(value, list) else (axis,)
            issues.add(exp.where(path), f"'{axis}' values must be integers >= {minimum}, got {v!r}")


def _check_budget(exp: Experiment, issues: Issues) -> None:
    budget = exp.data.get("budget")
    if not isinstance(budget, dict):
        issues.add(exp.where(("budget",)) if "budget" in exp.data else exp.where(()),
                   f"experiment '{exp.name}' needs a 'budget' mapping with steps or epochs")
        return
    _check_keys(budget, ("budget",), BUDGET_KEYS, "budget", exp.where, issues)
    rules = {"steps": (int, 1), "epochs": (float, 0), "eval_every": (int, 1),
             "evals_per_epoch": (int, 1), "time_limit": (float, 0)}
    for key, (kind, low) in rules.items():
        if key in budget and not _number(budget[key], kind, low):
            what = "an integer >= 1" if kind is int else "a number > 0"
            issues.add(exp.where(("budget", key)), f"budget '{key}' must be {what}, "
                                                   f"got {budget[key]!r}")
    if ("steps" in budget) == ("epochs" in budget):
        issues.add(exp.where(("budget",)), "budget needs exactly one of 'steps' or 'epochs'")
    if "eval_every" in budget and "evals_per_epoch" in budget:
        issues.add(exp.where(("budget", "evals_per_epoch")),
                   "budget takes 'eval_every' (steps) or 'evals_per_epoch', not both")
    target = budget.get("target", {})
    if not isinstance(target, dict) or not all(
            _number(v, float, None) and math.isfinite(v) for v in target.values()):
        issues.add(exp.where(("budget", "target")),
                   "budget 'target' maps metric names to numbers, e.g. {loss: 1.0e-6}")


def _number(value: Any, kind: type, low: float | None) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind is int and not isinstance(value, int):
        return False
    if low is None:
        return True
    return value >= low if kind is int else value > low
