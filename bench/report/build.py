"""Write every table and figure of a results folder, and report.md linking them.

Runs no model: everything comes from the Result files (the contour plots rebuild the closed-form
analytic function, which is cheap arithmetic, not training).
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import torch

from bench.plan import metric_name
from bench.report import plots, tables, theory_view
from bench.report.frame import name_of, varying_params
from bench.results import Store, write_atomic
from bench.theory import gd_steps_to_distance
from problems import PROBLEMS
from problems.base import Context


def build_report(root: Path) -> Path:
    root = Path(root)
    results = _planned(root, Store(root).load_all())
    by_exp: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        by_exp[r["cell"]["experiment"]].append(r)
    for owned in ("figures", "tables"):   # the report owns these: no stale files survive
        for stale in (root / owned).glob("*"):
            if stale.is_file():
                stale.unlink()
    about = _experiment_abouts(root)
    lines = [f"# Report: {root.name}", "", tables.header(results), ""]
    for name, runs in by_exp.items():
        lines += _experiment_section(root, name, runs, about.get(name, ""))
    lines += _errors_section(results)
    (root / "tables").mkdir(exist_ok=True)
    write_atomic(root / "tables" / "cells.csv", tables.cells_csv(results))
    lines += ["", "All cells, one row each: [tables/cells.csv](tables/cells.csv)", ""]
    path = root / "report.md"
    write_atomic(path, "\n".join(lines))
    return path


def _errors_section(results: list[dict]) -> list[str]:
    """Cells that raised, with the last line of their traceback (the full one is in the file)."""
    failed = [r for r in results if r["status"] == "error"]
    if not failed:
        return []
    rows = [{"cell": f"cells/{r['id']}.json", "experiment": r["cell"]["experiment"],
             "problem": name_of(r, "problem"), "optimizer": name_of(r, "optimizer"),
             "error": (r.get("error") or "").strip().splitlines()[-1:] or [""]}
            for r in failed]
    for row in rows:
        row["error"] = row["error"][0][:160]
    return ["## Cells that failed", "", tables.markdown(rows), ""]


def _planned(root: Path, results: list[dict]) -> list[dict]:
    """Only the cells of the latest plan (older cells stay on disk but out of the report)."""
    plan = root / "plan.txt"
    if not plan.exists():
        return results
    ids = plan.read_text().split()
    order = {cid: i for i, cid in enumerate(ids)}
    return sorted((r for r in results if r["id"] in order), key=lambda r: order[r["id"]])


def _experiment_abouts(root: Path) -> dict[str, str]:
    import yaml
    try:
        data = yaml.safe_load((root / "spec.yaml").read_text())
        return {k: (v or {}).get("about", "") for k, v in data["experiments"].items()}
    except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        return {}


def _experiment_section(root: Path, name: str, runs: list[dict], about: str) -> list[str]:
    lines = [f"## {name}", "", about, "", tables.header(runs), ""]
    rows = tables.summary_rows(runs)
    md = tables.markdown(rows)
    write_atomic(root / "tables" / f"{name}.md", md + "\n")
    write_atomic(root / "tables" / f"{name}.csv", tables.cells_csv(runs))
    lines += [md, "", f"Per-cell table: [tables/{name}.csv](tables/{name}.csv)", ""]
    predicted = theory_view.theory_rows(runs)
    if predicted:
        md = tables.markdown(predicted)
        write_atomic(root / "tables" / f"{name}-theory.md", md + "\n")
        lines += ["### Theory against measurement", "",
                  "Rates are per-step contractions of ‖x − x*‖; measured ones are the "
                  "least-squares slope of log ‖x − x*‖ over the second half of each run above "
                  "1e-11 (— with fewer than 4 evaluations there). Bounds are steps within "
                  "which theory says the method reaches the minimiser.", "", md, ""]
    for title, fig in _figures(name, runs):
        fname = f"{name}-{_slug(title)}.png"
        _save(fig, root / "figures" / fname)
        lines += [f"### {title}", "", f"![{title}](figures/{fname})", ""]
    return lines


def _figures(name: str, runs: list[dict]):
    show = varying_params(runs)
    by_problem: dict[str, list[dict]] = defaultdict(list)
    for r in runs:
        by_problem[name_of(r, "problem", show)].append(r)
    for problem, rs in by_problem.items():
        if any(r["history"] for r in rs):
            yield f"loss {problem}", plots.loss_curves(rs, f"{name}: {problem}",
                                                       plots.x_axes_for(rs))
            if any("test_accuracy" in (r["history"] or [{}])[0] for r in rs):
                yield f"accuracy {problem}", plots.loss_curves(
                    rs, f"{name}: {problem}", plots.x_axes_for(rs), "test_accuracy")
    for problem, rs in by_problem.items():
        for when in ("init", "end"):
            rows = _activation_rows(rs, when)
            if rows:
                moment = "at initialisation" if when == "init" else "after training"
                yield (f"activations {when} {problem}",
                       plots.activation_grid(rows, f"{name}: {problem}, activations {moment}"))
    panels = _trajectory_panels(by_problem)
    if panels:
        yield "trajectories", plots.trajectories(panels)
    kappa = _kappa_series(runs)
    if kappa:
        yield "steps to target vs kappa", plots.steps_vs_kappa(*kappa)
    points = theory_view.rate_points(theory_view.theory_rows(runs))
    if points:
        yield "rates measured vs predicted", plots.rates(points)


def _activation_rows(runs: list[dict], when: str) -> list:
    """(label, per-layer statistics) for the first seed of each configuration."""
    with_stats = [r for r in runs if (r["summary"].get("measures") or {}).get("activation_stats")]
    if not with_stats:
        return []
    first = min(r["cell"]["seed"] for r in with_stats)
    shown = [r for r in with_stats if r["cell"]["seed"] == first]
    show = varying_params(shown)
    keys = [plots.config_key(r, show) for r in shown]
    return [(plots.legend_label(key, keys), r["summary"]["measures"]["activation_stats"][when] or [])
            for key, r in zip(keys, shown)]


def _trajectory_panels(by_problem: dict) -> list:
    panels = []
    for title, rs in by_problem.items():
        with_path = [r for r in rs if "trajectory" in (r["summary"].get("measures") or {})]
        if not with_path:
            continue
        first_seed = min(r["cell"]["seed"] for r in with_path)
        shown = [r for r in with_path if r["cell"]["seed"] == first_seed]
        panels.append((f"{title}, seed {first_seed}", rebuild_problem(shown[0]["cell"]), shown))
    return panels


def rebuild_problem(cell: dict):
    """The closed-form problem of a cell, for drawing its contours (no training)."""
    ctx = Context(cell["seed"], torch.device("cpu"), torch.Generator().manual_seed(cell["seed"]))
    return PROBLEMS.get(cell["problem"]["name"]).factory(ctx, **cell["problem"]["params"])


def _kappa_series(runs: list[dict]):
    """Steps to target against κ for quadratic sweeps, with GD's theory line for distance."""
    quad = [r for r in runs if r["cell"]["problem"]["name"] == "quadratic"
            and r["cell"]["problem"]["params"].get("eigenvalues") is None
            and r["cell"]["budget"].get("target")]
    if len({r["cell"]["problem"]["params"]["kappa"] for r in quad}) < 2:
        return None
    target = dict(quad[0]["cell"]["budget"]["target"])
    series: dict[str, dict[float, list]] = defaultdict(lambda: defaultdict(list))
    for r in quad:
        label = name_of(r, "optimizer")
        kappa = r["cell"]["problem"]["params"]["kappa"]
        series[label][kappa].append(r["summary"].get("steps_to_target"))
    points = {label: [(k, _median_or_none(v)) for k, v in per.items()]
              for label, per in series.items()}
    theory = None
    (metric, eps), = target.items() if len(target) == 1 else ((None, None),)
    if metric and metric_name(metric) == "dist_to_opt":
        kappas = sorted({k for per in series.values() for k in per})
        theory = [(k, gd_steps_to_distance(k, eps)) for k in kappas if k > 1]
    return points, theory, ", ".join(f"{k} ≤ {v:g}" for k, v in target.items())


def _median_or_none(values: list):
    done = sorted(v for v in values if v is not None)
    return done[len(done) // 2] if done and len(done) * 2 > len(values) else None


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)


def _slug(text: str, limit: int = 72) -> str:
    """A file name for a title; long ones keep a hash of the whole title so they stay unique."""
    keep = "".join(c if c.isalnum() else "-" for c in text.lower())
    slug = "-".join(filter(None, keep.split("-")))
    if len(slug) <= limit:
        return slug
    import hashlib
    return f"{slug[:limit]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
