"""What resuming a finished sweep costs, against validating its spec.

Writes a spec of 1,000 tiny cells, stores a finished Result for each (300 history entries,
as a 3,000-step run evaluated every 10 steps leaves), then times, in fresh processes,
`bench validate` (planning only) and `bench run --no-report` (planning, the statuses of the
stored cells, nothing left to run).

    python benchmarks/resume_cost.py [--repeats 3] [--python PYTHON] [--root DIR]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = """
name: resume
seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
experiments:
  sweep:
    problem: {name: quadratic, dim: 2, kappa: 10}
    optimizer: {name: sgd, lr: [%s]}
    budget: {steps: 3000, eval_every: 10}
"""


def finished_result(cell: dict, cell_id: str) -> dict:
    history = [{"step": s, "epoch": float(s), "samples": s, "seconds": s * 1e-4, "lr": 0.1,
                "function_evals": s, "gradient_evals": s, "hvp_evals": 0, "hessian_evals": 0,
                "grad_equivalents": float(s), "train_loss": 0.5 ** (s / 100),
                "grad_norm": 0.5 ** (s / 100), "suboptimality": 0.5 ** (s / 100),
                "dist_to_opt": 0.5 ** (s / 100)} for s in range(0, 3000, 10)]
    return {"schema": 1, "id": cell_id, "status": "ok", "cell": cell, "history": history,
            "summary": {"steps": 3000, "seconds": 0.3}, "env": {}, "error": None}


def seconds(command: list[str], cwd: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--repeats", type=int, default=3)
    args.add_argument("--python", default=sys.executable, help="the Python whose bench runs")
    args.add_argument("--root", help="run `python -m bench` from here (another checkout)")
    opts = args.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lrs = ", ".join(f"{0.01 + 0.001 * i:.3f}" for i in range(100))
        (work / "spec.yaml").write_text(SPEC % lrs)
        cwd = Path(opts.root) if opts.root else work
        bench = [opts.python, "-m", "bench"]
        listed = subprocess.run(bench + ["run", str(work / "spec.yaml"), "--out",
                                         str(work / "out"), "--dry-run"],
                                cwd=cwd, check=True, capture_output=True, text=True).stdout
        ids = [line.split()[0] for line in listed.splitlines()[2:-1]]
        cells = (work / "out" / "cells")
        cells.mkdir(parents=True, exist_ok=True)
        with open(work / "out" / "log.jsonl", "w") as log:
            for cid in ids:
                (cells / f"{cid}.json").write_text(json.dumps(finished_result({}, cid)))
                log.write(json.dumps({"id": cid, "status": "ok"}) + "\n")
        size = sum(p.stat().st_size for p in cells.glob("*.json")) / 1e6
        validate = seconds(bench + ["validate", str(work / "spec.yaml")], cwd, opts.repeats)
        resume = seconds(bench + ["run", str(work / "spec.yaml"), "--out", str(work / "out"),
                                  "--no-report"], cwd, opts.repeats)
        print(f"{len(ids)} finished cells, {size:.0f} MB of results")
        print(f"bench validate: {validate:.2f} s   bench run (resume, nothing to do): "
              f"{resume:.2f} s   resume − validate: {resume - validate:.2f} s")


if __name__ == "__main__":
    main()
