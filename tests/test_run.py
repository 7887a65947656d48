"""bench run end to end: statuses, exit codes, resume, --rerun, --dry-run, report rebuild."""
from __future__ import annotations

import json
import time

import bench
from bench.results import Store

SPEC = """
name: t
seeds: [0]
defaults: {budget: {steps: 40, eval_every: 10}}
experiments:
  e:
    problem: {name: quadratic, kappa: 10}
    optimizer: [{name: sgd, lr: 0.5}, {name: adam, lr: 0.05}]
"""


def results(tmp_path, name="t"):
    return {r["cell"]["optimizer"]["name"]: r for r in Store(tmp_path / "results" / name).load_all()}


def test_run_writes_results_report_and_resumes(write_spec, cli, tmp_path, capsys):
    spec = write_spec(SPEC)
    assert cli("run", spec, "--workers", "1") == 0
    root = tmp_path / "results" / "t"
    res = results(tmp_path)
    assert set(res) == {"sgd", "adam"} and all(r["status"] == "ok" for r in res.values())
    sgd = res["sgd"]
    assert [h["step"] for h in sgd["history"]] == [0, 10, 20, 30, 40]
    assert sgd["summary"]["final_train_loss"] < sgd["history"][0]["train_loss"]
    assert sgd["env"]["torch"] and sgd["schema"] == 1
    assert sgd["env"]["bench"] == bench.__version__ and sgd["env"]["scipy"]
    calibration = sgd["env"]["calibration"]   # the yardstick bench compare divides by
    assert set(calibration) == {"before", "during", "after"} and calibration["during"]
    assert (root / "report.md").exists() and list((root / "figures").glob("*.png"))
    stamp = {p.name: p.stat().st_mtime_ns for p in (root / "cells").glob("*.json")}
    capsys.readouterr()
    assert cli("run", spec, "--workers", "1") == 0            # resume: nothing reruns
    assert "2 already done, running 0" in capsys.readouterr().err
    assert stamp == {p.name: p.stat().st_mtime_ns for p in (root / "cells").glob("*.json")}
    assert cli("run", spec, "--workers", "1", "--rerun", "--only", "optimizer=adam") == 0
    after = {p.name: p.stat().st_mtime_ns for p in (root / "cells").glob("*.json")}
    assert sum(after[k] != stamp[k] for k in stamp) == 1


def test_dry_run_runs_nothing(write_spec, cli, tmp_path, capsys):
    assert cli("run", write_spec(SPEC), "--dry-run") == 0
    assert "pending" in capsys.readouterr().out
    assert not (tmp_path / "results").exists()


def test_divergence_is_an_outcome_with_its_step(write_spec, cli, tmp_path):
    spec = write_spec(SPEC.replace("lr: 0.5", "lr: 3.0"))   # > 2/L: |1 − 3λ| > 1 explodes
    assert cli("run", spec, "--workers", "1") == 0
    sgd = results(tmp_path)["sgd"]
    assert sgd["status"] == "diverged"
    step = sgd["summary"]["diverged_at"]
    assert 1 <= step < 40
    assert all(h["step"] < step for h in sgd["history"])   # never back-filled


def test_failing_cell_is_recorded_and_run_exits_1(write_spec, cli, tmp_path):
    # SparseAdam refuses dense gradients at its first step: a real optimizer error.
    spec = write_spec(SPEC.replace("{name: adam, lr: 0.05}", "torch.optim.SparseAdam"))
    assert cli("run", spec, "--workers", "1") == 1
    bad = results(tmp_path)["torch.optim.SparseAdam"]
    assert bad["status"] == "error" and "Traceback" in bad["error"]
    assert "dense" in bad["error"]
    assert results(tmp_path)["sgd"]["status"] == "ok"        # the run went on


def test_time_limit_gives_timeout(write_spec, cli, tmp_path):
    spec = write_spec(SPEC.replace("{steps: 40, eval_every: 10}",
                                   "{steps: 100000000, eval_every: 1000, time_limit: 0.2}"))
    started = time.perf_counter()
    assert cli("run", spec, "--workers", "1", "--only", "optimizer=sgd", "--no-report") == 0
    wall = time.perf_counter() - started
    sgd = results(tmp_path)["sgd"]
    # the limit is wall-clock: training time (evaluation excluded) is a little under it
    assert sgd["status"] == "timeout" and 0.1 < sgd["summary"]["seconds"] < 0.25
    assert 0.2 < wall < 60                           # far from the 10⁸ steps asked for
    steps = [h["step"] for h in sgd["history"]]
    assert steps == sorted(set(steps))              # the timeout step is recorded once


def test_report_rebuilds_without_running_any_cell(write_spec, cli, tmp_path, monkeypatch):
    assert cli("run", write_spec(SPEC), "--workers", "1", "--no-report") == 0
    root = tmp_path / "results" / "t"
    assert not (root / "report.md").exists()

    def forbidden(*a, **k):
        raise AssertionError("bench report must not train")
    monkeypatch.setattr("bench.train.run_cell", forbidden)
    monkeypatch.setattr("bench.execute.run_cell", forbidden)
    assert cli("report", root) == 0
    text = (root / "report.md").read_text()
    for link in [ln.split("](")[1].rstrip(")") for ln in text.splitlines() if "](" in ln]:
        assert (root / link).exists(), link
    assert "torch" in text and "seeds [0]" in text


def test_pool_of_two_workers_matches_inline_run(write_spec, cli, tmp_path):
    spec = write_spec(SPEC)
    assert cli("run", spec, "--workers", "2", "--out", tmp_path / "pool", "--no-report") == 0
    assert cli("run", spec, "--workers", "1", "--out", tmp_path / "inline", "--no-report") == 0
    pool = {r["id"]: r["history"] for r in Store(tmp_path / "pool").load_all()}
    inline = {r["id"]: r["history"] for r in Store(tmp_path / "inline").load_all()}
    strip = lambda hs: [{k: v for k, v in h.items() if k != "seconds"} for h in hs]  # noqa: E731
    assert {k: strip(v) for k, v in pool.items()} == {k: strip(v) for k, v in inline.items()}


def _strict_json(text: str):
    """json.loads that refuses the NaN / Infinity / -Infinity constants Python would accept."""
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")
    return json.loads(text, parse_constant=refuse)


# The first SGD step overflows: x1 = x0 − 1e308·∇f(x0) = (−inf, +inf), recorded by the
# trajectory measure before the next step's infinite loss marks the cell diverged at step 1.
OVERFLOW = """
name: t
seeds: [0]
defaults: {budget: {steps: 40, eval_every: 10}}
experiments:
  e:
    problem: {name: quadratic, eigenvalues: [1.0, 2.0], rotate: false, x0: [10.0, -10.0],
              dtype: float64}
    optimizer: [{name: sgd, lr: 1.0e+308}, {name: adam, lr: 0.05}]
    measures: [trajectory]
"""


def test_result_files_are_valid_json_without_nan(write_spec, cli, tmp_path):
    assert cli("run", write_spec(OVERFLOW), "--workers", "1", "--no-report") == 0
    files = sorted((tmp_path / "results" / "t" / "cells").glob("*.json"))
    assert len(files) == 2                                  # one per cell, nothing else
    parsed = {}
    for path in files:
        text = path.read_text()
        assert "NaN" not in text and "Infinity" not in text, path.name
        result = _strict_json(text)
        assert path.stem == result["id"]
        parsed[result["cell"]["optimizer"]["name"]] = result
    sgd, adam = parsed["sgd"], parsed["adam"]
    assert sgd["status"] == "diverged" and sgd["summary"]["diverged_at"] == 1
    assert [h["step"] for h in sgd["history"]] == [0]
    assert sgd["history"][0]["train_loss"] == 150.0            # ½(1·10² + 2·10²)
    points = sgd["summary"]["measures"]["trajectory"]["points"]
    assert points == [[10.0, -10.0], [None, None]]            # (−inf, +inf) stored as null
    assert adam["status"] == "ok" and [h["step"] for h in adam["history"]] == [0, 10, 20, 30, 40]
    assert all(isinstance(p, float) for pt in adam["summary"]["measures"]["trajectory"]["points"]
               for p in pt)


def test_store_writes_non_finite_floats_as_null(tmp_path):
    """Any NaN or ±inf anywhere in a Result (nested in history, summary, measures) is null."""
    store = Store(tmp_path / "r")
    nan, inf = float("nan"), float("inf")
    result = {"id": "abc", "status": "diverged", "cell": {"budget": {"time_limit": inf}},
              "history": [{"step": 0, "train_loss": 1.5}, {"step": 1, "train_loss": nan}],
              "summary": {"best": -inf, "measures": {"points": [[1.0, inf], (nan, 2.0)]}}}
    store.write(result)
    text = (tmp_path / "r" / "cells" / "abc.json").read_text()
    assert _strict_json(text) == {
        "id": "abc", "status": "diverged", "cell": {"budget": {"time_limit": None}},
        "history": [{"step": 0, "train_loss": 1.5}, {"step": 1, "train_loss": None}],
        "summary": {"best": None, "measures": {"points": [[1.0, None], [None, 2.0]]}}}
    assert store.statuses() == {"abc": "diverged"}
