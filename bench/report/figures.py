"""FIGURES: every figure of the report, each one registered function.

A figure entry says which experiments it applies to (`applies(runs)`) and draws them
(`draw(name, runs)` yields (title, Figure) pairs). The report builder draws, in registration
order, every figure that applies; a new figure is one function here, nothing else.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bench.cell import metric_name
from bench.report import plots, theory_view
from bench.report.frame import name_of, varying_params
from bench.theory import gd_steps_to_distance


@dataclass(frozen=True)
class FigureEntry:
    name: str
    applies: Callable[[list[dict]], bool]
    draw: Callable[[str, list[dict]], Iterator]


FIGURES: list[FigureEntry] = []


def figure(name: str, applies: Callable[[list[dict]], bool]) -> Callable:
    def add(draw: Callable) -> Callable:
        if any(f.name == name for f in FIGURES):
            raise ValueError(f"figure '{name}' registered twice")
        FIGURES.append(FigureEntry(name, applies, draw))
        return draw
    return add


def draw_all(name: str, runs: list[dict]) -> Iterator[tuple[str, object]]:
    for entry in FIGURES:
        if entry.applies(runs):
            yield from entry.draw(name, runs)


def by_problem(runs: list[dict]) -> dict[str, list[dict]]:
    show = varying_params(runs)
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in runs:
        groups[name_of(r, "problem", show)].append(r)
    return groups


def first_seed(runs: list[dict]) -> list[dict]:
    seed = min(r["cell"]["seed"] for r in runs)
    return [r for r in runs if r["cell"]["seed"] == seed]


def measured(runs: list[dict], measure: str) -> list[dict]:
    return [r for r in runs if (r["summary"].get("measures") or {}).get(measure)]


# ---- curves --------------------------------------------------------------------------------
def _has_history(runs: list[dict]) -> bool:
    return any(r["history"] for r in runs)


@figure("loss and accuracy curves", applies=_has_history)
def curves(name: str, runs: list[dict]):
    """Per problem: the loss (suboptimality where known) and, for classifiers, test accuracy."""
    for problem, rs in by_problem(runs).items():
        if any(r["history"] for r in rs):
            yield f"loss {problem}", plots.loss_curves(rs, f"{name}: {problem}",
                                                       plots.x_axes_for(rs))
            if any("test_accuracy" in (r["history"] or [{}])[0] for r in rs):
                yield f"accuracy {problem}", plots.loss_curves(
                    rs, f"{name}: {problem}", plots.x_axes_for(rs), "test_accuracy")


# ---- measures --------------------------------------------------------------------------------
@figure("activation histograms", applies=lambda runs: bool(measured(runs, "activation_stats")))
def activations(name: str, runs: list[dict]):
    """The notes' grid (a row per configuration, a column per layer), at init and at the end."""
    for problem, rs in by_problem(runs).items():
        for when in ("init", "end"):
            rows = _activation_rows(rs, when)
            if rows:
                moment = "at initialisation" if when == "init" else "after training"
                yield (f"activations {when} {problem}",
                       plots.activation_grid(rows, f"{name}: {problem}, activations {moment}"))


def _activation_rows(runs: list[dict], when: str) -> list:
    """(label, per-layer statistics) for the first seed of each configuration."""
    with_stats = measured(runs, "activation_stats")
    if not with_stats:
        return []
    shown = first_seed(with_stats)
    show = varying_params(shown)
    keys = [plots.config_key(r, show) for r in shown]
    return [(plots.legend_label(key, keys), r["summary"]["measures"]["activation_stats"][when] or [])
            for key, r in zip(keys, shown)]


@figure("trajectories", applies=lambda runs: bool(measured(runs, "trajectory")))
def trajectories(name: str, runs: list[dict]):
    """2-D paths over the contours, a panel per problem (first seed)."""
    panels = []
    for title, rs in by_problem(runs).items():
        with_path = measured(rs, "trajectory")
        if with_path:
            shown = first_seed(with_path)
            panels.append((f"{title}, seed {shown[0]['cell']['seed']}", shown))
    yield "trajectories", plots.trajectories(panels)


# ---- theory ----------------------------------------------------------------------------------
def _kappa_runs(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r["cell"]["problem"]["name"] == "quadratic"
            and r["cell"]["problem"]["params"].get("eigenvalues") is None
            and r["cell"]["budget"].get("target")]


@figure("steps to target against kappa",
        applies=lambda runs: len({r["cell"]["problem"]["params"]["kappa"]
                                  for r in _kappa_runs(runs)}) >= 2)
def steps_vs_kappa(name: str, runs: list[dict]):
    """Median steps to target against κ for quadratic sweeps, with GD's theory line."""
    quad = _kappa_runs(runs)
    target = dict(quad[0]["cell"]["budget"]["target"])
    series: dict[str, dict[float, list]] = defaultdict(lambda: defaultdict(list))
    for r in quad:
        kappa = r["cell"]["problem"]["params"]["kappa"]
        series[name_of(r, "optimizer")][kappa].append(r["summary"].get("steps_to_target"))
    points = {label: [(k, _median_or_none(v)) for k, v in per.items()]
              for label, per in series.items()}
    theory = None
    (metric, eps), = target.items() if len(target) == 1 else ((None, None),)
    if metric and metric_name(metric) == "dist_to_opt":
        kappas = sorted({k for per in series.values() for k in per})
        theory = [(k, gd_steps_to_distance(k, eps)) for k in kappas if k > 1]
    label = ", ".join(f"{k} ≤ {v:g}" for k, v in target.items())
    yield "steps to target vs kappa", plots.steps_vs_kappa(points, theory, label)


def _median_or_none(values: list):
    done = sorted(v for v in values if v is not None)
    return done[len(done) // 2] if done and len(done) * 2 > len(values) else None


@figure("measured against predicted rates",
        applies=lambda runs: bool(theory_view.rate_points(theory_view.theory_rows(runs))))
def rates(name: str, runs: list[dict]):
    """Linear rates on quadratics: measured against theory."""
    yield "rates measured vs predicted", plots.rates(
        theory_view.rate_points(theory_view.theory_rows(runs)))
