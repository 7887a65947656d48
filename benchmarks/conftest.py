"""Every benchmark records the yardstick timed right before it (bench/calibrate.py), so the
perf gate (benchmarks/gate.py) compares times in yardstick units, as `bench compare` does."""
from __future__ import annotations

import pytest

from bench import calibrate
from bench.execute import process_settings


@pytest.fixture(autouse=True)
def yardstick(request):
    if "benchmark" in request.fixturenames:
        benchmark = request.getfixturevalue("benchmark")
        with process_settings(threads=1):
            benchmark.extra_info["yardstick"] = sum(calibrate.measure(repeats=7).values())
        benchmark.extra_info["machine_kind"] = calibrate.machine_kind()
    yield
