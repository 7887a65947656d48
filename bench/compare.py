"""bench compare BASELINE CANDIDATE: hold one results folder against another.

Cells are matched by id; the seeds of a configuration are its repeats. For each
configuration and metric the comparison gives the baseline, the candidate, their ratio (or
difference) and a verdict:

- speed metrics (`seconds_per_step`, `seconds_to_target`, `samples_per_second`) are compared
  in yardstick units (bench/calibrate.py), as the geometric mean of the per-seed ratios with
  a t-interval; the verdict is read off the interval against the tolerance: `slower` or
  `faster` when the whole interval lies beyond it, `same` when it lies within, `within noise`
  otherwise. Only `slower` fails.
- convergence metrics (`steps_to_target`, `final_<metric>`, `best_<metric>`, `status`):
  a tolerance of 0 means "bit-for-bit": any difference in any seed is `changed` and fails
  (the analytic cells are deterministic on a CPU, so a changed optimizer, schedule or default
  shows up at once). A tolerance above 0 compares the mean over seeds: `regressed` (fails),
  `improved` or `same`.

Torch-free, like `bench report`: a comparison runs wherever the results are.
"""
from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field

from bench.calibrate import yardstick
from bench.cell import cell_id, maximized

SPEED = {"seconds_per_step": False, "seconds_to_target": False,   # metric -> higher is better
         "samples_per_second": True}
CONVERGENCE_FORMS = ("steps_to_target", "status", "final_<metric>", "best_<metric>")
DEFAULT_TOLERANCES = {"seconds_per_step": "10%", "seconds_to_target": "10%",
                      "steps_to_target": 0, "final_train_loss": 0, "final_test_accuracy": 0}
STATUS_ORDER = {"ok": 3, "timeout": 2, "diverged": 1, "error": 0}
FAILING = ("slower", "regressed", "changed")
LEVEL = 0.95
# Speed is compared only where both runs trained this long: shorter times are dominated by
# the first steps and by this machine's millisecond-scale jitter (README: a 40% spread at 10 ms, 15% at 0.1 s)
MIN_SECONDS = 0.3


class ToleranceError(ValueError):
    pass


@dataclass(frozen=True)
class Tolerance:
    value: float
    relative: bool

    @property
    def exact(self) -> bool:
        return self.value == 0

    def __str__(self) -> str:
        return f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"


def parse_tolerance(metric: str, raw) -> Tolerance:
    """`10%` (relative) or a number (absolute; 0 is exact). Speed metrics take percentages."""
    if not is_metric(metric):
        raise ToleranceError(f"unknown metric '{metric}'; allowed: {', '.join(SPEED)}, "
                             f"{', '.join(CONVERGENCE_FORMS)}")
    text = str(raw).strip()
    if text == "off":
        return OFF
    match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(%?)", text)
    if isinstance(raw, bool) or not match:
        raise ToleranceError(f"{metric}: tolerance '{raw}' is not a number >= 0 or a "
                             "percentage such as 10%")
    value, percent = float(match.group(1)), bool(match.group(2))
    if metric in SPEED and not percent:
        raise ToleranceError(f"{metric}: a speed tolerance is a percentage (e.g. 10%), "
                             f"not '{raw}'")
    if metric == "status" and (percent or value != 0):
        raise ToleranceError("status: the only tolerance is 0 (statuses must match)")
    return Tolerance(value / 100 if percent else value, percent)


OFF = Tolerance(math.nan, False)   # `metric: off` in a spec drops a default metric


def is_metric(name: str) -> bool:
    return (name in SPEED or name in ("steps_to_target", "status")
            or bool(re.fullmatch(r"(final|best)_[a-z0-9_]+", name)))


def tolerances(*layers: dict) -> dict[str, Tolerance]:
    """Later layers win: defaults, then the spec's `compare:`, then the command line."""
    merged: dict = {}
    for layer in layers:
        merged |= layer or {}
    parsed = {m: parse_tolerance(m, t) for m, t in merged.items()}
    return {m: t for m, t in parsed.items() if t is not OFF}


# ---- values ---------------------------------------------------------------------------------
def value_of(result: dict, metric: str, unit: float | None = None) -> float | None:
    """The metric of one result; speed metrics in yardstick units when a `unit` is given."""
    summary = result.get("summary") or {}
    if metric == "status":
        return STATUS_ORDER.get(result.get("status"))
    if metric == "seconds_per_step":
        steps, seconds = summary.get("steps"), summary.get("seconds")
        raw = seconds / steps if _number(steps) and steps > 0 and _number(seconds) else None
    else:
        raw = summary.get(metric)
    if metric == "steps_to_target" and raw is None:
        aimed = ((result.get("cell") or {}).get("budget") or {}).get("target")
        return math.inf if aimed else None   # a target not reached: infinitely many steps
    if not _number(raw):
        return None
    if metric in SPEED and unit:
        return raw * unit if SPEED[metric] else raw / unit
    return float(raw)


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def higher_is_better(metric: str) -> bool:
    if metric in SPEED:
        return SPEED[metric]
    if metric == "status":
        return True
    if metric == "steps_to_target":
        return False
    return maximized(metric.split("_", 1)[1])


def group_key(cell: dict) -> str:
    """A configuration: the cell without its seed."""
    return cell_id({**cell, "seed": None})


# ---- one row of the comparison ----------------------------------------------------------------
@dataclass
class Row:
    group: str
    label: str
    metric: str
    n: int
    baseline: float | None
    candidate: float | None
    change: str            # the ratio with its interval, or the difference
    verdict: str
    tolerance: str
    note: str = ""
    fails: bool = field(init=False)

    def __post_init__(self):
        self.fails = self.verdict in FAILING


def speed_row(group: str, label: str, metric: str, pairs: list[tuple[float, float]],
              tol: Tolerance, spread: float | None, dof: int, note: str = "") -> Row:
    """Geometric mean of candidate/baseline over the paired seeds with a t-interval; the
    spread is the larger of the group's own and the pooled one (a quiet group borrows the
    others' estimate of the noise; a noisy group keeps its own)."""
    logs = [math.log(c / b) for b, c in pairs]
    centre = statistics.fmean(logs)
    own = statistics.stdev(logs) if len(logs) > 1 else 0.0
    sd = max(own, spread or 0.0)
    if dof > 0 and sd > 0:
        half = _t(dof) * sd / math.sqrt(len(logs))
    else:
        half = 0.0 if dof > 0 else math.inf   # no repeats anywhere: no interval to decide on
    lo, hi = math.exp(centre - half), math.exp(centre + half)
    verdict = speed_verdict(lo, hi, tol, higher_is_better(metric))
    base = statistics.fmean(b for b, _ in pairs)
    cand = statistics.fmean(c for _, c in pairs)
    change = f"{math.exp(centre):.3f} [{lo:.3f}, {hi:.3f}]" if math.isfinite(half) \
        else f"{math.exp(centre):.3f} [no repeats]"
    return Row(group, label, metric, len(pairs), base, cand, change, verdict, str(tol), note)


def speed_verdict(lo: float, hi: float, tol: Tolerance, higher_better: bool) -> str:
    """Decided on the interval of candidate/baseline, never on the point estimate."""
    bound = 1 + tol.value
    slower = lo > bound if not higher_better else hi < 1 / bound
    faster = hi < 1 / bound if not higher_better else lo > bound
    if slower:
        return "slower"
    if faster:
        return "faster"
    if 1 / bound <= lo and hi <= bound:
        return "same"
    return "within noise"


def _t(dof: int) -> float:
    from scipy.stats import t
    return float(t.ppf(0.5 + LEVEL / 2, dof))


def convergence_row(group: str, label: str, metric: str, pairs: list[tuple[float, float]],
                    tol: Tolerance) -> Row:
    base = _mean(b for b, _ in pairs)
    cand = _mean(c for _, c in pairs)
    up = higher_is_better(metric)
    if tol.exact:
        differs = sum(b != c for b, c in pairs)
        verdict = "changed" if differs else "same"
        change = (f"{differs} of {len(pairs)} seeds differ" if differs else "identical")
        return Row(group, label, metric, len(pairs), base, cand, change, verdict, str(tol))
    diff = cand - base if math.isfinite(cand - base) else _inf_diff(base, cand)
    scale = abs(base) if tol.relative and math.isfinite(base) else 1.0
    gain = diff if up else -diff           # > 0: better
    limit = tol.value * scale
    verdict = "improved" if gain > limit else "regressed" if gain < -limit else "same"
    return Row(group, label, metric, len(pairs), base, cand, f"{diff:+.4g}", verdict, str(tol))


def _mean(values) -> float:
    values = list(values)
    if any(math.isinf(v) for v in values):
        return math.inf if any(v == math.inf for v in values) else -math.inf
    return statistics.fmean(values)


def _inf_diff(base: float, cand: float) -> float:
    if base == cand:
        return 0.0
    return math.inf if cand > base else -math.inf


# ---- two folders ------------------------------------------------------------------------------
@dataclass
class Comparison:
    rows: list[Row]
    only_baseline: list[dict]      # results whose cell the candidate lacks
    only_candidate: list[dict]
    matched: int
    notes: list[str]

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if r.fails]


def compare(baseline: list[dict], candidate: list[dict], tols: dict[str, Tolerance],
            raw: bool = False) -> Comparison:
    """Match results by cell id and compare every metric of `tols` per configuration
    (`raw`: speed in seconds, without the yardstick; for studying the yardstick itself)."""
    base = {r["id"]: r for r in baseline}
    cand = {r["id"]: r for r in candidate}
    common = [i for i in base if i in cand]
    notes = _machine_notes(baseline, candidate)
    units = {"base": {r["id"]: _unit(r) for r in baseline},
             "cand": {r["id"]: _unit(r) for r in candidate}}
    normalised = not raw and all(units["base"][i] and units["cand"][i] for i in common)
    if common and not normalised and not raw:
        notes.append("some results carry no yardstick (written before calibration was "
                     "recorded): speed is compared in raw seconds, which move ±7% or more "
                     "between runs on a shared machine")
    groups: dict[str, list[str]] = {}
    for i in common:
        groups.setdefault(group_key(cand[i]["cell"]), []).append(i)
    labels = _labels([cand[i] for i in common])
    rows: list[Row] = []
    for metric, tol in tols.items():
        rows += _metric_rows(metric, tol, groups, labels, base, cand,
                             units if normalised else None)
    return Comparison(rows, [base[i] for i in base if i not in cand],
                      [cand[i] for i in cand if i not in base], len(common), notes)


def _unit(result: dict) -> float | None:
    return yardstick((result.get("env") or {}).get("calibration"))


def _metric_rows(metric, tol, groups, labels, base, cand, units) -> list[Row]:
    paired = {}
    for g, ids in groups.items():
        pairs = []
        for i in sorted(ids, key=lambda i: cand[i]["cell"].get("seed") or 0):
            b = value_of(base[i], metric, units and units["base"][i])
            c = value_of(cand[i], metric, units and units["cand"][i])
            if b is None or c is None:
                continue
            if metric in SPEED and not (b > 0 and c > 0 and _long_enough(base[i], cand[i])):
                continue
            pairs.append((b, c))
        if pairs:
            paired[g] = pairs
    if metric not in SPEED:
        return [convergence_row(g, labels[g], metric, p, tol) for g, p in paired.items()]
    spread, dof = pooled_spread([[math.log(c / b) for b, c in p] for p in paired.values()])
    note = "in yardsticks" if units else "raw seconds"
    rows = [speed_row(g, labels[g], metric, p, tol, spread, dof, note) for g, p in paired.items()]
    if len(paired) > 1:
        rows.append(_overall(metric, tol, rows, paired, note))
    return rows


def _long_enough(*results: dict) -> bool:
    return all((r["summary"].get("seconds") or 0) >= MIN_SECONDS for r in results)


def pooled_spread(samples: list[list[float]]) -> tuple[float | None, int]:
    """The within-group standard deviation pooled over groups, and its degrees of freedom."""
    dof = sum(len(s) - 1 for s in samples)
    if dof == 0:
        return None, 0
    ss = sum(sum((x - statistics.fmean(s)) ** 2 for x in s) for s in samples)
    return math.sqrt(ss / dof), dof


def _overall(metric: str, tol: Tolerance, rows: list[Row], paired: dict, note: str) -> Row:
    """All configurations at once: the geometric mean of their ratios, with the interval of
    the configurations' spread (a small slowdown everywhere shows here first)."""
    centres = [statistics.fmean(math.log(c / b) for b, c in p) for p in paired.values()]
    centre = statistics.fmean(centres)
    half = _t(len(centres) - 1) * statistics.stdev(centres) / math.sqrt(len(centres))
    lo, hi = math.exp(centre - half), math.exp(centre + half)
    verdict = speed_verdict(lo, hi, tol, higher_is_better(metric))
    n = sum(len(p) for p in paired.values())
    return Row("*", f"all {len(paired)} configurations", metric, n, None, None,
               f"{math.exp(centre):.3f} [{lo:.3f}, {hi:.3f}]", verdict, str(tol), note)


def _labels(results: list[dict]) -> dict[str, str]:
    from bench.report.frame import config_key, varying_params
    show = varying_params(results)
    out = {}
    for r in results:
        key = dict(config_key(r, show))
        parts = [str(key.pop("experiment"))]
        parts += [str(v) for a, v in key.items()
                  if v not in (None, "none", "constant", "default") and a != "batch_size"]
        if key.get("batch_size") is not None:
            parts.append(f"batch {key['batch_size']}")
        out[group_key(r["cell"])] = " · ".join(parts)
    return out


def _machine_notes(baseline: list[dict], candidate: list[dict]) -> list[str]:
    kinds = [{(r.get("env") or {}).get("machine_kind") for r in rs} - {None}
             for rs in (baseline, candidate)]
    if kinds[0] and kinds[1] and kinds[0] != kinds[1]:
        return [f"the baseline ran on {', '.join(sorted(kinds[0]))} and the candidate on "
                f"{', '.join(sorted(kinds[1]))}: the yardstick absorbs load, not a different "
                "machine, so speed verdicts across machine kinds mean little"]
    return []
