"""Comparison tables (tabulate): per-cell CSV, and a per-experiment Markdown summary whose
header states the claim's conditions: device, versions, seeds and budget."""
from __future__ import annotations

import csv
import io
import math

from tabulate import tabulate

from bench.cell import TABLE_COLUMNS
from bench.report.frame import KEY_AXES, flatten, group_by_config, median


def cells_csv(results: list[dict]) -> str:
    rows = [flatten(r) for r in results]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def header(results: list[dict]) -> str:
    envs = {(r["env"].get("device"), r["env"].get("device_name"), r["env"].get("torch"),
             r["env"].get("python"), r["env"].get("commit")) for r in results if r.get("env")}
    seeds = sorted({r["cell"]["seed"] for r in results})
    budgets = {str(r["cell"]["budget"]) for r in results}
    lines = [f"- runs: {len(results)} cells, seeds {seeds}"]
    for device, name, torch_v, py, commit in sorted(envs, key=str):
        lines.append(f"- device: {device} ({name}); torch {torch_v}; python {py}; commit {commit}")
    lines += [f"- budget: {b}" for b in sorted(budgets)]
    return "\n".join(lines)


def summary_rows(results: list[dict]) -> list[dict]:
    """One row per configuration (medians over seeds); axis columns only where they vary."""
    groups = group_by_config(results)
    shown = [a for a in KEY_AXES if a in ("problem", "optimizer")
             or len({dict(k)[a] for k in groups}) > 1]
    rows = []
    for key, runs in groups.items():
        row = {a: _axis_value(dict(key)[a]) for a in shown}
        row.update(_outcomes(runs))
        rows.append(row)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return [{c: row.get(c) for c in columns} for row in rows]


def _axis_value(value):
    return "full" if value is None else value


def _outcomes(runs: list[dict]) -> dict:
    row: dict = {}
    statuses = [r["status"] for r in runs]
    row["ok/n"] = f"{statuses.count('ok')}/{len(runs)}"
    if "diverged" in statuses:
        row["diverged"] = statuses.count("diverged")
    reached = [r["summary"]["steps_to_target"] for r in runs
               if r["summary"].get("steps_to_target") is not None]
    if any("target" in r["cell"]["budget"] for r in runs):
        row["target hit"] = f"{len(reached)}/{len(runs)}"
        # a median over all runs, so it exists only when most runs reached the target
        missed = [math.inf] * (len(runs) - len(reached))   # above every step that reached it
        row["steps to target (median)"] = median(reached + missed) \
            if 2 * len(reached) > len(runs) else None
    for m in TABLE_COLUMNS:
        vals = [r["summary"].get(m) for r in runs if r["status"] == "ok"]
        if any(v is not None for v in vals):
            row[m.replace("final_", "final ")] = median(vals)
    gaps = [_gap(r["summary"]) for r in runs if r["status"] == "ok"]
    if any(g is not None for g in gaps):   # how much worse the model does on unseen data
        row["gap (train − test accuracy)"] = median(gaps)
    row["seconds (median)"] = median([r["summary"]["seconds"] for r in runs])
    if any(r["cell"]["batch_size"] is not None for r in runs):
        row["samples/s (median)"] = median([r["summary"].get("samples_per_second") for r in runs])
    return row


def _gap(summary: dict) -> float | None:
    train, test = summary.get("final_train_accuracy"), summary.get("final_test_accuracy")
    return train - test if isinstance(train, (int, float)) and isinstance(test, (int, float)) \
        else None


def markdown(rows: list[dict]) -> str:
    return tabulate(rows, headers="keys", tablefmt="github", floatfmt=".4g", missingval="—")
