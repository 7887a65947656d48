"""Figures of the batch-size study: results against batch size, steps to a target against
batch size, Keskar's interpolation, filter-normalised contours and sharpness over training.

Shaping (quartiles over seeds per batch size) and drawing, on `matplotlib.figure.Figure`
without pyplot state; figures.py decides which experiments each figure applies to.
"""
from __future__ import annotations

import math
import textwrap
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, NullLocator

from bench.cell import maximized
from bench.cell import metric as metric_info
from bench.report.frame import config_key, group_by_config, varying_params
from bench.report.plots import legend_label, median_band, style

Quartiles = tuple[float, float, float]                 # 25th, 50th, 75th percentile over seeds
Series = dict[str, list[tuple[int, Quartiles]]]        # legend label → points by batch size


def batch_text(batch_size) -> str:
    return "full batch" if batch_size is None else f"batch {batch_size}"


def batch_sizes(runs: list[dict]) -> list[int]:
    """The distinct batch sizes of the runs; full batch (None) has no place on a batch axis."""
    return sorted({r["cell"]["batch_size"] for r in runs} - {None})


# ---- shaping: one line per configuration other than batch size and seed ---------------------
def key_without_batch(result: dict, show: dict) -> tuple:
    """The config key with the batch size blanked: the runs of one line against batch size
    (legend_label never names the batch size then, as it does not vary between keys)."""
    return tuple((a, None if a == "batch_size" else v) for a, v in config_key(result, show))


def across_batch_sizes(runs: list[dict]) -> dict[tuple, list[dict]]:
    show = varying_params(runs)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        if r["cell"]["batch_size"] is not None:
            groups[key_without_batch(r, show)].append(r)
    return dict(groups)


def quartiles(values: list) -> Quartiles | None:
    finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return tuple(float(q) for q in np.percentile(finite, [25, 50, 75])) if finite else None


def per_batch_size(runs: list[dict], value: Callable[[dict], float | None]) -> list:
    """(batch size, quartiles over seeds of value(summary)) for every batch size with one."""
    values: dict[int, list] = defaultdict(list)
    for r in runs:
        values[r["cell"]["batch_size"]].append(value(r["summary"]))
    points = [(b, quartiles(v)) for b, v in sorted(values.items())]
    return [(b, q) for b, q in points if q is not None]


def batch_series(runs: list[dict], value: Callable[[dict], float | None]) -> Series:
    """Every line keeps its place (and so its colour) even when it has no point."""
    groups = across_batch_sizes(runs)
    keys = list(groups)
    return {legend_label(k, keys): per_batch_size(groups[k], value) for k in keys}


def _difference(summary: dict, a: str, b: str) -> float | None:
    x, y = summary.get(a), summary.get(b)
    return x - y if isinstance(x, (int, float)) and isinstance(y, (int, float)) else None


# (what a panel shows, its value from a run's summary)
GENERALIZATION = (
    ("final test accuracy", lambda s: s.get("final_test_accuracy")),
    ("accuracy gap (train − test)",
     lambda s: _difference(s, "final_train_accuracy", "final_test_accuracy")),
    ("loss gap (test − train)", lambda s: _difference(s, "final_test_loss", "final_train_loss")),
)
SHARPNESS = (
    ("final sharpness (top Hessian eigenvalue)", lambda s: s.get("final_sharpness")),
    ("final ε-sharpness", lambda s: s.get("final_eps_sharpness")),
)


def batch_panels(runs: list[dict], panels: tuple) -> list[tuple[str, Series]]:
    """The panels that have at least one point (a metric not recorded draws no panel)."""
    shaped = [(label, batch_series(runs, value)) for label, value in panels]
    return [(label, series) for label, series in shaped if any(series.values())]


# ---- steps to a target ------------------------------------------------------------------------
@dataclass
class StepsLine:
    """One configuration's steps to the target against batch size."""
    label: str
    points: list = field(default_factory=list)   # (batch size, quartiles) where most reached it
    missed: list = field(default_factory=list)   # batch sizes where most seeds did not

    def perfect_scaling(self) -> list[tuple[int, float]]:
        """steps = s₀·b₀/b from the smallest batch size's median: what the steps would be if
        doubling the batch always halved them."""
        if not self.points:
            return []
        b0, (_, s0, _) = self.points[0]
        return [(b, s0 * b0 / b) for b in sorted({b for b, _ in self.points} | set(self.missed))]


def steps_lines(runs: list[dict]) -> list[StepsLine]:
    groups = across_batch_sizes(runs)
    keys = list(groups)
    return [_steps_line(legend_label(k, keys), groups[k]) for k in keys]


def _steps_line(label: str, runs: list[dict]) -> StepsLine:
    """A run that missed the target counts as its step budget (a lower bound) in the band; a
    point is drawn only where most seeds reached it, so the median is never such a bound."""
    line = StepsLine(label)
    by_size: dict[int, list[dict]] = defaultdict(list)
    for r in runs:
        by_size[r["cell"]["batch_size"]].append(r)
    for b, rs in sorted(by_size.items()):
        reached = [r for r in rs if r["summary"].get("steps_to_target") is not None]
        if len(reached) * 2 > len(rs):
            line.points.append((b, quartiles([_steps_or_budget(r) for r in rs])))
        else:
            line.missed.append(b)
    return line


def _steps_or_budget(result: dict) -> float:
    summary = result["summary"]
    if summary.get("steps_to_target") is not None:
        return summary["steps_to_target"]
    return result["cell"]["budget"].get("steps") or summary.get("steps") or math.inf


def target_text(target: dict) -> str:
    return ", ".join(f"{metric_info(m).display} {'≥' if maximized(m) else '≤'} {v:g}"
                     for m, v in target.items())


def scaling_text(lr_scaling: dict | None) -> str:
    if not lr_scaling:
        return "same learning rate at every batch size"
    return (f"learning rate scaled ({lr_scaling.get('rule')}) from batch "
            f"{lr_scaling.get('base_batch_size')}")


# ---- drawing against batch size -------------------------------------------------------------
def against_batch_size(panels: list[tuple[str, Series]], title: str, log_y: bool = False) -> Figure:
    """One panel per quantity, median over seeds with its interquartile band, a line per
    configuration other than batch size."""
    fig = Figure(figsize=(4.3 * len(panels), 4.3), layout="constrained")
    for i, (what, series) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for j, (label, points) in enumerate(series.items()):
            if points:
                _median_line(ax, points, label, style(j))
        _batch_axis(ax, [b for points in series.values() for b, _ in points])
        if log_y and all(q[0] > 0 for points in series.values() for _, q in points):
            log_y_axis(ax)
        ax.set_title(what, fontsize=10)
        ax.grid(alpha=0.3, which="both")
    suptitle(fig, title)
    _legend_below(fig, [ax])
    return fig


def steps_against_batch_size(lines: list[StepsLine], title: str, xlabel: str,
                             ylabel: str) -> Figure:
    """Log-log median steps (IQR band) against batch size, each with its perfect-scaling
    line; batch sizes where most seeds missed the target are named in the legend."""
    fig = Figure(figsize=(8, 5.2), layout="constrained")
    ax = fig.add_subplot()
    for i, line in enumerate(lines):
        colour = style(i)
        missed = (f"; left out, most seeds missed the target: batch "
                  f"{', '.join(map(str, line.missed))}" if line.missed else "")
        if not line.points:   # still named, so that the legend says why nothing is drawn
            ax.plot([], [], label=f"{line.label}: most seeds missed the target at every batch "
                    "size", **colour)
            continue
        _median_line(ax, line.points, f"{line.label}: median steps (IQR){missed}", colour)
        ideal = line.perfect_scaling()
        ax.plot(*zip(*ideal), ":", color=colour["color"], lw=1.4,
                label=f"perfect scaling s₀·b₀/b from batch {ideal[0][0]}")
    _batch_axis(ax, [b for line in lines for b in [p[0] for p in line.points] + line.missed])
    log_y_axis(ax)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3, which="both")
    suptitle(fig, title)
    _legend_below(fig, [ax], columns=1)
    return fig


def _median_line(ax, points: list[tuple[int, Quartiles]], label: str, colour: dict) -> None:
    xs = [b for b, _ in points]
    q = np.array([qs for _, qs in points])
    ax.plot(xs, q[:, 1], marker="o", ms=4, lw=1.5, label=label, **colour)
    ax.fill_between(xs, q[:, 0], q[:, 2], color=colour["color"], alpha=0.2, lw=0)


def _batch_axis(ax, sizes: list[int]) -> None:
    """Log base 2, a tick at (and only at) every batch size run."""
    ticks = sorted(set(sizes))
    ax.set_xscale("log", base=2)
    if ticks:
        ax.set_xticks(ticks, [str(b) for b in ticks])
        ax.set_xlim(ticks[0] / 1.4, ticks[-1] * 1.4)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("batch size")


class PlainLogFormatter(LogFormatter):
    """LogFormatter's choice of ticks to label, written 0.1, 20, 300 (not 1e−01, 2×10¹)."""

    def __call__(self, x, pos=None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def log_y_axis(ax) -> None:
    """Log scale with plain labels, minor ticks too: these axes span a decade or two."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(PlainLogFormatter(labelOnlyBase=False))
    ax.yaxis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False,
                                                   minor_thresholds=(2, 0.5)))


def suptitle(fig: Figure, title: str) -> None:
    """The title wrapped to the figure's width (long problem names would run off it)."""
    width = int(fig.get_figwidth() * 13)   # characters per line at 11 points
    lines = [textwrap.fill(line, width) for line in title.splitlines()]
    fig.suptitle("\n".join(lines), fontsize=11)


def _legend_below(fig: Figure, axes: list, columns: int | None = None) -> None:
    handles, labels = [], []
    for ax in axes:
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    if labels:
        fig.legend(handles, labels, loc="outside lower center", fontsize=8,
                   ncols=columns or min(4, len(labels)))


# ---- landscapes ------------------------------------------------------------------------------
def landscape_titles(lands: list[dict], runs: list[dict], with_batch: bool) -> list[str]:
    """A panel title per landscape, from its first cell: the seed, the batch size when asked,
    and the other settings when they differ between the panels."""
    by_id = {r["id"]: r for r in runs}
    show = varying_params(runs)
    keys = [key_without_batch(by_id[d["ids"][0]], show) if d["ids"][0] in by_id else None
            for d in lands]
    distinct = list(dict.fromkeys(k for k in keys if k is not None))
    titles = []
    for d, key in zip(lands, keys):
        cell = d["cells"][0]
        parts = [legend_label(key, distinct)] if key is not None and len(distinct) > 1 else []
        parts += [batch_text(cell["batch_size"])] if with_batch else []
        titles.append(", ".join(parts + [f"seed {cell['seed']}"]))
    return titles


def interpolation(panels: list[tuple[str, dict]], ends: tuple[str, str], title: str) -> Figure:
    """Keskar et al.'s figure 3: loss (left, log) and accuracy (right) along the line through
    two sets of weights, α = 0 and α = 1 marked and named on the axis."""
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.9 * cols, 3.8 * rows + 0.7), layout="constrained")
    for i, (panel_title, land) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        accuracy = _interpolation_panel(ax, land, ends)
        ax.set_title(panel_title, fontsize=10)
    suptitle(fig, title)
    _legend_below(fig, [ax, accuracy])
    return fig


LOSS_COLOUR, ACCURACY_COLOUR = "tab:blue", "tab:red"


def _interpolation_panel(ax, land: dict, ends: tuple[str, str]):
    alphas, metrics = land["alphas"], land["metrics"]
    for split, dash in (("train", "-"), ("test", "--")):
        if f"{split}_loss" in metrics:
            ax.plot(alphas, _floats(metrics[f"{split}_loss"]), dash, color=LOSS_COLOUR,
                    lw=1.5, label=f"{split} loss")
    if all(v is not None and v > 0 for m in ("train_loss", "test_loss")
           for v in metrics.get(m, [])):
        log_y_axis(ax)
    ax.set_ylabel("loss", color=LOSS_COLOUR)
    accuracy = ax.twinx()
    for split, dash in (("train", "-"), ("test", "--")):
        if f"{split}_accuracy" in metrics:
            accuracy.plot(alphas, _floats(metrics[f"{split}_accuracy"]), dash,
                          color=ACCURACY_COLOUR, lw=1.2, label=f"{split} accuracy")
    accuracy.set_ylim(0, 1.02)
    accuracy.set_ylabel("accuracy", color=ACCURACY_COLOUR)
    for x in (0, 1):
        ax.axvline(x, color="0.35", lw=0.8, ls=":")
    ticks = [-1, -0.5, 0, 0.5, 1, 1.5, 2]
    ax.set_xticks(ticks, [f"0\n{ends[0]}" if t == 0 else f"1\n{ends[1]}" if t == 1 else f"{t:g}"
                          for t in ticks])
    ax.set_xlabel("α")
    ax.grid(alpha=0.3)
    return accuracy


def _floats(values: list) -> np.ndarray:
    """A stored NaN is a None (JSON has no NaN): back to NaN, a gap in the line."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def contours(panels: list[tuple[str, dict]], title: str) -> Figure:
    """Filled contours of the training loss around each final weights, side by side on one
    colour scale (log-spaced levels), the weights themselves marked at the centre."""
    grids = [np.array([_floats(row) for row in land["train_loss"]]) for _, land in panels]
    levels, norm = _shared_levels(grids)
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.3 * cols + 1.2, 4.0 * rows + 0.4), layout="constrained")
    axes = []
    for i, ((panel_title, land), z) in enumerate(zip(panels, grids)):
        ax = fig.add_subplot(rows, cols, i + 1)
        filled = ax.contourf(land["a"], land["b"], z, levels=levels, norm=norm, cmap="viridis")
        ax.contour(land["a"], land["b"], z, levels=levels, colors="k", linewidths=0.3,
                   alpha=0.5)
        ax.plot(0, 0, "*", color="tab:red", ms=11, mec="w", label="final weights")
        ax.set(aspect="equal", xlabel="a (direction 1)", ylabel="b (direction 2)")
        centre = land.get("center_loss")
        ax.set_title(panel_title + (f": loss {centre:.3g} at the centre"
                                    if isinstance(centre, (int, float)) else ""), fontsize=9)
        axes.append(ax)
    bar = fig.colorbar(filled, ax=axes, label="training loss", format="%.3g")
    if isinstance(norm, LogNorm):
        bar.set_ticks(_round_log_ticks(norm.vmin, norm.vmax))
    suptitle(fig, title)
    _legend_below(fig, [axes[0]])
    return fig


def _round_log_ticks(lo: float, hi: float) -> list[float]:
    """1, 2, 5 × 10ᵏ within [lo, hi], and the ends (the contour levels are not round)."""
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    inside = [m * 10.0 ** k for k in decades for m in (1, 2, 5) if lo < m * 10.0 ** k < hi]
    return [lo] + [v for v in inside if lo * 1.5 < v < hi / 1.5] + [hi]


def _shared_levels(grids: list[np.ndarray], count: int = 18):
    """Log-spaced levels over every grid when the loss is positive, else linear ones."""
    finite = np.concatenate([z[np.isfinite(z)] for z in grids])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    hi = max(hi, lo + 1e-12 + abs(lo) * 1e-6)   # a flat grid still needs increasing levels
    if lo > 0:
        return np.geomspace(lo, hi, count), LogNorm(lo, hi)
    return np.linspace(lo, hi, count), Normalize(lo, hi)


# ---- sharpness over training ---------------------------------------------------------------
def sharpness_over_training(runs: list[dict], title: str) -> Figure:
    """Median sharpness (IQR band) against epochs, a line per configuration (batch sizes in
    order), and dashed at 2/lr: where full-batch gradient descent stops being stable."""
    groups = group_by_config(runs)
    keys = sorted(groups, key=lambda k: batch_order(dict(k)["batch_size"]))
    x = "epoch" if all("epoch" in h for r in runs for h in r["history"]) else "step"
    fig = Figure(figsize=(8.5, 5.2), layout="constrained")
    ax = fig.add_subplot()
    thresholds, positive = [], True
    for i, key in enumerate(keys):
        xs, q = median_band(groups[key], "sharpness", x)
        if not len(xs):
            continue
        positive &= bool((q > 0).all())
        colour, label = style(i), legend_label(key, keys)
        ax.plot(xs, q[:, 1], lw=1.5, label=label, **colour)
        ax.fill_between(xs, q[:, 0], q[:, 2], color=colour["color"], alpha=0.2, lw=0)
        lr = final_lr(groups[key])
        if lr:
            thresholds.append((2 / lr, label, colour["color"]))
    _stability_lines(ax, thresholds)
    if positive:   # a negative top eigenvalue (a saddle) would vanish from a log axis
        log_y_axis(ax)
    ax.set(xlabel=x, ylabel="sharpness (top Hessian eigenvalue; median, IQR)")
    ax.grid(alpha=0.3, which="both")
    suptitle(fig, title)
    _legend_below(fig, [ax], columns=min(3, len(keys)))
    return fig


def batch_order(batch_size) -> float:
    return math.inf if batch_size is None else batch_size


def final_lr(runs: list[dict]) -> float | None:
    """The learning rate of the last evaluation (after scaling and schedule), median over
    seeds."""
    lrs = [r["history"][-1].get("lr") for r in runs if r["history"]]
    q = quartiles([lr for lr in lrs if isinstance(lr, (int, float)) and lr > 0])
    return q[1] if q else None


def _stability_lines(ax, thresholds: list[tuple[float, str, str]]) -> None:
    """A dashed line at each 2/lr, in its curve's colour; curves sharing one value share
    one black line instead of hiding each other's."""
    owners: dict[float, list] = defaultdict(list)
    for value, label, colour in thresholds:
        owners[float(f"{value:.10g}")].append((label, colour))
    for value, who in owners.items():
        colour = who[0][1] if len(who) == 1 else "k"
        named = who[0][0] if len(who) == 1 else (
            "every line" if len(who) == len(thresholds) else ", ".join(w[0] for w in who))
        ax.axhline(value, ls="--", lw=1.1, color=colour,
                   label=f"2/lr = {value:.4g} ({named}): full-batch GD's edge of stability")
