"""Theory against measurement for quadratic cells: linear rates and finite-step bounds."""
from __future__ import annotations

from bench import theory
from bench.report.frame import group_by_config, median, varying_params


def theory_rows(runs: list[dict]) -> list[dict]:
    """One row per configuration that theory speaks about, with the prediction and the median
    measurement over seeds."""
    rows = []
    show = varying_params(runs)
    for key, group in group_by_config(runs, show).items():
        cell = group[0]["cell"]
        rate = theory.predicted_rate(cell["optimizer"], cell["problem"])
        bound = theory.predicted_steps_bound(cell["optimizer"], cell["problem"])
        if rate is None and bound is None:
            continue
        names = dict(key)
        row = {"problem": names["problem"], "optimizer": names["optimizer"]}
        if rate is not None:
            row["predicted rate"] = rate
            row["measured rate"] = median([theory.measured_rate(r["history"]) for r in group])
        if bound is not None:
            row["steps bound"] = bound
            row["steps to target (median)"] = median(
                [r["summary"].get("steps_to_target") for r in group])
        rows.append(row)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return [{c: row.get(c) for c in columns} for row in rows]


def rate_points(rows: list[dict]) -> list[tuple[str, float, float]]:
    return [(row["optimizer"], row["predicted rate"], row["measured rate"]) for row in rows
            if row.get("predicted rate") is not None and row.get("measured rate") is not None]
