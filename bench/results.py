"""Result files: a versioned, self-describing JSON per cell, written atomically.

Only the parent process writes (workers return Results), through a temporary file, fsync and
rename, so a crash or a kill leaves either the old file, the new file, or no file: never a
torn one. Non-finite floats are stored as null (JSON has no NaN).
"""
from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from bench.cell import BOOKKEEPING, Cell, maximized

if TYPE_CHECKING:
    from bench.train import Outcome

SCHEMA = 1
FINISHED = ("ok", "diverged", "timeout")   # statuses a resumed run does not redo


def make_result(cell: Cell, outcome: Outcome, env: dict, defaults: dict | None = None) -> dict:
    """A Result. `defaults` (per axis, the parameter defaults of the cell's choices) lets the
    report name choices by what differs from their defaults without importing a registry."""
    result = {"schema": SCHEMA, "id": cell.id, "status": outcome.status,
              "cell": cell.to_dict(), "history": outcome.history, "summary": summarize(outcome),
              "env": env, "error": outcome.error, "defaults": defaults or {}}
    if outcome.artifacts:   # tensors: Store.write puts them beside the result file
        result["artifacts"] = outcome.artifacts
    return result


def summarize(outcome: Outcome) -> dict:
    out: dict = {"steps": outcome.steps, "seconds": outcome.seconds,
                 "diverged_at": outcome.diverged_at, "steps_to_target": outcome.target_step,
                 "seconds_to_target": outcome.target_seconds}
    measured = set(outcome.measure_keys)   # a measure's value has a final, not a best
    metrics = [k for k in dict.fromkeys(k for h in outcome.history for k in h)
               if k not in BOOKKEEPING]
    for m in metrics:
        values = [h[m] for h in outcome.history if _finite(h.get(m))]
        if values:
            out[f"final_{m}"] = outcome.history[-1].get(m)
            if m not in measured:
                out[f"best_{m}"] = max(values) if maximized(m) else min(values)
    last = outcome.history[-1] if outcome.history else {}
    if last.get("seconds"):
        out["samples_per_second"] = last.get("samples", 0) / last["seconds"]
    if outcome.stopped_at is not None:   # early stopping: when, and whose weights remain
        out |= {"stopped_at": outcome.stopped_at, "restored_step": outcome.restored_step}
    if outcome.measures:
        out["measures"] = outcome.measures
    return out


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def environment(device: str) -> dict:
    import numpy
    import scipy
    import torch

    from bench import __version__
    return {"device": device, "device_name": _device_name(device), "bench": __version__,
            "torch": torch.__version__, "numpy": numpy.__version__,
            "scipy": scipy.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "host": platform.node(),
            "threads": torch.get_num_threads(), "commit": git_commit(),
            "flush_denormal": True}


def _device_name(device: str) -> str:
    import torch
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, text=True,
                              capture_output=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_atomic(path: Path, data: dict | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = data if isinstance(data, str) else json.dumps(_clean(data), allow_nan=False)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class ArtifactError(Exception):
    """A stored artifact that cannot be read, or that holds more than tensors."""


def artifact_suffix(data: dict) -> str:
    """numpy arrays only: `.npz` (the report reads it without torch); else torch's `.pt`."""
    import numpy
    return ".npz" if all(isinstance(v, numpy.ndarray) for v in data.values()) else ".pt"


def save_artifact(path: Path, data: dict) -> None:
    """np.savez_compressed or torch.save through a temporary file, fsync and rename, like
    every result file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        if path.suffix == ".npz":
            import numpy
            numpy.savez_compressed(fh, **data)
        else:
            import torch
            torch.save(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_artifact(path: Path) -> dict:
    """A stored artifact, read with `weights_only=True`: tensors and plain containers only.
    A file that would build any other object when unpickled (a callable, a class) is
    refused, so loading a checkpoint from elsewhere cannot run code."""
    import pickle

    import torch
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"{path}: refused: it holds objects other than tensors "
                            f"({first})") from None
    except Exception as exc:   # anything else a non-checkpoint file makes torch raise
        raise ArtifactError(f"{path}: cannot be read: {type(exc).__name__}: {exc}") from None


class Store:
    """The one owner of a results folder: results/<name>/ holds spec.yaml (the experiments as
    run), plan.txt (the cells the report shows), cells/<id>.json (one Result each, written
    atomically), log.jsonl (one line per result written), and the report's tables/, figures/
    and report.md."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.cells = self.root / "cells"

    def path(self, cell_id: str) -> Path:
        return self.cells / f"{cell_id}.json"

    # -- the spec and the plan ---------------------------------------------------------------
    def write_spec(self, resolved: dict) -> None:
        write_atomic(self.root / "spec.yaml", yaml.safe_dump(resolved, sort_keys=False))

    def read_spec(self) -> dict:
        """The resolved spec as run ({} when missing or unreadable)."""
        try:
            data = yaml.safe_load((self.root / "spec.yaml").read_text())
        except (OSError, yaml.YAMLError):
            return {}
        return data if isinstance(data, dict) else {}

    def abouts(self) -> dict[str, str]:
        experiments = self.read_spec().get("experiments")
        if not isinstance(experiments, dict):
            return {}
        return {k: (v.get("about", "") if isinstance(v, dict) else "") for k, v in experiments.items()}

    def write_plan(self, ids: list[str], merge: bool) -> None:
        """The ids the report shows; `merge` adds them to the plan instead of replacing it
        (a filtered run keeps the rest of the report)."""
        old = (self.read_plan() or []) if merge else []
        ids = old + [cid for cid in ids if cid not in set(old)]
        write_atomic(self.root / "plan.txt", "".join(f"{cid}\n" for cid in ids))

    def read_plan(self) -> list[str] | None:
        try:
            return (self.root / "plan.txt").read_text().split()
        except OSError:
            return None

    # -- results -----------------------------------------------------------------------------
    def statuses(self) -> dict[str, str]:
        """The status of every stored cell, cheaply: from log.jsonl for files it lists, else
        from the first bytes of the file (no result is parsed whole, no history is read)."""
        present = {p.stem for p in self.cells.glob("*.json")} if self.cells.is_dir() else set()
        logged = self._logged()
        out = {}
        for cid in present:
            status = logged.get(cid) or self._head_status(cid)
            if status:
                out[cid] = status
        return out

    def _logged(self) -> dict[str, str]:
        out: dict[str, str] = {}
        try:
            lines = (self.root / "log.jsonl").read_text(encoding="utf-8").splitlines()
        except OSError:
            return out
        for line in lines:
            try:
                entry = json.loads(line)
                out[entry["id"]] = entry["status"]   # the latest write of a cell wins
            except (ValueError, KeyError, TypeError):
                continue   # a line torn by a crash is not a record
        return out

    def _head_status(self, cell_id: str) -> str | None:
        try:
            with open(self.path(cell_id), encoding="utf-8", errors="replace") as fh:
                head = fh.read(512)
        except OSError:
            return None
        found = re.search(r'"status":\s*"(\w+)"', head)
        return found.group(1) if found else None

    def artifact_path(self, cell_id: str, name: str, suffix: str = ".pt") -> Path:
        return self.cells / f"{cell_id}.{name}{suffix}"

    def write(self, result: dict) -> None:
        """Write a Result (its artifacts first, so a result on disk has its checkpoint),
        then note it in log.jsonl (an append-only record of what ran)."""
        for name, data in (result.pop("artifacts", None) or {}).items():
            save_artifact(self.artifact_path(result["id"], name, artifact_suffix(data)), data)
        write_atomic(self.path(result["id"]), result)
        entry = {"id": result["id"], "status": result["status"], "time": time.time(),
                 "pid": os.getpid()}
        with open(self.root / "log.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")

    def load_all(self) -> list[dict]:
        out = []
        for path in sorted(self.cells.glob("*.json")):
            try:
                result = json.loads(path.read_text())
            except ValueError:
                continue   # a damaged file is not a result
            if isinstance(result, dict) and {"cell", "status", "history", "summary"} <= result.keys():
                out.append(result)   # anything else in cells/ is not ours
        return out

    def remove_temporaries(self) -> None:
        for tmp in self.cells.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
