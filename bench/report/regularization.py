"""Figures of the regularization study: what each regularizer does to the generalization
gap, to the train and test curves, and to the magnitudes of the weights.

Shaping (a row per configuration, quartiles over seeds) and drawing, on
`matplotlib.figure.Figure` without pyplot state; figures.py decides which experiments each
figure applies to: those whose runs try two regularizers at least. A row is one
configuration (everything but the seed), named by what differs between the rows: the
regularizer as the report names it (its `label` when the spec gives one), and any other
axis that varies too. A row keeps its colour in every figure.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter

from bench.report.frame import group_by_config, name_of, varying_params
from bench.report.geometry import quartiles, suptitle
from bench.report.plots import legend_label, style

MEASURE = "weight_histogram"
BELOW_AT = 0.65           # |w| below the first bin: drawn that many decades further left
SPARSE_BELOW = -3          # log10 of the threshold of the `sparsity` metric (|w| < 1e-3)
TRAIN_COLOUR, TEST_COLOUR, GAP_COLOUR = "tab:blue", "tab:orange", "tab:red"


# ---- which runs -------------------------------------------------------------------------------
def regularizers(runs: list[dict]) -> list[str]:
    """The distinct regularizers of the runs, as the report names them, in order."""
    show = varying_params(runs)
    return list(dict.fromkeys(name_of(r, "regularizer", show) for r in runs))


def compares_regularizers(runs: list[dict]) -> bool:
    return len(regularizers(runs)) >= 2


def has_final(runs: list[dict], metric: str) -> bool:
    return any(isinstance(r["summary"].get(f"final_{metric}"), (int, float)) for r in runs)


def has_curves(runs: list[dict]) -> bool:
    """Some run's history records both accuracies at two evaluations at least."""
    return any(sum(_is_number(h.get("train_accuracy")) and _is_number(h.get("test_accuracy"))
                   for h in r["history"]) >= 2 for r in runs)


def histogram_of(result: dict, when: str = "end") -> dict | None:
    recorded = (result["summary"].get("measures") or {}).get(MEASURE) or {}
    return recorded.get(when) or None


# ---- rows: one per configuration ------------------------------------------------------------
@dataclass
class Row:
    label: str
    runs: list[dict]
    colour: dict

    @property
    def regularizer(self) -> str:
        """The registry name of the row's regularizer (`combined` for a list)."""
        return self.runs[0]["cell"]["regularizer"]["name"]


def config_rows(runs: list[dict]) -> list[Row]:
    """A row per configuration in the order the runs come (the spec's), its colour by place;
    failed and diverged seeds are named in the label."""
    groups = group_by_config(runs)
    keys = list(groups)
    return [Row(legend_label(key, keys) + _failures(groups[key]), groups[key], style(i))
            for i, key in enumerate(keys)]


def _failures(runs: list[dict]) -> str:
    bad = [r["status"] for r in runs if r["status"] != "ok"]
    return f" [{len(bad)}/{len(runs)} {', '.join(sorted(set(bad)))}]" if bad else ""


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _difference(summary: dict, a: str, b: str) -> float | None:
    x, y = summary.get(a), summary.get(b)
    return x - y if _is_number(x) and _is_number(y) else None


def final_gap(summary: dict) -> float | None:
    """final_gap_accuracy, or train − test accuracy for results written before it existed."""
    gap = summary.get("final_gap_accuracy")
    return gap if _is_number(gap) else _difference(summary, "final_train_accuracy",
                                                   "final_test_accuracy")


# (panel title, the value from a run's summary)
GENERALIZATION: tuple[tuple[str, Callable[[dict], float | None]], ...] = (
    ("final test accuracy", lambda s: s.get("final_test_accuracy")),
    ("generalization gap: train − test accuracy", final_gap),
    ("final train accuracy (clean images, eval mode)", lambda s: s.get("final_train_accuracy")),
)


# ---- generalization gap per regularizer ------------------------------------------------------
def generalization(rows: list[Row], title: str) -> Figure:
    """A dot chart per quantity, a row per configuration: the median over seeds (a dot, its
    value written beside it), the interquartile range (a bar) and every seed (small ticks);
    dotted, the unregularized row's median, when there is one."""
    panels = [(what, value) for what, value in GENERALIZATION
              if any(_is_number(value(r["summary"])) for row in rows for r in row.runs)]
    fig = Figure(figsize=(3.9 * len(panels) + 1.6, 0.42 * len(rows) + 2.0), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    reference = [i for i, row in enumerate(rows) if row.regularizer == "none"]
    for ax, (what, value) in zip(axes, panels):
        spread = []
        for y, row in enumerate(rows):
            values = [value(r["summary"]) for r in row.runs]
            values = [float(v) for v in values if _is_number(v)]
            q = quartiles(values)
            if q is None:
                continue
            colour = row.colour["color"]
            ax.plot([q[0], q[2]], [y, y], "-", color=colour, lw=5, alpha=0.35,
                    solid_capstyle="butt", label="_IQR")
            ax.plot(values, [y] * len(values), "|", color=colour, ms=9, mew=1.2, alpha=0.8,
                    label="_seeds")
            ax.plot([q[1]], [y], "o", color=colour, ms=7, mec="k", mew=0.6, label=row.label)
            ax.annotate(f"{q[1]:.3f}", (q[1], y), xytext=(0, 7), textcoords="offset points",
                        ha="center", va="bottom", fontsize=7)
            spread += values
            if len(reference) == 1 and y == reference[0]:
                ax.axvline(q[1], color="0.4", ls=":", lw=1, label="_unregularized median")
        if what.startswith("generalization") and spread and min(spread) < 0 < max(spread):
            ax.axvline(0, color="k", lw=0.6, label="_zero")
        if spread:   # room for the values written above the dots
            lo, hi = min(spread), max(spread)
            pad = 0.08 * (hi - lo) or 0.01
            ax.set_xlim(lo - pad, hi + pad)
        ax.set_title(what, fontsize=10)
        ax.grid(alpha=0.3, axis="x")
        ax.tick_params(axis="x", labelsize=8)
    axes[0].set_yticks(range(len(rows)), [row.label for row in rows], fontsize=9)
    axes[0].set_ylim(len(rows) - 0.4, -0.6)   # the first row on top
    suptitle(fig, title)
    return fig


# ---- train and test curves per regularizer ---------------------------------------------------
def curve_x(runs: list[dict]) -> str:
    return "epoch" if all("epoch" in h for r in runs for h in r["history"]) else "step"


def linear_band(runs: list[dict], metric: str, x: str):
    """Quartiles over seeds at every evaluated x, on the linear scale (an accuracy's median
    is the middle seed's, not a geometric mean), each run interpolated onto the common grid;
    a point while more than half of the runs have reached it (as plots.median_band). A step
    evaluated twice (early stopping's restored weights) counts with its last value."""
    curves = []
    for r in runs:
        points = {h[x]: h[metric] for h in r["history"]
                  if _is_number(h.get(x)) and _is_number(h.get(metric))}
        if points:
            curves.append(np.array(sorted(points.items()), dtype=float))
    if not curves:
        return np.array([]), np.zeros((0, 3))
    grid = np.unique(np.concatenate([c[:, 0] for c in curves]))
    rows = []
    for point in grid:
        alive = [c for c in curves if c[-1, 0] >= point]
        if len(alive) * 2 <= len(curves):
            break
        rows.append(np.percentile([np.interp(point, c[:, 0], c[:, 1]) for c in alive],
                                  [25, 50, 75]))
    return grid[:len(rows)], np.array(rows).reshape(-1, 3)


def train_test_curves(rows: list[Row], title: str, x: str) -> Figure:
    """A panel per configuration, on one y scale: train and test accuracy (median over
    seeds, interquartile bands) against x; the gap between them shaded, its final value
    (median over seeds) in the panel's title."""
    cols = min(4, len(rows))
    nrows = math.ceil(len(rows) / cols)
    fig = Figure(figsize=(3.4 * cols + 0.4, 2.7 * nrows + 1.1), layout="constrained")
    axes = fig.subplots(nrows, cols, sharex=True, sharey=True, squeeze=False)
    later = []   # the lower quartiles after the first evaluation
    for i, row in enumerate(rows):
        ax = axes[i // cols][i % cols]
        drawn = {}
        for metric, colour, name in (("train_accuracy", TRAIN_COLOUR, "train accuracy"),
                                     ("test_accuracy", TEST_COLOUR, "test accuracy")):
            xs, q = linear_band(row.runs, metric, x)
            if len(xs):
                ax.plot(xs, q[:, 1], color=colour, lw=1.6, label=name)
                ax.fill_between(xs, q[:, 0], q[:, 2], color=colour, alpha=0.2, lw=0)
                drawn[metric] = (xs, q[:, 1])
                later.append(q[1:, 0] if len(q) > 1 else q[:, 0])
        if len(drawn) == 2 and np.array_equal(drawn["train_accuracy"][0],
                                              drawn["test_accuracy"][0]):
            xs, train = drawn["train_accuracy"]
            ax.fill_between(xs, drawn["test_accuracy"][1], train, color=GAP_COLOUR, alpha=0.13,
                            lw=0, label="gap (train − test)")
        gap = quartiles([final_gap(r["summary"]) for r in row.runs])
        gap_text = f"\nfinal gap {gap[1]:.3f}" if gap else ""
        ax.set_title(f"{row.label}{gap_text}", fontsize=9, color=row.colour["color"])
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if i % cols == 0:
            ax.set_ylabel("accuracy (median, IQR)", fontsize=8)
        if i // cols == nrows - 1 or i + cols >= len(rows):
            ax.set_xlabel(x, fontsize=8)
            ax.tick_params(labelbottom=True)
    for j in range(len(rows), nrows * cols):
        axes[j // cols][j % cols].set_axis_off()
    if later:   # chance level at the first evaluation would squeeze the gap: it runs off
        low = float(np.min(np.concatenate(later)))
        axes[0][0].set_ylim(max(0.0, low - 0.05), 1.01)
    suptitle(fig, title)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8)
    return fig


# ---- weight histograms ---------------------------------------------------------------------
@dataclass
class Histogram:
    label: str
    regularizer: str
    recorded: dict
    sparsity: float | None
    colour: dict

    @property
    def edges(self) -> np.ndarray:
        return np.asarray(self.recorded["edges"], dtype=float)

    @property
    def fractions(self) -> np.ndarray:
        return np.asarray(self.recorded["counts"], dtype=float) / max(1, self.recorded["total"])

    @property
    def below(self) -> float:
        return self.recorded["below"] / max(1, self.recorded["total"])


def small_fraction(recorded: dict, log10_threshold: float = SPARSE_BELOW) -> float:
    """The fraction of weights below 10^threshold: bins wholly under it, and `below`."""
    small = recorded["below"] + sum(c for c, hi in zip(recorded["counts"], recorded["edges"][1:])
                                    if hi <= log10_threshold + 1e-9)
    return small / max(1, recorded["total"])


def histograms(rows: list[Row], when: str = "end") -> list[Histogram]:
    """The first seed's histogram of each row that recorded one; its sparsity is the run's
    final `sparsity` metric (at the end), else the histogram's mass below 1e-3."""
    out = []
    for row in rows:
        seed = min((r for r in row.runs if histogram_of(r, when)),
                   key=lambda r: r["cell"]["seed"], default=None)
        if seed is None:
            continue
        recorded = histogram_of(seed, when)
        sparsity = seed["summary"].get("final_sparsity") if when == "end" else None
        if not _is_number(sparsity):
            sparsity = small_fraction(recorded)
        label = f"{row.label}: sparsity {sparsity:.3f}"
        out.append(Histogram(label, row.regularizer, recorded, sparsity, row.colour))
    return out


def weight_figure(rows: list[Row], title: str) -> Figure:
    """The end histograms of the rows, with the first row's initial one for reference."""
    shown = histograms(rows, "end")
    starts = histograms(rows, "init")
    init = None
    if starts:
        first = starts[0]
        same = all(h.recorded["counts"] == first.recorded["counts"] for h in starts)
        init = Histogram("at initialisation" + ("" if same else f" ({rows[0].label})")
                         + f": sparsity {first.sparsity:.3f}", first.regularizer,
                         first.recorded, first.sparsity, first.colour)
    return weight_histograms(shown, init, title)


def _decade_axis(ax, lo: float, hi: float, below: bool, min_log10: float) -> None:
    ticks = list(range(math.ceil(lo), math.floor(hi) + 1))
    if below:
        ticks = [min_log10 - BELOW_AT] + [t for t in ticks if t >= min_log10]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(
        lambda v, _pos: f"< 1e{min_log10:g}" if below and v < min_log10 else f"1e{v:g}"))
    ax.set_xlim(lo, hi)
    ax.set_xlabel("|w| (log scale; tensors of rank ≥ 2)")


def weight_histograms(shown: list[Histogram], init: Histogram | None, title: str) -> Figure:
    """Left: the fraction of the weights per bin of log10|w| (step histograms, a line per
    configuration, first seed) at the end of training; right: the fraction with |w| below x
    (the cumulative form: its value at 1e-3, dotted, is the sparsity). L1 and L2 are drawn
    thick when both are there, the other configurations thin; dashed grey: the weights at
    initialisation."""
    fig = Figure(figsize=(13, 5.2), layout="constrained")
    density, cumulative = fig.subplots(1, 2)
    contrast = {"l1", "l2"} <= {h.regularizer for h in shown}
    every = shown + ([init] if init else [])
    min_log10 = min(float(h.edges[0]) for h in every)
    below = any(h.recorded["below"] for h in every)
    populated = [float(h.edges[i]) for h in every for i in np.flatnonzero(h.fractions)[:1]]
    lo = min_log10 - 1.0 if below else (min(populated) - 0.3 if populated else min_log10)
    hi = max(float(h.edges[-1]) for h in every) + 0.1
    for h in every:
        is_init = h is init
        thick = contrast and h.regularizer in ("l1", "l2") and not is_init
        look = (dict(color="0.45", ls="--", lw=1.3) if is_init else
                dict(color=h.colour["color"], lw=2.6 if thick else 1.2,
                     alpha=1.0 if thick or not contrast else 0.75, zorder=3 if thick else 2))
        edges, fractions = h.edges, h.fractions
        if below:   # the magnitudes under the first bin, a bin of their own on the left
            edges = np.concatenate([[min_log10 - 0.9, min_log10 - 0.4], edges])
            fractions = np.concatenate([[h.below, 0.0], fractions])
        density.stairs(fractions, edges, label=h.label, **look)
        # the fraction with |w| < 10^edge: `below`, then each bin's added at its upper edge
        start_x = [min_log10 - 0.9, min_log10 - 0.4] if below else [lo]
        start_y = [0.0, h.below] if below else [0.0]
        cumulative.plot(np.concatenate([start_x, h.edges]),
                        np.concatenate([start_y, h.below + np.cumsum(
                            np.concatenate([[0.0], h.fractions]))]), label=h.label, **look)
    for ax in (density, cumulative):
        ax.axvline(SPARSE_BELOW, color="k", ls=":", lw=1, label="_threshold")
        _decade_axis(ax, lo, hi, below, min_log10)
        ax.grid(alpha=0.3)
    if below:   # the axis is broken between that bin and the first decade
        for ax in (density, cumulative):
            ax.axvspan(min_log10 - 0.4, min_log10 - 0.1, color="0.92", lw=0, label="_break")
    density.set_ylabel(f"fraction of weights per bin ({_bin_text(shown)})")
    density.set_title("at the end of training (first seed)", fontsize=10)
    cumulative.set_ylabel("fraction of weights with |w| below x")
    cumulative.set_ylim(0, 1.02)
    cumulative.set_title("cumulative: the value at 1e-3 (dotted) is the sparsity", fontsize=10)
    suptitle(fig, title)
    handles, labels = density.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(3, len(labels)),
               fontsize=8)
    return fig


def _bin_text(shown: list[Histogram]) -> str:
    widths = {round(float(h.edges[1] - h.edges[0]), 9) for h in shown if len(h.edges) > 1}
    if len(widths) != 1:
        return "log-spaced"
    per_decade = round(1 / widths.pop())
    return f"1/{per_decade} decade" if per_decade > 1 else "a decade"
