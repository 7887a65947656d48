"""A fingerprint of a results folder: per cell id, its status and a hash of everything it
recorded except wall-clock time. Two runs of the same code on this CPU give the same
fingerprint; a refactor that changes no behaviour must too.

    python tests/smoke_digest.py RESULTS_DIR > tests/data/smoke-golden.json
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

TIMED = {"seconds", "seconds_to_target", "samples_per_second"}   # wall clock: never equal


def _rounded(value):
    """Floats to 12 significant digits (a last-bit difference is not a behaviour change)."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items() if k not in TIMED}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _hash(value) -> str:
    text = json.dumps(_rounded(value), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _recorded(name: str, value):
    """What a measure recorded, apart from what it adds for drawing (a trajectory's
    landscape, stored since the report stopped rebuilding problems)."""
    if name == "trajectory" and isinstance(value, dict):
        return value["points"]
    return value


def machine() -> dict:
    """What decides the last bits of float results: torch's version and the CPU's vector
    kernels. Fingerprints from another machine agree in ids, statuses and steps only."""
    import hashlib as _h
    import platform

    import torch
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("flags"))
    except (OSError, StopIteration):
        flags = platform.processor()
    return {"torch": torch.__version__, "capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_flags": _h.sha256(flags.encode()).hexdigest()[:16]}


def digest(root: Path) -> dict:
    return {"machine": machine(), "cells": cells(root)}


def cells(root: Path) -> dict:
    out = {}
    for path in sorted(Path(root, "cells").glob("*.json")):
        result = json.loads(path.read_text())
        summary = dict(result["summary"])
        measures = summary.pop("measures", {})
        out[result["id"]] = {"status": result["status"],
                             "steps": [h["step"] for h in result["history"]],
                             "history": _hash(result["history"]),
                             "summary": _hash(summary),
                             **{f"measure {k}": _hash(_recorded(k, v)) for k, v in measures.items()}}
    return out


if __name__ == "__main__":
    json.dump(digest(Path(sys.argv[1])), sys.stdout, indent=1, sort_keys=True)
    print()
