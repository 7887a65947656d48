"""Spec → cells: grids, zip, exclude, random draws, stable ids, filters."""
from __future__ import annotations

import pytest

from bench.plan import filter_cells, make_cells
from bench.spec import load_spec


def cells_of(write_spec, text, profile=None):
    return make_cells(load_spec(write_spec(text), profile))


BASE = """
name: t
seeds: [0, 1]
defaults: {budget: {steps: 10}}
experiments:
  e:
    problem: {name: quadratic, kappa: [10, 100]}
    optimizer:
      - {name: sgd, lr: [0.1, 0.2]}
      - adam
"""


def test_grid_is_the_product_of_axes_and_param_lists(write_spec):
    cells = cells_of(write_spec, BASE)
    assert len(cells) == 2 * (2 + 1) * 2
    assert {c.problem["params"]["kappa"] for c in cells} == {10.0, 100.0}
    assert len({c.id for c in cells}) == len(cells)


def test_ids_do_not_depend_on_order_or_spelling(write_spec):
    reordered = BASE.replace("""      - {name: sgd, lr: [0.1, 0.2]}
      - adam""", """      - {name: adam, lr: 0.001}
      - {lr: [0.2, 0.1], name: sgd}""").replace("kappa: [10, 100]", "kappa: [100.0, 10.0]")
    a = {c.id for c in cells_of(write_spec, BASE)}
    b = {c.id for c in cells_of(write_spec, reordered, )}
    assert a == b


def test_resolved_cells_carry_every_default(write_spec):
    cell = cells_of(write_spec, BASE)[-1]
    assert cell.optimizer == {"name": "adam", "params": {
        "lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0,
        "bias_correction": True}}
    assert cell.schedule == {"name": "constant", "params": {"warmup": 0}}


def test_list_valued_parameters_are_values_not_grids(write_spec):
    text = BASE.replace("{name: quadratic, kappa: [10, 100]}",
                        "{name: quadratic, eigenvalues: [1, 0.1], x0: [[1, 1], [1, -1]]}")
    cells = cells_of(write_spec, text)
    assert {tuple(c.problem["params"]["eigenvalues"]) for c in cells} == {(1.0, 0.1)}
    assert {tuple(c.problem["params"]["x0"]) for c in cells} == {(1, 1), (1, -1)}


def test_zip_pairs_instead_of_crossing(write_spec):
    text = BASE.replace("""      - {name: sgd, lr: [0.1, 0.2]}
      - adam""", "      - {name: sgd, lr: [0.1, 0.2]}") + "    zip: [problem.kappa, optimizer.lr]\n"
    pairs = {(c.problem["params"]["kappa"], c.optimizer["params"]["lr"])
             for c in cells_of(write_spec, text)}
    assert pairs == {(10.0, 0.1), (100.0, 0.2)}


def test_exclude_drops_matching_cells(write_spec):
    text = BASE + "    exclude: [{optimizer: adam, problem: {kappa: 100}}, {seed: 1}]\n"
    cells = cells_of(write_spec, text)
    assert len(cells) == 5
    assert not any(c.optimizer["name"] == "adam" and c.problem["params"]["kappa"] == 100
                   for c in cells)
    assert {c.seed for c in cells} == {0}


def test_random_search_is_reproducible_and_in_range(write_spec):
    text = BASE.replace("lr: [0.1, 0.2]", "lr: {loguniform: [1.0e-4, 1.0e-1]}") + "    samples: 6\n"
    first = [c.optimizer["params"]["lr"] for c in cells_of(write_spec, text)
             if c.optimizer["name"] == "sgd"]
    again = [c.optimizer["params"]["lr"] for c in cells_of(write_spec, text)
             if c.optimizer["name"] == "sgd"]
    assert first == again
    draws = sorted(set(first))
    assert len(draws) == 6 and all(1e-4 <= v <= 1e-1 for v in draws)


def test_profile_overrides_seeds_defaults_and_experiments(write_spec):
    text = BASE + """profiles:
  quick:
    seeds: [7]
    defaults: {budget: {epochs: 1}}
    experiments:
      e: {problem: {name: quadratic, kappa: 3}}
"""
    cells = cells_of(write_spec, text, "quick")
    assert {c.seed for c in cells} == {7}
    assert {c.problem["params"]["kappa"] for c in cells} == {3.0}
    assert all(c.budget == {"epochs": 1} for c in cells)   # epochs replaced steps


@pytest.mark.parametrize("only, count", [
    (["e"], 12), (["optimizer=adam"], 4), (["optimizer=sgd,optimizer.lr=0.2"], 4),
    (["problem.kappa=1e2,seed=0"], 3), (["optimizer=adam", "seed=1"], 8), (["nothing"], 0)])
def test_only_filters(write_spec, only, count):
    assert len(filter_cells(cells_of(write_spec, BASE), only)) == count


def test_bench_list_prints_cells_and_count(write_spec, cli, capsys):
    assert cli("list", write_spec(BASE)) == 0
    out = capsys.readouterr().out
    assert "12 cells" in out and "sgd(lr=0.2)" in out and "quadratic(kappa=100" in out


def test_readme_example_spec_is_valid(tmp_path):
    """The README's YAML example is a real spec (14 cells per seed: 3 zipped GD, 2×4 Adam
    draws after the exclude, 3 NAdam)."""
    import re
    from pathlib import Path
    readme = Path(__file__).resolve().parent.parent / "README.md"
    text = re.search(r"```yaml\n(.*?)```", readme.read_text(), re.S).group(1)
    path = tmp_path / "readme.yaml"
    path.write_text(text)
    assert len(make_cells(load_spec(path))) == 3 * 14
