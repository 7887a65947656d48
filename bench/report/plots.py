"""Data → matplotlib Figures. Nothing here writes files (build.py does) or uses pyplot state."""
from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from bench.cell import CURVE_METRICS, LEGEND_AXES
from bench.cell import metric as metric_info
from bench.report.frame import config_key, group_by_config, varying_params
from problems import formulas


def style(i: int) -> dict:
    """Twenty distinguishable colours, then dashed and dotted repeats."""
    import matplotlib
    colours = matplotlib.colormaps["tab20"].colors
    return {"color": colours[(2 * i) % 20 + (i // 10) % 2],
            "linestyle": ("-", "--", ":")[(i // 20) % 3]}


def legend_label(key: tuple, keys: list[tuple]) -> str:
    """The parts of a config key that differ between the lines of one plot."""
    names, others = dict(key), [dict(k) for k in keys]
    parts = [_axis_text(a, names[a]) for a in LEGEND_AXES if len({o[a] for o in others}) > 1]
    return ", ".join(parts) or str(names["optimizer"])


def _axis_text(axis: str, value) -> str:
    if axis == "batch_size":
        return "full batch" if value is None else f"batch {value}"
    return str(value)


def curve_metric(results: list[dict]) -> str:
    first = next((r["history"][0] for r in results if r["history"]), {})
    return next((m for m in CURVE_METRICS if m in first), "train_loss")


X_AXES = {"step": "step", "epoch": "epoch", "grad_equivalents": "gradient-equivalent evaluations",
          "seconds": "training seconds"}


def median_band(runs: list[dict], metric: str, x: str = "step"):
    """Quartiles over seeds at every evaluated x, each run interpolated onto the common grid.

    A run counts only up to its own last point (a diverged run is never back-filled, a run that
    stopped at its target is not carried on), and a point is drawn while more than half of the
    runs still count, so the line is a true median."""
    curves = []
    for r in runs:
        pts = [(h[x], h[metric]) for h in r["history"]
               if isinstance(h.get(metric), (int, float)) and isinstance(h.get(x), (int, float))]
        if pts:
            curves.append(np.array(pts, dtype=float))
    if not curves:
        return np.array([]), np.zeros((0, 3))
    curves = _clip_rounding(curves)
    grid = np.unique(np.concatenate([c[:, 0] for c in curves]))
    log = all((c[:, 1] > 0).all() for c in curves)   # interpolate log-values for log plots
    rows = []
    for point in grid:
        alive = [c for c in curves if c[-1, 0] >= point]
        if len(alive) * 2 <= len(curves):
            break
        vals = [np.interp(point, c[:, 0], np.log(c[:, 1]) if log else c[:, 1]) for c in alive]
        q = np.percentile(vals, [25, 50, 75])
        rows.append(np.exp(q) if log else q)
    return grid[:len(rows)], np.array(rows).reshape(-1, 3)


def _clip_rounding(curves: list[np.ndarray]) -> list[np.ndarray]:
    """A suboptimality of −1e-17 is a converged run seen through rounding: when every value
    is above −1e-9 × the largest, non-positive values become 1e-16 × the largest, so the
    curve stays on a log scale instead of forcing the whole plot linear."""
    top = max(float(c[:, 1].max()) for c in curves)
    low = min(float(c[:, 1].min()) for c in curves)
    if top <= 0 or low > 0 or low < -1e-9 * top:
        return curves
    return [np.column_stack([c[:, 0], np.maximum(c[:, 1], 1e-16 * top)]) for c in curves]


def x_axes_for(results: list[dict]) -> tuple:
    """Epochs when the budget is in epochs, else steps (and epochs too when batch sizes
    differ); evaluations and seconds when the methods' steps cost different amounts."""
    by_epoch = all("epochs" in r["cell"]["budget"] for r in results)   # the budget's own unit
    axes = ["epoch"] if by_epoch else ["step"]
    if not by_epoch and len({r["cell"]["batch_size"] for r in results}) > 1:
        axes.append("epoch")
    if costs_differ(results):
        axes += ["grad_equivalents", "seconds"]
    return tuple(axes)


def costs_differ(results: list[dict]) -> bool:
    """True when some method's step costs other than one gradient (then steps mislead)."""
    for r in results:
        last = r["history"][-1] if r["history"] else {}
        if "grad_equivalents" in last and abs(last["grad_equivalents"] - last["step"]) > 0.5:
            return True
    return False


def loss_curves(results: list[dict], title: str, x_axes: tuple = ("step",),
                metric: str | None = None) -> Figure:
    """Median across seeds with an interquartile band, one line per configuration, against
    each of `x_axes` (steps, gradient-equivalent evaluations, seconds) side by side."""
    metric = metric or curve_metric(results)
    info = metric_info(metric)
    fig = Figure(figsize=(5.2 * len(x_axes) + 1.8, 4.5), layout="constrained")
    groups = group_by_config(results)
    keys = list(groups)
    for i, x in enumerate(x_axes):
        ax = fig.add_subplot(1, len(x_axes), i + 1)
        positive = True
        for key in keys:
            xs, q = median_band(groups[key], metric, x)
            if not len(xs):
                continue
            positive &= bool((q > 0).all())
            label = legend_label(key, keys) + _failures(groups[key])
            line, = ax.plot(xs, q[:, 1], label=label, lw=1.4, **style(keys.index(key)))
            ax.fill_between(xs, q[:, 0], q[:, 2], color=line.get_color(), alpha=0.2, lw=0)
        if positive and info.log_scale:
            ax.set_yscale("log")
        if x == "grad_equivalents":   # from 0 evaluations to thousands: log beyond 1
            ax.set_xscale("symlog", linthresh=1.0)
            ax.set_xlim(left=0)
        ax.set(xlabel=X_AXES[x], ylabel=f"{info.display} (median, IQR over seeds)" if i == 0 else "")
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(title)
    handles, labels = ax.get_legend_handles_labels()
    if len(x_axes) == 1:
        ax.legend(fontsize=7, loc="best")
    else:
        fig.legend(handles, labels, loc="outside right center", fontsize=7)
    return fig


def rates(points: list[tuple[str, float, float]]) -> Figure:
    """Measured against predicted speed of linear convergence, as −ln(rate) per step on log
    axes: rates near 1 (ill-conditioned problems) spread out instead of piling up."""
    fig = Figure(figsize=(6, 5.5), layout="constrained")
    ax = fig.add_subplot()
    names = sorted({p[0] for p in points})
    speed = lambda r: -math.log(r)  # noqa: E731
    for i, name in enumerate(names):
        pts = np.array([(speed(p[1]), speed(p[2])) for p in points if p[0] == name])
        ax.plot(pts[:, 0], pts[:, 1], "o", ms=6, label=name, alpha=0.85, color=style(i)["color"])
    values = [speed(v) for p in points for v in p[1:]]
    lo, hi = min(values) / 1.5, max(values) * 1.5
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="measured = predicted")
    ax.set(xscale="log", yscale="log", xlabel="predicted −ln(rate) per step (theory)",
           ylabel="measured −ln(rate) per step (median over seeds)",
           title="Linear rates on quadratics: theory vs measurement")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return fig


def activation_grid(rows: list[tuple[str, list[dict]]], title: str) -> Figure:
    """The notes' picture: one row per initialisation, one column per layer, each panel the
    histogram of that layer's activations (mean and std in its title)."""
    cols = max(len(stats) for _label, stats in rows)
    fig = Figure(figsize=(1.6 * cols + 1.5, 1.35 * len(rows) + 0.8), layout="constrained")
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for r, (label, stats) in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.tick_params(labelsize=5)
            ax.xaxis.get_offset_text().set_fontsize(5)
            ax.set_yticks([])
            if c >= len(stats) or stats[c] is None:
                ax.set_axis_off()
                continue
            layer = stats[c]
            edges = np.linspace(*layer["range"], len(layer["counts"]) + 1)
            ax.stairs(layer["counts"], edges, fill=True, color=style(r)["color"])
            ax.set_title(f"μ {layer['mean']:.2g}  σ {layer['std']:.2g}", fontsize=5.5)
            if c == 0:
                ax.set_ylabel(label, fontsize=6.5, rotation=0, ha="right", va="center")
            if r == 0:
                ax.text(0.5, 1.35, f"layer {c + 1}", transform=ax.transAxes, ha="center",
                        fontsize=7)
    fig.suptitle(title, fontsize=9)
    return fig


def _failures(runs: list[dict]) -> str:
    bad = [r["status"] for r in runs if r["status"] != "ok"]
    return f" [{len(bad)}/{len(runs)} {', '.join(sorted(set(bad)))}]" if bad else ""


TRAJECTORY_STEPS = 100   # the zig-zag shows in the first steps; later ones pile up
VIEW_RADIUS = 1.5        # the frame: this many times the farthest start from x*


def trajectories(panels: list[tuple[str, list[dict]]]) -> Figure:
    """2-D iterates over the contour plot of f: one panel per problem (the zig-zag picture).

    `panels` holds (title, results with a trajectory); f comes from the landscape the
    trajectory measure stored (problems/formulas.py on numpy), so no problem is rebuilt."""
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.6 * cols, 4.2 * rows), layout="constrained")
    for i, (title, runs) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        recorded = [_trajectory(r["summary"]["measures"]["trajectory"]) for r in runs]
        paths = [np.array(t["points"][:TRAJECTORY_STEPS + 1], dtype=float) for t in recorded]
        land = recorded[0]["landscape"] or {}
        star = None if land.get("x_star") is None else np.array(land["x_star"], dtype=float)
        view = _view(paths, [] if star is None else [star[None]])
        if land.get("f"):
            _contour(ax, land, view)
        show = varying_params(runs)
        keys = [config_key(r, show) for r in runs]
        for key, path in zip(keys, paths):
            ax.plot(path[:, 0], path[:, 1], ".-", ms=2.5, lw=0.9, label=legend_label(key, keys))
        if star is not None:
            ax.plot(star[0], star[1], "k*", ms=10)
        ax.set(title=f"{title}: first {TRAJECTORY_STEPS} steps", xlabel="x₁", ylabel="x₂")
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), fontsize=7)
    return fig


def _trajectory(recorded) -> dict:
    """A trajectory as stored; results written before it stored its landscape hold the
    points alone (drawn without contours)."""
    return recorded if isinstance(recorded, dict) else {"points": recorded, "landscape": None}


def _view(paths: list[np.ndarray], star: list[np.ndarray]) -> np.ndarray:
    """Points that set the drawn area: the starts, the optimum, and every iterate within
    VIEW_RADIUS × the farthest start from the centre. A method that overshoots far (a large
    step's first swings) leaves the frame instead of shrinking everyone else's paths."""
    points = np.concatenate(paths + star)
    if not star:   # no minimum (a saddle): the whole way out is the point of the picture
        return points[np.isfinite(points).all(1)]
    starts = np.array([p[0] for p in paths])
    centre = star[0][0]
    reach = VIEW_RADIUS * max(np.abs(starts - centre).max(), 1e-9)
    inside = np.isfinite(points).all(1) & (np.abs(points - centre).max(1) <= reach)
    return points[inside]


def _contour(ax, land: dict, points: np.ndarray) -> None:
    """Contours of f around the points: log-spaced levels of f − f* when the minimum is known."""
    points = points[np.isfinite(points).all(1)]
    lo, hi = points.min(0), points.max(0)
    pad = 0.15 * np.maximum(hi - lo, 1e-3)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], 200)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], 200)
    z = formulas.evaluate(land["f"], np.stack(np.meshgrid(xs, ys), -1))
    if land.get("f_star") is None:
        ax.contour(xs, ys, z, levels=24, cmap="viridis", linewidths=0.6)
        ax.set(xlim=(xs[0], xs[-1]), ylim=(ys[0], ys[-1]))
        return
    gap = np.maximum(z - land["f_star"], 1e-300)
    levels = np.geomspace(max(np.quantile(gap, 0.001), gap.max() * 1e-8), gap.max(), 20)
    ax.contour(xs, ys, gap, levels=levels, cmap="viridis", linewidths=0.6)
    ax.set(xlim=(xs[0], xs[-1]), ylim=(ys[0], ys[-1]))


def steps_vs_kappa(series: dict[str, list[tuple[float, float]]],
                   theory: list[tuple[float, float]] | None, target: str) -> Figure:
    """Median steps to target against condition number (log-log), with the theory line."""
    fig = Figure(figsize=(8.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for i, (label, points) in enumerate(series.items()):
        pts = sorted(p for p in points if p[1] is not None)
        if pts:
            ax.plot(*zip(*pts), marker="o", label=label, ms=4, **style(i))
    if theory:
        ax.plot(*zip(*sorted(theory)), "k--", lw=1.2,
                label="GD theory ⌈log ε / log((κ−1)/(κ+1))⌉")
    ax.set(xscale="log", yscale="log", xlabel="condition number κ",
           ylabel=f"steps to {target} (median over seeds)",
           title="Steps to target against conditioning")
    ax.grid(alpha=0.3, which="both")
    fig.legend(loc="outside right center", fontsize=7)
    return fig
