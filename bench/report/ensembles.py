"""Ensembles from stored predictions: seed ensembles and snapshot ensembles (no torch).

The `predictions` measure stores each cell's test-set class probabilities in
`cells/<id>.predictions.npz`. A seed ensemble averages the probabilities of the cells of one
configuration that differ only in their seed; a snapshot ensemble averages one run's
snapshots (the ends of its schedule's cycles). Accuracy is that of the averaged
probabilities' argmax against the stored labels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from bench.report.frame import group_by_config, median
from bench.report.plots import legend_label


def load(root: Path, result: dict) -> dict | None:
    """A cell's stored predictions ({"final", "labels", "snapshot_<step>"...}), or None."""
    path = Path(root) / "cells" / f"{result['id']}.predictions.npz"
    if result["status"] != "ok" or not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def accuracy(probabilities: list[np.ndarray], labels: np.ndarray) -> float:
    """The accuracy of the mean of the probabilities (one model: its own accuracy)."""
    mean = np.mean([p.astype(np.float64) for p in probabilities], axis=0)
    return float((mean.argmax(1) == labels).mean())


def seed_rows(root: Path, runs: list[dict]) -> list[dict]:
    """Per configuration with predictions from at least two seeds: the single models'
    accuracies and the seed ensemble's. Seeds whose test sets differ (a `test_subset` is
    drawn per seed) cannot be averaged: such configurations are skipped."""
    groups = group_by_config(runs)
    keys = list(groups)
    rows = []
    for key, group in groups.items():
        stored = [(r, p) for r in group if (p := load(root, r)) is not None]
        if len(stored) < 2 or any(not np.array_equal(p["labels"], stored[0][1]["labels"])
                                  for _, p in stored):
            continue
        labels = stored[0][1]["labels"]
        singles = [accuracy([p["final"]], labels) for _, p in stored]
        together = accuracy([p["final"] for _, p in stored], labels)
        rows.append({"configuration": legend_label(key, keys), "seeds": len(stored),
                     "single (median)": median(singles), "single (best)": max(singles),
                     "seed ensemble": together, "gain": together - median(singles)})
    return rows


def snapshot_rows(root: Path, runs: list[dict]) -> list[dict]:
    """Per run with at least two snapshots: its final model's accuracy and its snapshot
    ensemble's."""
    rows = []
    keys = list(group_by_config(runs))
    for key, group in group_by_config(runs).items():
        for r in group:
            stored = load(root, r)
            snaps = [v for k, v in sorted((stored or {}).items(),
                                          key=lambda kv: _step(kv[0]))
                     if k.startswith("snapshot_")]
            if len(snaps) < 2:
                continue
            labels = stored["labels"]
            final = accuracy([stored["final"]], labels)
            together = accuracy(snaps, labels)
            rows.append({"configuration": legend_label(key, keys), "seed": r["cell"]["seed"],
                         "snapshots": len(snaps), "final model": final,
                         "snapshot ensemble": together, "gain": together - final})
    return rows


def _step(name: str) -> int:
    return int(name.split("_")[1]) if name.startswith("snapshot_") else -1


def figure(seed: list[dict], snapshot: list[dict], title: str) -> Figure:
    """Test accuracy: single models against their ensembles, a row per configuration."""
    rows = [(r["configuration"], r["single (median)"], r["seed ensemble"],
             f"{r['seeds']} seeds") for r in seed]
    rows += [(f"{r['configuration']}, seed {r['seed']}", r["final model"],
              r["snapshot ensemble"], f"{r['snapshots']} snapshots") for r in snapshot]
    fig = Figure(figsize=(8, 1.6 + 0.5 * len(rows)), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    ax.barh(y + 0.2, [r[1] for r in rows], height=0.4, label="single model (median)",
            color="0.7")
    ax.barh(y - 0.2, [r[2] for r in rows], height=0.4, label="ensemble", color="tab:blue")
    for i, row in enumerate(rows):
        ax.annotate(f"{row[2]:.4f} ({row[3]}, {row[2] - row[1]:+.4f})", (row[2], i - 0.2),
                    xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(y, [r[0] for r in rows])
    ax.invert_yaxis()
    low = min(min(r[1], r[2]) for r in rows)
    ax.set_xlim(max(0.0, low - 0.05), min(1.0, max(r[2] for r in rows) + 0.06))
    ax.set_xlabel("test accuracy")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return fig
