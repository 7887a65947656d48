"""Write every table and figure of a results folder, and report.md linking them.

Runs no model and imports no torch: everything comes from the Result files through the
Store (the contour plots evaluate the landscape formula the trajectory measure stored) and
from the landscapes `bench landscape` stored as data.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from bench.landscape import load_all as load_landscapes
from bench.report import ensembles, tables, theory_view
from bench.report.figures import draw_all
from bench.report.frame import name_of
from bench.results import Store, write_atomic


def build_report(root: Path) -> Path:
    root = Path(root)
    store = Store(root)
    results = _planned(store.read_plan(), store.load_all())
    by_exp: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        by_exp[r["cell"]["experiment"]].append(r)
    for owned in ("figures", "tables"):   # the report owns these: no stale files survive
        for stale in (root / owned).glob("*"):
            if stale.is_file():
                stale.unlink()
    about = store.abouts()
    landscapes = load_landscapes(root)
    lines = [f"# Report: {root.name}", "", tables.header(results), ""]
    for name, runs in by_exp.items():
        lines += _experiment_section(root, name, runs, about.get(name, ""),
                                     _of_runs(landscapes.get(name, []), runs))
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


def _planned(ids: list[str] | None, results: list[dict]) -> list[dict]:
    """Only the cells of the latest plan (older cells stay on disk but out of the report)."""
    if ids is None:
        return results
    order = {cid: i for i, cid in enumerate(ids)}
    return sorted((r for r in results if r["id"] in order), key=lambda r: order[r["id"]])


def _of_runs(landscapes: list[dict], runs: list[dict]) -> list[dict]:
    """The landscapes taken on cells the report shows (like results, those of older plans
    stay on disk but out of the report)."""
    ids = {r["id"] for r in runs}
    return [d for d in landscapes if set(d.get("ids") or ()) <= ids]


def _experiment_section(root: Path, name: str, runs: list[dict], about: str,
                        landscapes: list[dict]) -> list[str]:
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
    for title, fig in draw_all(name, runs, landscapes):
        lines += _figure(root, name, title, fig)
    return lines + _ensembles_section(root, name, runs)


def _figure(root: Path, name: str, title: str, fig) -> list[str]:
    fname = f"{name}-{_slug(title)}.png"
    _save(fig, root / "figures" / fname)
    return [f"### {title}", "", f"![{title}](figures/{fname})", ""]


def _ensembles_section(root: Path, name: str, runs: list[dict]) -> list[str]:
    """Seed and snapshot ensembles of the stored predictions, a table each and one figure."""
    seed, snapshot = ensembles.seed_rows(root, runs), ensembles.snapshot_rows(root, runs)
    if not seed and not snapshot:
        return []
    lines = ["### Ensembles", "", "Test accuracy of the averaged class probabilities "
             "against the single models'.", ""]
    for rows, what in ((seed, "seed-ensembles"), (snapshot, "snapshot-ensembles")):
        if rows:
            md = tables.markdown(rows)
            write_atomic(root / "tables" / f"{name}-{what}.md", md + "\n")
            lines += [md, ""]
    title = "single models against their ensembles"
    return lines + _figure(root, name, title, ensembles.figure(seed, snapshot, f"{name}: {title}"))


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
