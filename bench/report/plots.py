"""Data → matplotlib Figures. Nothing here writes files (build.py does) or uses pyplot state."""
from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from bench.report.frame import config_key, group_by_config, varying_params

AXES_IN_LEGEND = (2, 3, 4, 5, 6)   # optimizer, schedule, init, regularizer, batch size
TRAJECTORY_STEPS = 100             # the zig-zag shows in the first steps; later ones pile up


def legend_label(key: tuple, keys: list[tuple]) -> str:
    """The parts of a config key that differ between the lines of one plot."""
    parts = [str(key[i]) for i in AXES_IN_LEGEND if len({k[i] for k in keys}) > 1]
    return ", ".join(parts) or str(key[2])


CURVE_METRICS = ("suboptimality", "dist_to_saddle", "train_loss")   # first one present is drawn


def curve_metric(results: list[dict]) -> str:
    first = results[0]["history"][0] if results and results[0]["history"] else {}
    return next((m for m in CURVE_METRICS if m in first), "train_loss")


def _median_band(runs: list[dict], metric: str):
    """Quartiles over seeds at every evaluated step, each run interpolated onto the common grid.

    A run counts only up to its own last step (a diverged run is never back-filled, a run that
    stopped at its target is not carried on), and a step is drawn while more than half of the
    runs still count, so the line is a true median."""
    curves = []
    for r in runs:
        pts = [(h["step"], h[metric]) for h in r["history"] if isinstance(h.get(metric), (int, float))]
        if pts:
            curves.append(np.array(pts, dtype=float))
    if not curves:
        return np.array([]), np.zeros((0, 3))
    grid = np.unique(np.concatenate([c[:, 0] for c in curves]))
    log = all((c[:, 1] > 0).all() for c in curves)   # interpolate log-values for log plots
    rows = []
    for step in grid:
        alive = [c for c in curves if c[-1, 0] >= step]
        if len(alive) * 2 <= len(curves):
            break
        vals = [np.interp(step, c[:, 0], np.log(c[:, 1]) if log else c[:, 1]) for c in alive]
        q = np.percentile(vals, [25, 50, 75])
        rows.append(np.exp(q) if log else q)
    return grid[:len(rows)], np.array(rows).reshape(-1, 3)


def loss_curves(results: list[dict], title: str) -> Figure:
    """Median across seeds with an interquartile band, one line per configuration."""
    metric = curve_metric(results)
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    groups = group_by_config(results)
    keys = list(groups)
    positive = True
    for key in keys:
        steps, q = _median_band(groups[key], metric)
        if not len(steps):
            continue
        positive &= bool((q > 0).all())
        label = legend_label(key, keys) + _failures(groups[key])
        line, = ax.plot(steps, q[:, 1], label=label, lw=1.4)
        ax.fill_between(steps, q[:, 0], q[:, 2], color=line.get_color(), alpha=0.2, lw=0)
    if positive:
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel=f"{metric} (median, IQR band over seeds)", title=title)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3, which="both")
    return fig


def _failures(runs: list[dict]) -> str:
    bad = [r["status"] for r in runs if r["status"] != "ok"]
    return f" [{len(bad)}/{len(runs)} {', '.join(sorted(set(bad)))}]" if bad else ""


def trajectories(panels: list[tuple[str, object, list[dict]]]) -> Figure:
    """2-D iterates over the contour plot of f: one panel per problem (the zig-zag picture).

    `panels` holds (title, problem object with `.value`, results with a trajectory)."""
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.6 * cols, 4.2 * rows), layout="constrained")
    for i, (title, problem, runs) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        paths = [np.array(r["summary"]["measures"]["trajectory"][:TRAJECTORY_STEPS + 1],
                          dtype=float) for r in runs]
        star = [] if problem.x_star is None else [problem.x_star.detach().cpu().numpy()[None]]
        _contour(ax, problem, np.concatenate(paths + star))
        show = varying_params(runs)
        keys = [config_key(r, show) for r in runs]
        for key, path in zip(keys, paths):
            ax.plot(path[:, 0], path[:, 1], ".-", ms=2.5, lw=0.9, label=legend_label(key, keys))
        if problem.x_star is not None:
            star = problem.x_star.detach().cpu().numpy()
            ax.plot(star[0], star[1], "k*", ms=10)
        ax.set(title=f"{title}: first {TRAJECTORY_STEPS} steps", xlabel="x₁", ylabel="x₂")
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), fontsize=7)
    return fig


def _contour(ax, problem, points: np.ndarray) -> None:
    """Contours of f around the points: log-spaced levels of f − f* when the minimum is known."""
    import torch
    points = points[np.isfinite(points).all(1)]
    lo, hi = points.min(0), points.max(0)
    pad = 0.15 * np.maximum(hi - lo, 1e-3)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], 200)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], 200)
    grid = torch.tensor(np.stack(np.meshgrid(xs, ys), -1), dtype=torch.float64)
    with torch.no_grad():
        z = problem.value(grid.to(problem.x.dtype)).double().numpy()
    if problem.f_star is None:
        ax.contour(xs, ys, z, levels=24, cmap="viridis", linewidths=0.6)
        return
    gap = np.maximum(z - problem.f_star, 1e-300)
    levels = np.geomspace(max(np.quantile(gap, 0.001), gap.max() * 1e-8), gap.max(), 20)
    ax.contour(xs, ys, gap, levels=levels, cmap="viridis", linewidths=0.6)


def steps_vs_kappa(series: dict[str, list[tuple[float, float]]],
                   theory: list[tuple[float, float]] | None, target: str) -> Figure:
    """Median steps to target against condition number (log-log), with the theory line."""
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for label, points in series.items():
        pts = sorted(p for p in points if p[1] is not None)
        if pts:
            ax.plot(*zip(*pts), "o-", label=label, ms=4)
    if theory:
        ax.plot(*zip(*sorted(theory)), "k--", lw=1.2,
                label="GD theory ⌈log ε / log((κ−1)/(κ+1))⌉")
    ax.set(xscale="log", yscale="log", xlabel="condition number κ",
           ylabel=f"steps to {target} (median over seeds)",
           title="Steps to target against conditioning")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return fig
