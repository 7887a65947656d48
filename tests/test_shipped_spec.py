"""The shipped benchmarks.yaml: every profile validates, and the smoke profile runs end to end
with exactly the cell ids and recorded numbers of tests/data/smoke-golden.json (made with the
code before the refactor of issue 7; regenerate it with tests/smoke_digest.py only when a
change of behaviour is intended, and say so in the commit)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from smoke_digest import digest

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "benchmarks.yaml"
GOLDEN = Path(__file__).parent / "data" / "smoke-golden.json"


@pytest.mark.parametrize("profile", [None, "smoke", "full"])
def test_every_profile_validates(cli, capsys, profile):
    args = ["validate", SPEC] + (["--profile", profile] if profile else [])
    assert cli(*args) == 0, capsys.readouterr().err
    assert "valid;" in capsys.readouterr().out


def test_smoke_profile_runs_and_matches_the_golden_fingerprint(cli, tmp_path, capsys):
    out = tmp_path / "smoke"
    assert cli("run", SPEC, "--profile", "smoke", "--out", out, "--workers", "2",
               "--no-report") == 0, capsys.readouterr().err
    golden = json.loads(GOLDEN.read_text())
    now = digest(out)
    cells, expected = now["cells"], golden["cells"]
    assert sorted(cells) == sorted(expected)                   # the same cell ids
    statuses = [v["status"] for v in cells.values()]
    assert statuses.count("ok") == len(statuses) - 1 and statuses.count("diverged") == 1
    # every number recorded agrees where the machine's float kernels are the golden's;
    # elsewhere the last bits of long runs may differ, and the structure must still agree
    same_machine = now["machine"] == golden["machine"]
    changed = {cid: [k for k in (want if same_machine else ("status", "steps"))
                     if want.get(k) != cells[cid].get(k)] for cid, want in expected.items()}
    assert {cid: ks for cid, ks in changed.items() if ks} == {}
