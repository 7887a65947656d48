"""bench run | validate | list | report: the command line. It says how to run, never what.

Planning and running import torch; `bench report` and `bench data` do not (they are imported
where a command needs them), so a report can be rebuilt on a machine without torch."""
from __future__ import annotations

import argparse
import sys
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from tabulate import tabulate

from bench import describe
from bench.cell import CHOICE_AXES
from bench.progress import Progress
from bench.results import FINISHED, Store
from bench.spec import load_spec
from bench.yamlio import SpecError

EXIT_OK, EXIT_CELL_ERRORS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message):   # usage errors exit 2 with one clear line, as argparse does
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"bench: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bench", description="Declarative benchmarks of neural-network optimizers.")
    from bench import __version__
    p.add_argument("--version", action="version", version=f"bench {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run the cells of a spec and write results and a report")
    _spec_args(run)
    run.add_argument("--out", help="results folder (default: results/<name>)")
    run.add_argument("--workers", type=int, help="worker processes (default: number of cores)")
    run.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    run.add_argument("--threads", type=int, default=1,
                     help="torch threads per worker (default 1: fair timing, no contention)")
    run.add_argument("--rerun", action="store_true", help="rerun cells that already finished")
    run.add_argument("--dry-run", action="store_true", help="list what would run, run nothing")
    run.add_argument("--no-report", action="store_true", help="skip the report at the end")
    val = sub.add_parser("validate", help="check a spec and bind every cell; run nothing")
    _spec_args(val)
    lst = sub.add_parser("list", help="print the cells of a spec as a table, or a registry: "
                                      f"bench list {{{','.join(KINDS)}}}")
    _spec_args(lst)
    rep = sub.add_parser("report", help="rebuild tables and figures from stored results")
    rep.add_argument("results", help="a results folder (results/<name>)")
    land = sub.add_parser("landscape", help="compute the landscapes a results folder's spec "
                                            "declares, from the stored checkpoints")
    land.add_argument("results", help="a results folder (results/<name>)")
    land.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    land.add_argument("--data-dir", help="look here first for datasets (default: the spec's)")
    land.add_argument("--rerun", action="store_true", help="recompute stored landscapes")
    cmp = sub.add_parser("compare", help="hold a candidate results folder against a baseline: "
                                         "speed and convergence, with verdicts")
    cmp.add_argument("baseline", help="the baseline results folder")
    cmp.add_argument("candidate", help="the candidate results folder")
    _compare_args(cmp)
    chk = sub.add_parser("check", help="run a spec into a fresh folder and compare it with a "
                                       "baseline (the CI gate)")
    _spec_args(chk)
    chk.add_argument("--baseline", help="the baseline results folder (default: "
                                        "results/baselines/<machine kind>)")
    chk.add_argument("--out", help="the fresh results folder (default: "
                                   "results/<name>-check-<time>)")
    chk.add_argument("--workers", type=int, help="worker processes (default: number of cores)")
    chk.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    chk.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    _compare_args(chk)
    base = sub.add_parser("baseline", help="run a spec into a baseline folder for `bench "
                                           "check`, replacing the old one only when done")
    _spec_args(base)
    base.add_argument("--out", help="default: results/baselines/<machine kind>")
    base.add_argument("--workers", type=int, help="worker processes (default: number of cores)")
    base.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    base.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    sub.add_parser("machine", help="print this machine's kind (the name of its baselines)")
    data = sub.add_parser("data", help="datasets: list them, show where they are, fetch them")
    data.add_argument("action", choices=("list", "path", "fetch"))
    data.add_argument("name", nargs="?", help="a dataset (all of them when left out)")
    data.add_argument("--data-dir", help="look here first (as a spec's data_dir)")
    return p


def _spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="the YAML spec, e.g. benchmarks.yaml")
    p.add_argument("--profile", help="a profile defined in the spec")
    p.add_argument("--only", action="append", default=[],
                   help="keep matching cells: NAME (an experiment) or key=value[,key=value], "
                        "keys experiment, id, problem, optimizer, optimizer.lr, seed, …")


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tolerance", action="append", default=[], metavar="METRIC=TOL",
                   help="e.g. seconds_per_step=10%%, steps_to_target=0, "
                        "final_test_accuracy=0.005 (over the spec's `compare:` and the defaults)")
    p.add_argument("--metrics", help="compare only these metrics (comma-separated)")
    p.add_argument("--compare-out", help="where compare.md and compare.csv go "
                                         "(default: CANDIDATE/compare)")
    p.add_argument("--all", action="store_true", help="print every row, not only the changes")
    p.add_argument("--raw", action="store_true",
                   help="compare speed in raw seconds, without the yardstick (to study it)")


KINDS = {f"{a}s": a for a in CHOICE_AXES} | {"measures": "measure"}   # bench list KIND


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "list" and args.spec in KINDS and not Path(args.spec).is_file():
        return cmd_list_kind(args.spec)
    if args.command == "report":
        return cmd_report(args)
    if args.command == "landscape":
        return cmd_landscape(args)
    if args.command == "data":
        return cmd_data(args)
    if args.command == "compare":
        return cmd_compare(args)
    if args.command == "machine":
        from bench.calibrate import machine_kind
        print(machine_kind())
        return EXIT_OK
    from bench import plan
    try:
        spec = load_spec(args.spec, args.profile)
        everything = plan.make_cells(spec)
        cells = plan.filter_cells(everything, args.only)
    except SpecError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print(f"bench: {len(exc.issues)} problem(s) in {args.spec}; nothing was run",
              file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:   # a bad --only filter
        print(f"bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.only and not cells:
        print(f"bench: no cell matches --only {' --only '.join(args.only)} "
              f"(of {len(everything)} cells)", file=sys.stderr)
        return EXIT_USAGE
    return {"validate": cmd_validate, "list": cmd_list, "run": cmd_run,
            "check": cmd_check, "baseline": cmd_baseline}[args.command](args, spec, cells)


def cmd_validate(args, spec, cells) -> int:
    exps = len({c.experiment for c in cells})
    print(f"{args.spec}: valid; {len(cells)} cells in {exps} experiment(s)")
    return EXIT_OK


def cmd_list(args, spec, cells, store: Store | None = None) -> int:
    rows = [{"id": c.id, **describe.cell_row(c)} for c in cells]
    if store is not None:
        statuses = store.statuses()
        for row in rows:
            row["status"] = statuses.get(row["id"], "pending")
    print(tabulate(rows, headers="keys", tablefmt="simple") if rows else "(no cells)")
    print(f"{len(cells)} cells")
    return EXIT_OK


def cmd_list_kind(kind: str) -> int:
    """Every registered name of a kind, its parameters with defaults, one line each."""
    from bench.cell import AXIS
    axis = KINDS[kind]
    if axis == "measure":
        from bench.measures import MEASURES as registry
    else:
        registry = AXIS[axis].entries()
    for entry in registry.entries():
        print(f"{entry.name}: {entry.about}")
        for p in entry.parameters():
            default = "required" if p.required else f"= {p.default!r}"
            print(f"    {p.name} {default}: {p.doc or '(undocumented)'}")
    if axis == "optimizer":
        print("<module>.<Class>: any torch.optim.Optimizer subclass by import path "
              "(its constructor's parameters)")
    return EXIT_OK


def cmd_run(args, spec, cells) -> int:
    store = Store(Path(args.out) if args.out else Path("results") / spec.name)
    if args.dry_run:
        return cmd_list(args, spec, cells, store)
    from bench.execute import make_executor
    try:
        data_dir = spec.experiments[0].data_dir if spec.experiments else None
        executor = make_executor(args.workers, args.device, data_dir, args.threads)
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _write_plan(store, spec, cells, merge=bool(args.only))
    done = store.statuses()
    todo = [c for c in cells if args.rerun or done.get(c.id) not in FINISHED]
    print(f"bench: {len(cells)} cells, {len(cells) - len(todo)} already done, "
          f"running {len(todo)} -> {store.root}", file=sys.stderr)
    progress = Progress(len(todo))
    try:
        for _cell, result in executor.map(todo):
            store.write(result)
            progress.update(result["status"])
    except KeyboardInterrupt:
        print(f"\nbench: interrupted; {progress.done} finished cells are saved; "
              "run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenProcessPool:
        print(f"\nbench: a worker process died (killed, or out of memory) while running "
              f"cells; {progress.done} finished cells are saved; run the same command again "
              "to resume (with fewer --workers if memory is short)", file=sys.stderr)
        return EXIT_CELL_ERRORS
    if not _landscapes(store, cells, executor_device(args.device), data_dir, args.rerun):
        return EXIT_CELL_ERRORS
    return _finish(args, store, cells)


def executor_device(requested: str) -> str:
    from bench.execute import available_devices
    return available_devices(requested)[0]


def _landscapes(store: Store, cells, device: str, data_dir: str | None, rerun: bool) -> bool:
    """The declared landscapes of finished cells (after the cells: they need checkpoints)."""
    from bench.landscape import run_all
    from bench.results import ArtifactError
    try:
        done, skipped = run_all(store, cells, device, data_dir, rerun,
                                log=lambda line: print(line, file=sys.stderr))
    except ArtifactError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return False
    if done or skipped:
        print(f"bench: {done} landscape(s) computed, {skipped} already stored", file=sys.stderr)
    return True


def cmd_landscape(args) -> int:
    from bench.cell import Cell
    store = Store(Path(args.results))
    if not store.cells.is_dir():
        print(f"bench: {store.root} holds no results (no cells/ folder)", file=sys.stderr)
        return EXIT_USAGE
    planned = set(store.read_plan() or [])
    cells = [Cell.from_dict(r["cell"]) for r in store.load_all()
             if not planned or r["id"] in planned]
    data_dir = args.data_dir or store.read_spec().get("data_dir")
    try:
        device = executor_device(args.device)
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK if _landscapes(store, cells, device, data_dir, args.rerun) \
        else EXIT_CELL_ERRORS


def _write_plan(store: Store, spec, cells, merge: bool) -> None:
    """spec.yaml and plan.txt (the cells the report shows). A filtered run (--only) adds its
    cells to the plan instead of replacing it, so the report keeps the rest."""
    if store.cells.exists():
        store.remove_temporaries()
    data_dir = spec.experiments[0].data_dir if spec.experiments else None
    store.write_spec({"name": spec.name, "profile": spec.profile, "source": spec.file,
                      "data_dir": data_dir, "compare": spec.compare,
                      "experiments": {e.name: e.data for e in spec.experiments}})
    store.write_plan([c.id for c in cells], merge)


def _finish(args, store: Store, cells) -> int:
    stored = store.statuses()
    statuses = [stored.get(c.id, "missing") for c in cells]
    counts = {s: statuses.count(s) for s in dict.fromkeys(statuses)}
    print("bench: " + ", ".join(f"{n} {s}" for s, n in counts.items()), file=sys.stderr)
    if not args.no_report:
        from bench.report.build import build_report
        print(f"bench: report at {build_report(store.root)}", file=sys.stderr)
    return EXIT_CELL_ERRORS if counts.get("error") or counts.get("missing") else EXIT_OK


def cmd_report(args) -> int:
    root = Path(args.results)
    if not (root / "cells").is_dir():
        print(f"bench: {root} holds no results (no cells/ folder)", file=sys.stderr)
        return EXIT_USAGE
    from bench.report.build import build_report
    print(build_report(root))
    return EXIT_OK


def cmd_data(args) -> int:
    from bench import data
    names = [args.name] if args.name else list(data.DATASETS)
    try:
        for name in names:
            ds = data.dataset(name)
            if args.action == "list":
                print(f"{name:14} {ds.about}")
            elif args.action == "path":
                print(f"{name:14} {_where(data, name, args.data_dir)}")
            else:
                from bench.data_fetch import fetch
                print(f"{name:14} fetched into {fetch(name)}")
    except data.DataError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _where(data, name: str, data_dir: str | None) -> str:
    try:
        return str(data.locate(name, data_dir))
    except data.DataError:
        looked = ", ".join(str(p) for p in data.candidates(data.dataset(name), data_dir))
        return f"missing (looked in {looked})"


# ---- bench compare and bench check ------------------------------------------------------------
def cmd_compare(args, spec_tolerances: dict | None = None) -> int:
    from bench import compare, compare_io
    baseline, candidate = Path(args.baseline), Path(args.candidate)
    try:
        base = compare_io.load_folder(baseline, "baseline")
        cand = compare_io.load_folder(candidate, "candidate")
        stored = Store(candidate).read_spec().get("compare") if spec_tolerances is None else None
        tols = _tolerances(args, spec_tolerances if spec_tolerances is not None else stored)
    except (compare_io.CompareInputError, compare.ToleranceError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    result = compare.compare(base, cand, tols, raw=args.raw)
    if not result.matched:
        print(f"bench: {baseline} and {candidate} have no cell in common (cell ids differ: "
              "another spec, profile or version of the suite?); nothing to compare",
              file=sys.stderr)
        return EXIT_USAGE
    written = compare_io.write(result, Path(args.compare_out or candidate / "compare"),
                               baseline, candidate, tols)
    print(compare_io.terminal_table(result, args.all))
    failing = result.failures
    verdict = (f"FAILED: {len(failing)} comparison(s) beyond tolerance in "
               f"{len({r.group for r in failing})} configuration(s)" if failing else "passed")
    print(f"bench compare: {verdict}; details in {written}", file=sys.stderr)
    return EXIT_CELL_ERRORS if failing else EXIT_OK


def _tolerances(args, spec_layer: dict | None) -> dict:
    from bench import compare
    given = {}
    for item in args.tolerance:
        metric, sep, tol = item.partition("=")
        if not sep:
            raise compare.ToleranceError(f"--tolerance {item}: write METRIC=TOL, e.g. "
                                         "seconds_per_step=10%")
        given[metric.strip()] = tol.strip()
    tols = compare.tolerances(compare.DEFAULT_TOLERANCES, spec_layer or {}, given)
    if args.metrics:
        wanted = [m.strip() for m in args.metrics.split(",") if m.strip()]
        for m in wanted:
            if m not in tols:
                tols[m] = compare.parse_tolerance(m, "10%" if m in compare.SPEED else 0)
        tols = {m: tols[m] for m in wanted}
    return tols


def cmd_check(args, spec, cells) -> int:
    """Run the spec into a fresh folder, then compare it with the baseline: one CI command."""
    from bench import compare_io
    args.baseline = args.baseline or str(default_baseline())
    try:   # a missing baseline is found before anything runs
        compare_io.load_folder(Path(args.baseline), "baseline")
    except compare_io.CompareInputError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.out) if args.out else _fresh_folder(spec.name)
    if out.exists() and any(out.iterdir()):
        print(f"bench: --out {out} is not empty; `bench check` runs into a fresh folder",
              file=sys.stderr)
        return EXIT_USAGE
    run_args = argparse.Namespace(**vars(args), rerun=False, dry_run=False, no_report=True)
    run_args.out = str(out)
    code = cmd_run(run_args, spec, cells)
    if code not in (EXIT_OK, EXIT_CELL_ERRORS):
        return code
    cmp_args = argparse.Namespace(**vars(args), candidate=str(out))
    gate = cmd_compare(cmp_args, spec.compare)
    return gate if gate != EXIT_OK else code


def _fresh_folder(name: str) -> Path:
    import time
    return Path("results") / f"{name}-check-{time.strftime('%Y%m%d-%H%M%S')}"


def default_baseline() -> Path:
    from bench.calibrate import machine_kind
    return Path("results") / "baselines" / machine_kind()


def cmd_baseline(args, spec, cells) -> int:
    """Run into a fresh folder beside the baseline; swap it in only when every cell finished,
    so a failed or interrupted run leaves the old baseline as it was."""
    import shutil
    import tempfile
    target = Path(args.out) if args.out else default_baseline()
    target.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    run_args = argparse.Namespace(**vars(args), rerun=False, dry_run=False, no_report=True)
    run_args.out = str(fresh)
    code = cmd_run(run_args, spec, cells)
    if code != EXIT_OK:
        shutil.rmtree(fresh, ignore_errors=True)
        print(f"bench: the baseline run did not finish cleanly; {target} is unchanged",
              file=sys.stderr)
        return code
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    fresh.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    print(f"bench: baseline of {len(cells)} cells in {target}", file=sys.stderr)
    return EXIT_OK
