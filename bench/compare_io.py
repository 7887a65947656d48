"""Reading two results folders for `bench compare`, and writing what it found (a table on
stdout, compare.md and compare.csv). Bad input is a `CompareInputError` with a message that
names the folder or file: the command turns it into exit code 2, never a traceback."""
from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

from tabulate import tabulate

from bench.compare import Comparison, Row

COLUMNS = ("configuration", "metric", "n", "baseline", "candidate", "ratio or change",
           "tolerance", "verdict", "note")


class CompareInputError(ValueError):
    pass


def load_folder(root: Path, what: str) -> list[dict]:
    """The results of a folder's plan (all of them without a plan.txt)."""
    if not root.is_dir():
        raise CompareInputError(f"{what} {root}: no such folder")
    cells = root / "cells"
    files = sorted(cells.glob("*.json")) if cells.is_dir() else []
    if not files:
        raise CompareInputError(f"{what} {root} holds no results (no cells/*.json); make one "
                                f"with `bench run SPEC --out {root}`")
    results = [_read_result(path, what) for path in files]
    plan = root / "plan.txt"
    if plan.is_file():
        planned = set(plan.read_text().split())
        results = [r for r in results if r["id"] in planned] or results
    return results


def _read_result(path: Path, what: str) -> dict:
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CompareInputError(f"{what} result {path} is not readable JSON ({exc}); "
                                "remove it or rerun its cell") from None
    shape = (isinstance(result, dict) and isinstance(result.get("id"), str)
             and isinstance(result.get("cell"), dict) and isinstance(result.get("summary"), dict)
             and isinstance(result.get("status"), str) and "experiment" in result["cell"])
    if not shape:
        raise CompareInputError(f"{what} result {path} is not a bench result (it needs id, "
                                "status, cell and summary)")
    return result


def cell_rows(rows: list[Row]) -> list[list]:
    return [[r.label, r.metric, r.n, _fmt(r.baseline), _fmt(r.candidate), r.change,
             r.tolerance, r.verdict, r.note] for r in rows]


def _fmt(x) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


def counts(cmp: Comparison) -> str:
    tally = Counter(r.verdict for r in cmp.rows)
    return ", ".join(f"{n} {v}" for v, n in sorted(tally.items()))


def terminal_table(cmp: Comparison, everything: bool = False) -> str:
    """The rows that are not `same` (all of them with `everything`), and the overall rows."""
    shown = [r for r in cmp.rows if everything or r.verdict != "same" or r.group == "*"]
    lines = []
    if shown:
        lines.append(tabulate(cell_rows(shown), headers=COLUMNS, tablefmt="simple"))
    lines.append(f"{cmp.matched} cells matched; {len(cmp.rows)} comparisons: {counts(cmp)}"
                 + ("" if everything else " (rows that are `same` are in compare.md)"))
    lines += _only_lines(cmp)
    lines += [f"note: {n}" for n in cmp.notes]
    return "\n".join(lines)


def _only_lines(cmp: Comparison) -> list[str]:
    out = []
    for side, results in (("baseline", cmp.only_baseline), ("candidate", cmp.only_candidate)):
        if results:
            ids = ", ".join(f"{r['id']} ({r['cell']['experiment']})" for r in results[:20])
            more = f" and {len(results) - 20} more" if len(results) > 20 else ""
            out.append(f"only in the {side}: {len(results)} cells: {ids}{more}")
    return out


def markdown(cmp: Comparison, baseline: Path, candidate: Path, tols: dict) -> str:
    failing = cmp.failures
    parts = [f"# bench compare\n\nbaseline `{baseline}`, candidate `{candidate}`: "
             f"{cmp.matched} cells matched; {counts(cmp)}.\n",
             "Tolerances: " + ", ".join(f"`{m}` {t}" for m, t in tols.items()) + ".\n"]
    parts += [f"> {n}\n" for n in cmp.notes]
    parts.append(f"## Failing ({len(failing)})\n")
    parts.append(tabulate(cell_rows(failing), headers=COLUMNS, tablefmt="github")
                 if failing else "None.")
    parts.append("\n## Every comparison\n")
    parts.append(tabulate(cell_rows(cmp.rows), headers=COLUMNS, tablefmt="github"))
    only = _only_lines(cmp)
    if only:
        parts.append("\n## Cells in one folder only\n")
        parts += [f"- {line}" for line in only]
    return "\n".join(parts) + "\n"


def csv_text(cmp: Comparison) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(("group",) + COLUMNS + ("fails",))
    for r, cells in zip(cmp.rows, cell_rows(cmp.rows)):
        writer.writerow([r.group] + cells + [int(r.fails)])
    for side, results in (("baseline", cmp.only_baseline), ("candidate", cmp.only_candidate)):
        for res in results:
            writer.writerow([res["id"], res["cell"]["experiment"], "", "", "", "", "", "",
                             f"only in the {side}", "", 0])
    return buffer.getvalue()


def write(cmp: Comparison, out: Path, baseline: Path, candidate: Path, tols: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(markdown(cmp, baseline, candidate, tols), encoding="utf-8")
    (out / "compare.csv").write_text(csv_text(cmp), encoding="utf-8")
    return out / "compare.md"
