"""The `tox -e perf` gate: pytest-benchmark's JSON against a committed per-machine baseline.

    python -m benchmarks.gate PERF.json                   exit 1 when a benchmark regressed
    python -m benchmarks.gate PERF.json --write-baseline  record (or update, on purpose) one

Times are compared in yardstick units: each benchmark's median divided by the median of the
yardsticks timed before it and its neighbours (each is 30 ms of timing on a machine whose
speed wanders at that scale; the median of nine follows the drift without the jitter).

Two gates, from what was measured on this machine (README, "Regression-checking in CI"):
the geometric mean over all benchmarks may not grow by more than `--mean-threshold` (15%;
it moved by 4% at most between runs: a slowdown of the harness or of many optimizers shows
here), and no single benchmark may be more than `--threshold` slower (100%: single
microbenchmarks of a few milliseconds move by up to 1.6x between processes here; the scipy
optimizers, whose steps hand over to a driver thread, by up to 2x, so they count in the mean
only).
Baselines live in benchmarks/baselines/<machine kind>.json: a yardstick absorbs load, not
another processor, so a machine kind without a baseline is reported and not gated.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

from tabulate import tabulate

from bench.calibrate import machine_kind

BASELINES = Path(__file__).resolve().parent / "baselines"
WINDOW = 9         # benchmarks: a yardstick is the median of those timed around it
THRESHOLD = 1.0        # one benchmark: fails when more than twice as slow
MEAN_THRESHOLD = 0.15  # all benchmarks: fails when their geometric mean is 15% slower
# gated through the geometric mean only: the scipy-stepped optimizers hand every step over to
# a driver thread and call numpy's own BLAS threads; between processes their medians move by
# up to 2.02x here (three tox -e perf runs), whatever the code does
MEAN_ONLY = ("scipy_",)


def normalised(report: dict) -> dict[str, float]:
    """name -> median seconds / the local yardstick, in the order the benchmarks ran."""
    runs = [b for b in report.get("benchmarks", []) if b.get("extra_info", {}).get("yardstick")]
    sticks = [b["extra_info"]["yardstick"] for b in runs]
    out = {}
    for k, b in enumerate(runs):
        lo = min(max(0, k - WINDOW // 2), max(0, len(runs) - WINDOW))
        out[b["fullname"]] = b["stats"]["median"] / statistics.median(sticks[lo:lo + WINDOW])
    return out


def compare(current: dict[str, float], baseline: dict[str, float], threshold: float):
    rows, failing = [], []
    for name in sorted(set(current) & set(baseline)):
        ratio = current[name] / baseline[name]
        verdict = "slower" if ratio > 1 + threshold else \
            "faster" if ratio < 1 / (1 + threshold) else "same"
        if any(part in name for part in MEAN_ONLY):
            verdict += " (in the mean only)"
        rows.append((name.split("::", 1)[-1], f"{ratio:.3f}", verdict))
        if verdict == "slower":
            failing.append(name)
    return rows, failing


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gate", description=__doc__.split("\n")[0])
    p.add_argument("report", help="pytest-benchmark's --benchmark-json file")
    p.add_argument("--baseline", help="default: benchmarks/baselines/<machine kind>.json")
    p.add_argument("--threshold", type=float, default=THRESHOLD,
                   help=f"fail above 1 + this ratio (default {THRESHOLD})")
    p.add_argument("--mean-threshold", type=float, default=MEAN_THRESHOLD,
                   help=f"fail when the geometric mean grows above 1 + this (default "
                        f"{MEAN_THRESHOLD})")
    p.add_argument("--write-baseline", action="store_true", help="record this run as the baseline")
    args = p.parse_args(argv)
    try:
        current = normalised(json.loads(Path(args.report).read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"gate: {args.report} is not a pytest-benchmark JSON report ({exc})", file=sys.stderr)
        return 2
    if not current:
        print(f"gate: {args.report} holds no benchmark with a yardstick", file=sys.stderr)
        return 2
    path = Path(args.baseline) if args.baseline else BASELINES / f"{machine_kind()}.json"
    if args.write_baseline:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"machine_kind": machine_kind(), "units": "yardsticks",
                                    "benchmarks": current}, indent=1, sort_keys=True) + "\n")
        print(f"gate: baseline of {len(current)} benchmarks written to {path}")
        return 0
    if not path.is_file():
        print(f"gate: no baseline for this machine kind ({path}); nothing is gated. Record one "
              f"with: python -m benchmarks.gate {args.report} --write-baseline")
        return 0
    baseline = json.loads(path.read_text())["benchmarks"]
    rows, failing = compare(current, baseline, args.threshold)
    print(tabulate(rows, headers=("benchmark", "now / baseline", "verdict")))
    ratios = [float(r[1]) for r in rows]
    mean = math.exp(statistics.fmean(math.log(r) for r in ratios)) if ratios else 1.0
    print(f"geometric mean now / baseline: {mean:.3f} over {len(ratios)} benchmarks")
    for name in sorted(set(baseline) - set(current)):
        print(f"not run this time: {name}")
    code = 0
    if failing:
        print(f"gate: FAILED: {len(failing)} benchmark(s) more than {args.threshold:.0%} "
              f"slower than {path}", file=sys.stderr)
        code = 1
    if mean > 1 + args.mean_threshold:
        print(f"gate: FAILED: the geometric mean over {len(ratios)} benchmarks is {mean:.3f} "
              f"times the baseline's (limit {1 + args.mean_threshold:.2f})", file=sys.stderr)
        code = 1
    if code == 0:
        print(f"gate: passed against {path} (one benchmark: +{args.threshold:.0%}, "
              f"geometric mean: +{args.mean_threshold:.0%})")
    return code


if __name__ == "__main__":
    sys.exit(main())
