"""A real `bench run` killed with SIGKILL mid-run, then rerun: every cell ends up done exactly
once, none is lost, and no result file is unreadable."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

from bench.plan import make_cells
from bench.spec import load_spec

SPEC = """
name: killme
seeds: [0, 1, 2, 3]
experiments:
  e:
    problem: {name: quadratic, dim: 2, kappa: [10, 100]}
    optimizer: [{name: sgd, lr: 0.1}, {name: momentum, lr: 0.01}]
    budget: {steps: 4000, eval_every: 100}
"""


def _bench(spec, out, **kw):
    cmd = [sys.executable, "-m", "bench", "run", str(spec), "--out", str(out), "--workers", "2",
           "--no-report"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, **kw)


def _bench_until(spec, out, cells: int):
    """Start a real run and return once `cells` results exist (or it ended, or 2 minutes)."""
    proc = _bench(spec, out)
    deadline = time.monotonic() + 120
    while _done(out / "cells") < cells and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    return proc


def _done(cells_dir):
    return len(list(cells_dir.glob("*.json"))) if cells_dir.exists() else 0


def test_sigkill_then_rerun_loses_nothing_and_repeats_nothing(write_spec, tmp_path):
    spec = write_spec(SPEC)
    out = tmp_path / "out"
    ids = {c.id for c in make_cells(load_spec(spec))}
    proc = _bench_until(spec, out, cells=3)
    assert proc.poll() is None, "the run finished before it could be killed: make cells longer"
    os.killpg(proc.pid, signal.SIGKILL)            # the runner and its workers, no warning
    proc.wait()
    survived = {p.stem for p in (out / "cells").glob("*.json")}
    assert 3 <= len(survived) < len(ids)
    before = {cid: (out / "cells" / f"{cid}.json").read_bytes() for cid in survived}

    rerun = _bench(spec, out)
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read().decode()

    files = {p.stem: p for p in (out / "cells").glob("*.json")}
    assert set(files) == ids                                    # none lost
    for cid, path in files.items():
        result = json.loads(path.read_text())                   # none unreadable
        assert result["id"] == cid and result["status"] == "ok"
    for cid in survived:                                        # finished cells not redone
        assert files[cid].read_bytes() == before[cid]
    log = Counter(json.loads(line)["id"] for line in (out / "log.jsonl").read_text().splitlines()
                  if line.strip().endswith("}"))
    assert set(log) == ids and set(log.values()) == {1}         # each recorded exactly once
    assert not list((out / "cells").glob(".*.tmp"))


def test_ctrl_c_keeps_finished_cells_and_exits_130(write_spec, tmp_path):
    spec = write_spec(SPEC)
    out = tmp_path / "out"
    proc = _bench_until(spec, out, cells=2)
    os.killpg(proc.pid, signal.SIGINT)             # what Ctrl-C in a terminal sends
    assert proc.wait(timeout=60) == 130
    assert "interrupted" in proc.stderr.read().decode()
    kept = list((out / "cells").glob("*.json"))
    assert len(kept) >= 2 and all(json.loads(p.read_text())["status"] == "ok" for p in kept)


def test_a_killed_worker_stops_the_run_cleanly_and_a_rerun_finishes(write_spec, tmp_path):
    """SIGKILL one worker (as the out-of-memory killer would): the run says so and exits 1,
    nothing finished is lost, and the same command then completes every cell."""
    spec = write_spec(SPEC)
    out = tmp_path / "out"
    proc = _bench_until(spec, out, cells=2)
    workers = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "spawn_main"],
                             capture_output=True, text=True).stdout.split()
    assert workers, "no worker processes found"
    os.kill(int(workers[0]), signal.SIGKILL)
    assert proc.wait(timeout=120) == 1
    err = proc.stderr.read().decode()
    assert "worker process died" in err and "Traceback" not in err
    rerun = _bench(spec, out)
    assert rerun.wait(timeout=300) == 0
    assert len(list((out / "cells").glob("*.json"))) == 16
