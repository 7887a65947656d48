"""Shared helpers: throwaway specs in tmp_path, run through the real CLI in-process."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from bench.cli import main

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def offline_data():
    """Tests read the real datasets from ../shared/data unless BENCH_DATA says otherwise."""
    if "BENCH_DATA" not in os.environ and SHARED_DATA.is_dir():
        os.environ["BENCH_DATA"] = str(SHARED_DATA)
    yield


@pytest.fixture
def write_spec(tmp_path):
    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path
    return write


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run `bench …` in-process from inside tmp_path (results/ lands there)."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> int:
        return main([str(a) for a in args])
    return run
