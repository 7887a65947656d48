"""The batch-size study's figures: drawn exactly when they apply, with the numbers they claim.

Results and landscapes are small synthetic dicts (no training, no torch); the figures are
checked through the lines of the returned matplotlib Figures."""
from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from bench.report.build import build_report
from bench.report.figures import draw_all
from bench.results import Store, write_atomic

CHOICES = {"problem": "mlp", "optimizer": "sgd", "schedule": "constant", "init": "default",
           "regularizer": "none"}
BATCHES = (32, 128, 512)
SEEDS = (0, 1, 2)


def make_result(experiment: str, batch_size, seed: int, summary: dict, history=(),
                target: dict | None = None, lr: float = 0.1) -> dict:
    cell = {axis: {"name": name, "params": {"lr": 0.1} if axis == "optimizer" else {}}
            for axis, name in CHOICES.items()}
    budget = {"steps": 1000, "eval_every": 10} | ({"target": target} if target else {})
    cell |= {"experiment": experiment, "batch_size": batch_size, "seed": seed,
             "budget": budget, "measures": []}
    summary = {"steps": 1000, "seconds": 1.0, "steps_to_target": None} | summary
    return {"schema": 1, "id": f"{experiment}-{batch_size}-{seed}", "status": "ok",
            "cell": cell, "history": [dict(h, lr=lr) for h in history], "summary": summary,
            "defaults": {axis: {} for axis in CHOICES}, "error": None}


def accuracies(b: int, seed: int) -> dict:
    """Larger batches: lower accuracy, a smaller gap and a sharper minimum (made up)."""
    k = math.log2(b / 32)
    return {"final_train_accuracy": 0.99 - 0.02 * k + 0.001 * seed,
            "final_test_accuracy": 0.90 - 0.01 * k - 0.002 * seed,
            "final_train_loss": 0.05 + 0.01 * k, "final_test_loss": 0.40 + 0.005 * seed,
            "final_sharpness": 10.0 * (k + 1) + seed, "final_eps_sharpness": 5.0 + seed}


def sharpness_history(b: int, seed: int) -> list[dict]:
    return [{"step": 10 * e, "epoch": float(e), "train_loss": 1.0 / (e + 1),
             "sharpness": (e + 1) * math.log2(b) + seed} for e in range(4)]


def sweep(experiment: str = "sweep", lr_of=lambda b: 0.1) -> list[dict]:
    return [make_result(experiment, b, s, accuracies(b, s), sharpness_history(b, s), lr=lr_of(b))
            for b in BATCHES for s in SEEDS]


# steps to the target per (batch size, seed); None: not reached. Batch 512 misses on 2 of 3.
STEPS = {16: (400, 420, 440), 32: (210, 200, 260), 64: (120, None, 100), 512: (90, None, None)}


def targeted() -> list[dict]:
    return [make_result("steps", b, s, {"steps_to_target": steps},
                        [{"step": 0, "epoch": 0.0, "train_loss": 2.0}],
                        target={"train_loss": 0.5}, lr=0.01 * b / 16)
            for b, per_seed in STEPS.items() for s, steps in zip(SEEDS, per_seed)]


def titles(name: str, runs: list[dict], lands=()) -> list[str]:
    return [title for title, _ in draw_all(name, runs, lands)]


def figure_named(name: str, runs: list[dict], start: str, lands=()):
    found = [fig for title, fig in draw_all(name, runs, lands) if title.startswith(start)]
    assert len(found) == 1, titles(name, runs, lands)
    return found[0]


def points(line) -> np.ndarray:
    return np.asarray(line.get_xydata())


def approx(pairs: list) -> object:
    return pytest.approx(np.array(pairs, dtype=float))


# ---- which figures apply -----------------------------------------------------------------------
NEW = ("generalization against", "sharpness against", "steps to target against batch",
       "sharpness over training", "interpolation", "training loss contours")


def new_titles(name: str, runs: list[dict], lands=()) -> set[str]:
    return {t for t in titles(name, runs, lands) if t.startswith(NEW)}


def test_a_batch_sweep_gets_generalization_sharpness_and_sharpness_over_training():
    assert {t.split(" mlp")[0] for t in new_titles("sweep", sweep())} == {
        "generalization against batch size", "sharpness against batch size",
        "sharpness over training"}


def test_one_batch_size_or_full_batch_only_gets_none_of_them():
    one = [r for r in sweep() if r["cell"]["batch_size"] == 32]
    assert new_titles("one", one) == {"sharpness over training mlp"}
    for r in one:
        r["history"] = r["history"][-1:]   # sharpness at the end only: no curve either
    assert new_titles("one", one) == set()
    full = [make_result("full", b, 0, accuracies(32, 0)) for b in (None, 64)]
    assert new_titles("full", full) == set()   # full batch is no second batch size


def test_a_target_gets_steps_against_batch_size_and_not_generalization():
    assert new_titles("steps", targeted()) == {"steps to target against batch size mlp"}
    one = [r for r in targeted() if r["cell"]["batch_size"] == 16]
    assert new_titles("steps", one) == set()


def test_sharpness_panels_only_when_recorded():
    runs = sweep()
    for r in runs:
        del r["summary"]["final_sharpness"], r["summary"]["final_eps_sharpness"]
        r["history"] = [{k: v for k, v in h.items() if k != "sharpness"} for h in r["history"]]
    assert new_titles("sweep", runs) == {"generalization against batch size mlp"}
    for r in runs:
        r["summary"]["final_eps_sharpness"] = 1.0
    fig = figure_named("sweep", runs, "sharpness against")
    assert [ax.get_title() for ax in fig.axes] == ["final ε-sharpness"]


# ---- the numbers drawn -----------------------------------------------------------------------
def medians(value) -> list[tuple[float, float]]:
    return [(b, statistics.median(value(accuracies(b, s)) for s in SEEDS)) for b in BATCHES]


def test_generalization_panels_draw_medians_of_accuracy_and_both_gaps():
    fig = figure_named("sweep", sweep(), "generalization against")
    test_acc, acc_gap, loss_gap = (ax.get_lines()[0] for ax in fig.axes)
    assert points(test_acc) == approx(medians(lambda s: s["final_test_accuracy"]))
    assert points(acc_gap) == approx(
        medians(lambda s: s["final_train_accuracy"] - s["final_test_accuracy"]))
    assert points(loss_gap) == approx(
        medians(lambda s: s["final_test_loss"] - s["final_train_loss"]))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and list(ax.get_xticks()) == list(BATCHES)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["32", "128", "512"]


def test_sharpness_against_batch_size_is_log_scale_medians():
    fig = figure_named("sweep", sweep(), "sharpness against")
    sharp = fig.axes[0]
    assert sharp.get_yscale() == "log"
    assert points(sharp.get_lines()[0]) == approx(medians(lambda s: s["final_sharpness"]))


def test_a_line_per_configuration_other_than_batch_size():
    other = sweep()
    for r in other:
        r["cell"]["optimizer"] = {"name": "adam", "params": {"lr": 0.1}}
        r["id"] = "adam-" + r["id"]
    fig = figure_named("sweep", sweep() + other, "generalization against")
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 and {line.get_label() for line in lines} == {"sgd(lr=0.1)",
                                                                        "adam(lr=0.1)"}


def test_steps_to_target_medians_perfect_scaling_and_left_out_batch_sizes():
    fig = figure_named("steps", targeted(), "steps to target against")
    ax = fig.axes[0]
    median_line, ideal = ax.get_lines()
    # batch 64: 100, 120 and a miss (counted as the budget) → 120; 512: most missed → left out
    assert points(median_line) == approx([(16, 420), (32, 210), (64, 120)])
    assert "left out" in median_line.get_label() and "batch 512" in median_line.get_label()
    assert points(ideal) == approx([(b, 420 * 16 / b) for b in (16, 32, 64, 512)])
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "linear" not in ax.get_xlabel()   # no lr_scaling in these cells
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].max() == pytest.approx(np.percentile([100, 120, 1000], 75))


def test_sharpness_over_training_medians_and_stability_lines():
    lr_of = {32: 0.1, 128: 0.4, 512: 0.4}.get
    fig = figure_named("sweep", sweep(lr_of=lr_of), "sharpness over training")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    curves = [line for line in ax.get_lines() if not line.get_label().startswith("2/lr")]
    assert [line.get_label() for line in curves] == [f"batch {b}" for b in BATCHES]
    assert points(curves[0]) == approx(
        [(e, statistics.median((e + 1) * 5 + s for s in SEEDS)) for e in range(4)])
    limits = {line.get_label(): line for line in ax.get_lines() if line not in curves}
    shared, alone = sorted(limits, key=lambda label: limits[label].get_ydata()[0])
    assert limits[alone].get_ydata()[0] == pytest.approx(2 / 0.1) and "(batch 32)" in alone
    assert limits[alone].get_color() == curves[0].get_color()   # batch 32's own colour
    # batch 128 and 512 share their 2/lr: one black line names both
    assert limits[shared].get_ydata()[0] == pytest.approx(2 / 0.4)
    assert "batch 128, batch 512" in shared and limits[shared].get_color() == "k"


# ---- landscapes ------------------------------------------------------------------------------
ALPHAS = [-1.0, 0.0, 1.0, 2.0]


def interpolation(a: dict, b: dict | None = None) -> dict:
    cells = [a["cell"]] + ([b["cell"]] if b else [])
    return {"name": "interpolation", "experiment": a["cell"]["experiment"],
            "params": {"between": {"batch_size": [32, 512]}} if b else {},
            "cells": cells, "ids": [c["experiment"] + f"-{c['batch_size']}-{c['seed']}"
                                    for c in cells],
            "alphas": ALPHAS, "metrics": {
                "train_loss": [3.0, 0.1, 0.2 + a["cell"]["seed"], 5.0],
                "test_loss": [3.5, 0.5, 0.6, 6.0], "train_accuracy": [0.1, 0.99, 0.95, 0.1],
                "test_accuracy": [0.1, 0.9, 0.85, None]}}


def contour(run: dict, scale: float) -> dict:
    grid = [-1.0, 0.0, 1.0]
    loss = [[scale * (1 + a * a + b * b) for a in grid] for b in grid]
    return {"name": "contour", "experiment": run["cell"]["experiment"], "params": {},
            "cells": [run["cell"]], "ids": [run["id"]], "a": grid, "b": grid,
            "train_loss": loss, "center_loss": scale}


def landscapes(runs: list[dict]) -> list[dict]:
    by = {(r["cell"]["batch_size"], r["cell"]["seed"]): r for r in runs}
    return ([interpolation(by[32, s], by[512, s]) for s in SEEDS]
            + [contour(by[32, 0], 0.1), contour(by[512, 0], 2.0)])


def test_keskar_interpolation_a_panel_per_seed_with_the_two_batch_sizes_marked():
    runs = sweep()
    fig = figure_named("sweep", runs, "interpolation batch 32 to batch 512", landscapes(runs))
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["seed 0", "seed 1", "seed 2"]
    train_loss, test_loss = panels[1].get_lines()[:2]
    assert points(train_loss) == approx(list(zip(ALPHAS, [3.0, 0.1, 1.2, 5.0])))
    assert panels[1].get_yscale() == "log"
    ticks = {t.get_position()[0]: t.get_text() for t in panels[0].get_xticklabels()}
    assert ticks[0] == "0\nbatch 32" and ticks[1] == "1\nbatch 512"
    accuracy = [ax for ax in fig.axes if not ax.get_title()][0]   # the twin, right axis
    assert np.isnan(accuracy.get_lines()[1].get_ydata()[-1])      # a stored NaN is a gap
    assert not any(t.startswith("interpolation from") for t in titles("sweep", runs,
                                                                       landscapes(runs)))


def test_init_interpolation_figure_only_from_single_cell_landscapes():
    runs = sweep()
    lands = [interpolation(runs[0]), interpolation(runs[-1])]
    fig = figure_named("sweep", runs, "interpolation from initial", lands)
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["batch 32, seed 0",
                                                                     "batch 512, seed 2"]
    ticks = {t.get_position()[0]: t.get_text() for t in fig.axes[0].get_xticklabels()}
    assert ticks[0] == "0\ninitial" and ticks[1] == "1\nfinal"
    assert not any(t.startswith("interpolation batch") for t in titles("sweep", runs, lands))


def test_contours_side_by_side_on_one_log_colour_scale():
    runs = sweep()
    fig = figure_named("sweep", runs, "training loss contours", landscapes(runs))
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 2 and panels[0].get_title().startswith("batch 32, seed 0")
    filled = [ax.collections[0] for ax in panels]
    assert all(f.norm.vmin == pytest.approx(0.1) and f.norm.vmax == pytest.approx(6.0)
               for f in filled)
    levels = filled[0].levels
    assert list(levels) == list(filled[1].levels)
    assert np.allclose(np.diff(np.log(levels)), np.log(levels[1] / levels[0]))  # log-spaced
    centre, = panels[1].get_lines()
    assert points(centre).tolist() == [[0.0, 0.0]]


def test_the_report_draws_stored_landscapes_of_its_experiments_cells_only(tmp_path):
    store = Store(tmp_path)
    store.cells.mkdir(parents=True)
    runs = sweep()
    for r in runs + targeted():
        store.write(r)
    for i, land in enumerate(landscapes(runs)[-2:]):   # the contours
        write_atomic(tmp_path / "landscapes" / "sweep" / f"contour-{i}.json", land)
    # a landscape of cells the report does not show (an older plan's) is left out
    stale = interpolation(make_result("sweep", 32, 9, {}), make_result("sweep", 512, 9, {}))
    write_atomic(tmp_path / "landscapes" / "sweep" / "interpolation-stale.json", stale)
    report = build_report(tmp_path).read_text()
    figures = {p.name for p in (tmp_path / "figures").glob("*.png")}
    assert "sweep-training-loss-contours.png" in figures
    assert "figures/sweep-training-loss-contours.png" in report
    assert not any("interpolation" in f for f in figures)
    assert not any(f.startswith("steps-") and "contour" in f for f in figures)
    assert "steps-steps-to-target-against-batch-size-mlp.png" in figures
    assert "sweep-generalization-against-batch-size-mlp.png" in figures


def test_the_table_and_the_figure_agree_on_the_median_steps_to_target():
    """A seed that missed the target counts above every seed that reached it: (120, None,
    100) has median 120, not the 110 of the two that reached it; 512 (one of three) has none."""
    from bench.report.tables import summary_rows
    rows = {row["batch_size"]: row for row in summary_rows(targeted())}
    assert rows[64]["steps to target (median)"] == 120
    assert rows[32]["steps to target (median)"] == 210
    assert rows[512]["steps to target (median)"] is None and rows[512]["target hit"] == "1/3"
