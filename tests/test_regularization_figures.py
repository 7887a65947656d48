"""The weight_histogram measure and the regularization figures, on a tiny real experiment.

One run through the CLI (an MLP on a slice of MNIST, four regularizers, two seeds); the
figures are checked through the lines and patches of the returned matplotlib Figures."""
from __future__ import annotations

import copy
import json
import math
import statistics

import numpy as np
import pytest
import torch

import bench.weight_stats  # noqa: F401  (registers weight_histogram)
from bench.measures import MEASURES
from bench.report import regularization
from bench.report.figures import draw_all
from bench.weight_stats import WeightHistogram

SPEC = """
name: reg
seeds: [0, 1]
experiments:
  reg:
    problem: {name: mlp, data: mnist, hidden: [16], subset: 256, test_subset: 128}
    optimizer: {name: adam, lr: 0.01}
    batch_size: 64
    regularizer:
      - none
      - {name: l1, strength: 0.001}
      - {name: l2, strength: 0.001}
      - [l2, {name: dropout, p: 0.5}]
    budget: {steps: 60, eval_every: 20}
    measures: [weight_histogram]
  plain:
    problem: {name: mlp, data: mnist, hidden: [16], subset: 256, test_subset: 128}
    optimizer: {name: adam, lr: 0.01}
    batch_size: 64
    budget: {steps: 20, eval_every: 10}
    measures: [weight_histogram]
"""
WEIGHTS = 784 * 16 + 16 * 10          # the two weight matrices (biases are not weights)
LABELS = ["none", "l1(strength=0.001)", "l2(strength=0.001)", "l2 + dropout"]
NEW = ("generalization gap per regularizer", "train and test accuracy per regularizer",
       "weight histograms")


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    from bench.cli import main
    root = tmp_path_factory.mktemp("reg")
    (root / "spec.yaml").write_text(SPEC)
    assert main(["run", str(root / "spec.yaml"), "--out", str(root / "out"),
                 "--workers", "1", "--device", "cpu"]) == 0
    results = [json.loads(p.read_text()) for p in sorted((root / "out").glob("cells/*.json"))]
    return root / "out", results


@pytest.fixture(scope="module")
def runs(stored):
    """The regularizer experiment's runs, in the spec's order of regularizers."""
    chosen = [r for r in stored[1] if r["cell"]["experiment"] == "reg"]
    return sorted(chosen, key=lambda r: (LABELS.index(label(r)), r["cell"]["seed"]))


def label(result: dict) -> str:
    """The row the report names the result's regularizer by."""
    return dict(zip(["none", "l1", "l2", "combined"], LABELS))[
        result["cell"]["regularizer"]["name"]]


def of(runs: list[dict], row: str) -> list[dict]:
    return [r for r in runs if label(r) == row]


def histogram(result: dict, when: str = "end") -> dict:
    return result["summary"]["measures"]["weight_histogram"][when]


def new_titles(runs: list[dict]) -> set[str]:
    return {t.split(" mlp")[0] for t, _ in draw_all("reg", runs) if t.startswith(NEW)}


def figure(runs: list[dict], start: str):
    found = [fig for title, fig in draw_all("reg", runs) if title.startswith(start)]
    assert len(found) == 1
    return found[0]


# ---- the measure ---------------------------------------------------------------------------
def test_the_histogram_counts_every_weight_once(runs):
    for r in runs:
        for when in ("init", "end"):
            h = histogram(r, when)
            assert h["total"] == WEIGHTS
            assert sum(h["counts"]) + h["below"] + h["nonfinite"] == WEIGHTS
            assert len(h["edges"]) == len(h["counts"]) + 1 and h["edges"][0] == -8
            assert h["edges"][-1] >= math.log10(h["max_abs"]) > h["edges"][-2]
        # the histogram's mass below 1e-3 is the network's own sparsity metric
        assert regularization.small_fraction(histogram(r)) == pytest.approx(
            r["summary"]["final_sparsity"], abs=1.5 / WEIGHTS)


def test_l1_leaves_far_more_weights_below_1e_3_than_l2(runs):
    for seed in (0, 1):
        l1, l2 = (next(r for r in of(runs, row) if r["cell"]["seed"] == seed)
                  for row in LABELS[1:3])
        small_l1, small_l2 = (regularization.small_fraction(histogram(r)) for r in (l1, l2))
        assert small_l1 > 0.15 and small_l1 > 5 * small_l2, (small_l1, small_l2)
        # at initialisation they were alike (same seed, same init)
        assert histogram(l1, "init")["counts"] == histogram(l2, "init")["counts"]


def test_the_histogram_bins_by_decade_and_counts_tiny_zero_and_nonfinite_apart():
    w = torch.tensor([[0.0, 1e-9, -2e-3, 0.5, math.nan, 5e-3]], dtype=torch.float64)
    h = WeightHistogram(bins_per_decade=2).histogram([w])
    assert (h["total"], h["zeros"], h["below"], h["nonfinite"]) == (6, 1, 2, 1)
    counts = dict(zip(h["edges"], h["counts"]))
    assert counts[-3.0] == 1 and counts[-2.5] == 1 and counts[-0.5] == 1   # 2e-3, 5e-3, 0.5
    assert h["edges"][-1] == 0.0 and sum(h["counts"]) == 3
    assert WeightHistogram().unsuitable(object()) is not None
    with pytest.raises(ValueError):
        WeightHistogram(bins_per_decade=0)
    assert "weight_histogram" in MEASURES


# ---- which figures apply -------------------------------------------------------------------
def test_the_figures_appear_exactly_when_they_apply(stored, runs):
    assert new_titles(runs) == set(NEW)
    plain = [r for r in stored[1] if r["cell"]["experiment"] == "plain"]
    assert new_titles(plain) == set()                        # one regularizer
    assert new_titles(of(runs, "l1(strength=0.001)")) == set()
    unmeasured = copy.deepcopy(runs)
    for r in unmeasured:
        r["summary"]["measures"] = {}
    assert new_titles(unmeasured) == set(NEW[:2])            # no weight histograms
    no_accuracy = copy.deepcopy(unmeasured)
    for r in no_accuracy:
        r["summary"] = {k: v for k, v in r["summary"].items() if "accuracy" not in k}
        r["history"] = [{k: v for k, v in h.items() if "accuracy" not in k}
                        for h in r["history"]]
    assert new_titles(no_accuracy) == set()
    # and in the report the CLI built: under the regularizer experiment only
    report = (stored[0] / "report.md").read_text()
    reg, plain_section = report.split("## reg")[1].split("## plain")
    for title in NEW:
        assert f"### {title} mlp" in reg and title not in plain_section


# ---- the numbers drawn ---------------------------------------------------------------------
def median_of(runs: list[dict], row: str, key: str) -> float:
    return statistics.median(r["summary"][key] for r in of(runs, row))


def test_the_generalization_panels_draw_the_medians_over_seeds(runs):
    fig = figure(runs, "generalization gap per regularizer")
    keys = ("final_test_accuracy", "final_gap_accuracy", "final_train_accuracy")
    assert len(fig.axes) == 3
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == LABELS
    for ax, key in zip(fig.axes, keys):
        medians = {line.get_label(): line for line in ax.get_lines()
                   if not line.get_label().startswith("_")}
        assert list(medians) == LABELS
        for row, line in medians.items():
            assert line.get_xdata()[0] == pytest.approx(median_of(runs, row, key), abs=1e-12)
            assert line.get_ydata()[0] == LABELS.index(row)
    gap = fig.axes[1]
    none = [line for line in gap.get_lines() if line.get_label() == "_unregularized median"]
    assert none[0].get_xdata()[0] == pytest.approx(median_of(runs, "none",
                                                             "final_gap_accuracy"))


def test_the_curve_panels_end_at_the_final_medians_on_one_y_scale(runs):
    fig = figure(runs, "train and test accuracy per regularizer")
    panels = [ax for ax in fig.axes if ax.get_lines()]
    assert [ax.get_title().split("\n")[0] for ax in panels] == LABELS
    assert len({ax.get_ylim() for ax in panels}) == 1
    for ax in panels:
        row = ax.get_title().split("\n")[0]
        lines = {line.get_label(): line for line in ax.get_lines()}
        for name, key in (("train accuracy", "final_train_accuracy"),
                          ("test accuracy", "final_test_accuracy")):
            x, y = lines[name].get_xdata(), lines[name].get_ydata()
            assert x[-1] == of(runs, row)[0]["history"][-1]["epoch"]
            assert y[-1] == pytest.approx(median_of(runs, row, key), abs=1e-12)
        assert f"final gap {median_of(runs, row, 'final_gap_accuracy'):.3f}" in ax.get_title()


def test_the_weight_histograms_draw_the_first_seed_with_l1_and_l2_highlighted(runs):
    fig = figure(runs, "weight histograms")
    density, cumulative = fig.axes
    steps = {p.get_label().split(":")[0]: p for p in density.patches
             if not p.get_label().startswith("_")}
    assert list(steps) == LABELS + ["at initialisation"]
    widths = {row: p.get_linewidth() for row, p in steps.items()}
    assert widths[LABELS[1]] == widths[LABELS[2]] > widths["none"] == widths["l2 + dropout"]
    lines = {line.get_label().split(":")[0]: line for line in cumulative.get_lines()
             if not line.get_label().startswith("_")}
    for row in LABELS:
        first = min(of(runs, row), key=lambda r: r["cell"]["seed"])
        h, sparsity = histogram(first), first["summary"]["final_sparsity"]
        values, edges, _baseline = steps[row].get_data()
        shift = len(values) - len(h["counts"])   # a bin of |w| < 1e-8 on the left, if any
        assert values[shift:] == pytest.approx(np.array(h["counts"]) / WEIGHTS)
        assert edges[shift:] == pytest.approx(h["edges"])
        assert steps[row].get_label() == f"{row}: sparsity {sparsity:.3f}"
        # the cumulative curve passes through the sparsity at 1e-3
        x, y = lines[row].get_xdata(), lines[row].get_ydata()
        assert np.interp(-3, x, y) == pytest.approx(sparsity, abs=1.5 / WEIGHTS)
