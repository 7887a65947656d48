"""The README's "Regression-checking in CI" commands, run as written in a scratch folder
(with `--only problem=rosenbrock` appended to the two commands that run cells: 18 cells, so
the test takes seconds, not the `ci` profile's minute each; `.ci/run` runs the full `bench check`), and
the perf gate on a real pytest-benchmark report."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_gate_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Regression-checking in CI", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def shell(folder: Path):
    shim = folder / "bin"
    shim.mkdir(exist_ok=True)
    (shim / "bench").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m bench "$@"\n')
    (shim / "bench").chmod(0o755)
    env = dict(os.environ, PATH=f"{shim}:{os.environ['PATH']}", MPLBACKEND="Agg",
               PYTHONPATH=str(ROOT))

    def run(command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", command], cwd=folder, env=env, text=True,
                              capture_output=True, timeout=600)
    return run


def test_the_readme_gate_commands_work_as_written(tmp_path):
    commands = readme_gate_commands()
    assert [c.split()[:2] for c in commands] == [
        ["bench", "machine"], ["bench", "baseline"], ["bench", "check"], ["bench", "compare"],
        ["python3", "-m"]]
    shutil.copy(ROOT / "benchmarks.yaml", tmp_path / "benchmarks.yaml")
    run = shell(tmp_path)
    kind = run(commands[0])
    assert kind.returncode == 0 and re.fullmatch(r"[a-z0-9.-]+\n", kind.stdout)
    for command in commands[1:4]:
        if command.split()[1] in ("baseline", "check"):
            command += " --only problem=rosenbrock"
        out = run(command)
        assert out.returncode == 0, f"{command}\n{out.stdout}\n{out.stderr}"
    assert (tmp_path / "results" / "baselines" / kind.stdout.strip() / "cells").is_dir()
    checked = list((tmp_path / "results").glob("optimizers-101-check-*/compare/compare.md"))
    assert len(checked) == 1 and "Failing (0)" in checked[0].read_text()
    # the last line is tox's perf environment: it runs the benchmarks, then their gate
    tox = (ROOT / "tox.ini").read_text().split("[testenv:perf]", 1)[1].split("\n[", 1)[0]
    assert commands[4] == "python3 -m tox -e perf" and "python -m benchmarks.gate" in tox


def test_the_perf_gate_on_a_real_pytest_benchmark_report(tmp_path):
    report = tmp_path / "perf.json"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/test_hot_paths.py", "-q", "-p",
         "no:cacheprovider", "--benchmark-enable", "--benchmark-only", "-k",
         "test_optimizer_step and 10 and (sgd or adam)", f"--benchmark-json={report}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    baseline = tmp_path / "baseline.json"
    gate = [sys.executable, "-m", "benchmarks.gate", str(report), "--baseline", str(baseline)]
    assert subprocess.run(gate + ["--write-baseline"], cwd=ROOT).returncode == 0
    recorded = json.loads(baseline.read_text())["benchmarks"]
    assert len(recorded) >= 4 and all(v > 0 for v in recorded.values())
    same = subprocess.run(gate, cwd=ROOT, capture_output=True, text=True)
    assert same.returncode == 0 and "passed" in same.stdout
    # the same report with one benchmark 3x as slow: the gate names it and fails
    data = json.loads(report.read_text())
    slowed = data["benchmarks"][0]
    slowed["stats"]["median"] *= 3
    report.write_text(json.dumps(data))
    fails = subprocess.run(gate, cwd=ROOT, capture_output=True, text=True)
    assert fails.returncode == 1 and "FAILED: 1 benchmark" in fails.stderr
    assert re.search(re.escape(slowed["name"]) + r"\s+3(\.0+)?\s+slower", fails.stdout)
    # every benchmark 20% slower: no single one fails, their geometric mean does
    data["benchmarks"][0]["stats"]["median"] /= 3
    for b in data["benchmarks"]:
        b["stats"]["median"] *= 1.2
    report.write_text(json.dumps(data))
    broad = subprocess.run(gate, cwd=ROOT, capture_output=True, text=True)
    assert broad.returncode == 1 and "geometric mean" in broad.stderr
    assert "FAILED: 1 benchmark" not in broad.stderr
