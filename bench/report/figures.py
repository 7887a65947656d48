"""FIGURES: every figure of the report, each one registered function.

A figure entry says which experiments it applies to (`applies(runs)`) and draws them
(`draw(name, runs)` yields (title, Figure) pairs). The report builder draws, in registration
order, every figure that applies; a new figure is one function here, nothing else. A figure
registered with `landscapes=True` also gets the experiment's stored landscapes (the dicts of
`bench.landscape.load_all`): `applies(runs, landscapes)`, `draw(name, runs, landscapes)`.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bench.cell import metric_name
from bench.report import geometry, plots, regularization, theory_view
from bench.report.frame import name_of, varying_params
from bench.theory import gd_steps_to_distance


@dataclass(frozen=True)
class FigureEntry:
    name: str
    applies: Callable[..., bool]
    draw: Callable[..., Iterator]
    landscapes: bool = False   # applies and draw take the experiment's landscapes too


FIGURES: list[FigureEntry] = []


def figure(name: str, applies: Callable[..., bool], landscapes: bool = False) -> Callable:
    def add(draw: Callable) -> Callable:
        if any(f.name == name for f in FIGURES):
            raise ValueError(f"figure '{name}' registered twice")
        FIGURES.append(FigureEntry(name, applies, draw, landscapes))
        return draw
    return add


def draw_all(name: str, runs: list[dict],
             landscapes: list[dict] = ()) -> Iterator[tuple[str, object]]:
    for entry in FIGURES:
        extra = (list(landscapes),) if entry.landscapes else ()
        if entry.applies(runs, *extra):
            yield from entry.draw(name, runs, *extra)


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


# ---- batch size, sharpness and landscapes (Keskar et al. 2017, Shallue et al. 2019) ---------
def _targeted(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r["cell"]["budget"].get("target")]


def _batch_sweep(runs: list[dict]) -> bool:
    return len(geometry.batch_sizes(runs)) >= 2


@figure("generalization and sharpness against batch size",
        applies=lambda runs: _batch_sweep(runs) and not _targeted(runs))
def against_batch_size(name: str, runs: list[dict]):
    """Final test accuracy and the generalization gaps, then the sharpness measures recorded,
    against batch size (median and IQR over seeds), per problem."""
    for problem, rs in by_problem(runs).items():
        if not _batch_sweep(rs):
            continue
        for short, what, panels, log_y in (
                ("generalization", "final test accuracy and generalization gaps",
                 geometry.GENERALIZATION, False),
                ("sharpness", "final sharpness", geometry.SHARPNESS, True)):
            shown = geometry.batch_panels(rs, panels)
            if shown:
                title = f"{name}: {what} against batch size, median and IQR over seeds\n{problem}"
                yield (f"{short} against batch size {problem}",
                       geometry.against_batch_size(shown, title, log_y))


@figure("steps to target against batch size",
        applies=lambda runs: _batch_sweep(_targeted(runs)))
def steps_vs_batch_size(name: str, runs: list[dict]):
    """Median steps to the target against batch size (log-log) with perfect scaling."""
    for problem, rs in by_problem(_targeted(runs)).items():
        if not _batch_sweep(rs):
            continue
        target = geometry.target_text(rs[0]["cell"]["budget"]["target"])
        scaling = geometry.scaling_text(rs[0]["cell"].get("lr_scaling"))
        yield (f"steps to target against batch size {problem}",
               geometry.steps_against_batch_size(
                   geometry.steps_lines(rs), f"{name}: steps to {target} against batch size"
                   f"\n{problem}", xlabel=f"batch size ({scaling})",
                   ylabel=f"steps to {target} (median, IQR over seeds)"))


def _sharpness_curves(runs: list[dict]) -> list[dict]:
    """Runs whose history records sharpness at two evaluations at least (not at the end only)."""
    return [r for r in runs if sum(isinstance(h.get("sharpness"), (int, float))
                                   for h in r["history"]) >= 2]


@figure("sharpness over training", applies=lambda runs: bool(_sharpness_curves(runs)))
def sharpness_over_training(name: str, runs: list[dict]):
    for problem, rs in by_problem(_sharpness_curves(runs)).items():
        title = (f"{name}: sharpness over training, median and IQR over seeds; dashed: 2/lr at "
                 f"the last evaluation\n{problem}")
        yield f"sharpness over training {problem}", geometry.sharpness_over_training(rs, title)


def _landscapes(lands: list[dict], kind: str, cells: int | None = None) -> list[dict]:
    """The stored landscapes of one kind (and number of cells), by batch size then seed."""
    chosen = [d for d in lands if d.get("name") == kind
              and (cells is None or len(d["cells"]) == cells)]
    return sorted(chosen, key=lambda d: (geometry.batch_order(d["cells"][0]["batch_size"]),
                                         d["cells"][0]["seed"], d["ids"]))


@figure("interpolation between batch sizes", landscapes=True,
        applies=lambda runs, lands: bool(_landscapes(lands, "interpolation", cells=2)))
def interpolation_between(name: str, runs: list[dict], lands: list[dict]):
    """Keskar's figure 3: a panel per seed, one figure per pair of batch sizes."""
    pairs: dict[tuple, list[dict]] = defaultdict(list)
    for d in _landscapes(lands, "interpolation", cells=2):
        pairs[tuple(c["batch_size"] for c in d["cells"])].append(d)
    for (a, b), ds in pairs.items():
        ends = (geometry.batch_text(a), geometry.batch_text(b))
        titles = geometry.landscape_titles(ds, runs, with_batch=False)
        yield (f"interpolation {ends[0]} to {ends[1]}", geometry.interpolation(
            list(zip(titles, ds)), ends, f"{name}: loss and accuracy along "
            f"(1 − α)·θ({ends[0]}) + α·θ({ends[1]}), θ the final weights"))


@figure("interpolation from initialisation", landscapes=True,
        applies=lambda runs, lands: bool(_landscapes(lands, "interpolation", cells=1)))
def interpolation_from_init(name: str, runs: list[dict], lands: list[dict]):
    """Goodfellow et al.'s line from the initial to the final weights, a panel per cell."""
    ds = _landscapes(lands, "interpolation", cells=1)
    titles = geometry.landscape_titles(ds, runs, with_batch=True)
    yield ("interpolation from initial to final weights", geometry.interpolation(
        list(zip(titles, ds)), ("initial", "final"),
        f"{name}: loss and accuracy along (1 − α)·θ(initial) + α·θ(final)"))


@figure("loss contours", landscapes=True,
        applies=lambda runs, lands: bool(_landscapes(lands, "contour")))
def loss_contours(name: str, runs: list[dict], lands: list[dict]):
    """Every contour of the experiment side by side, on one colour scale."""
    ds = _landscapes(lands, "contour")
    titles = geometry.landscape_titles(ds, runs, with_batch=True)
    yield "training loss contours", geometry.contours(
        list(zip(titles, ds)), f"{name}: training loss on a plane through the final weights "
        "(filter-normalised random directions)")


# ---- regularization: the generalization gap, the curves, the weights -------------------------
def _regularized(runs: list[dict], needs: Callable[[list[dict]], bool]) -> dict[str, list[dict]]:
    """The problems (and their runs) that try two regularizers at least and have what the
    figure `needs`."""
    return {problem: rs for problem, rs in by_problem(runs).items()
            if regularization.compares_regularizers(rs) and needs(rs)}


def _has_final_accuracy(runs: list[dict]) -> bool:
    return regularization.has_final(runs, "test_accuracy")


def _has_weight_histograms(runs: list[dict]) -> bool:
    return any(regularization.histogram_of(r) for r in runs)


@figure("generalization gap per regularizer",
        applies=lambda runs: bool(_regularized(runs, _has_final_accuracy)))
def gap_per_regularizer(name: str, runs: list[dict]):
    """Final test accuracy, train − test gap and train accuracy: median, IQR and every seed,
    a row per regularizer."""
    for problem, rs in _regularized(runs, _has_final_accuracy).items():
        title = (f"{name}: final accuracy and generalization gap per regularizer (dot: median, "
                 f"bar: IQR, ticks: seeds; dotted: no regularizer)\n{problem}")
        yield (f"generalization gap per regularizer {problem}",
               regularization.generalization(regularization.config_rows(rs), title))


@figure("train and test curves per regularizer",
        applies=lambda runs: bool(_regularized(runs, regularization.has_curves)))
def curves_per_regularizer(name: str, runs: list[dict]):
    """Train and test accuracy against epochs, a panel per regularizer on one y scale."""
    for problem, rs in _regularized(runs, regularization.has_curves).items():
        title = (f"{name}: train and test accuracy per regularizer, median and IQR over "
                 f"seeds (shaded between them: the gap)\n{problem}")
        yield (f"train and test accuracy per regularizer {problem}",
               regularization.train_test_curves(regularization.config_rows(rs), title,
                                                regularization.curve_x(rs)))


@figure("weight histograms",
        applies=lambda runs: bool(_regularized(runs, _has_weight_histograms)))
def weight_histograms(name: str, runs: list[dict]):
    """log10|w| at the end of training, a line per regularizer (first seed)."""
    for problem, rs in _regularized(runs, _has_weight_histograms).items():
        title = (f"{name}: weight magnitudes at the end of training, per regularizer "
                 f"(first seed; sparsity: fraction of |w| < 1e-3)\n{problem}")
        yield (f"weight histograms {problem}",
               regularization.weight_figure(regularization.config_rows(rs), title))
