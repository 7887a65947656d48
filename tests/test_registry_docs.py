"""Every parameter of every registry entry is documented, and `bench list KIND` prints them."""
from __future__ import annotations

import pytest

from bench.cell import AXES
from bench.cli import KINDS
from bench.measures import MEASURES
from bench.registry import param_docs

REGISTRIES = {a.name: a.entries() for a in AXES if a.is_choice} | {"measure": MEASURES}
ENTRIES = [(kind, e) for kind, reg in REGISTRIES.items() for e in reg.entries()]


@pytest.mark.parametrize("kind, entry", ENTRIES, ids=[f"{k}-{e.name}" for k, e in ENTRIES])
def test_every_parameter_is_documented(kind, entry):
    assert entry.about and not entry.about.endswith((",", " at", " and"))
    undocumented = [p.name for p in entry.parameters() if not p.doc]
    assert undocumented == [], f"{kind} '{entry.name}': document {undocumented} under Args:"


def test_args_sections_parse_with_continuations():
    doc = "Summary.\n\nArgs:\n    lr: the step\n        size.\n    beta: a decay.\n\nReturns x."
    assert param_docs(doc) == {"lr": "the step size.", "beta": "a decay."}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_bench_list_prints_a_registry(cli, capsys, kind):
    assert cli("list", kind) == 0
    out = capsys.readouterr().out
    registry = REGISTRIES[KINDS[kind]]
    for entry in registry.entries():
        assert f"{entry.name}: {entry.about}" in out
    assert "(undocumented)" not in out


def test_bench_list_names_parameters_and_defaults(cli, capsys):
    assert cli("list", "optimizers") == 0
    out = capsys.readouterr().out
    assert "    momentum = 0.9: " in out and "    max_params = 5000: " in out


def test_bench_list_kind_where_a_folder_has_that_name(cli, capsys, tmp_path):
    (tmp_path / "problems").mkdir()   # as in the repository's root
    assert cli("list", "problems") == 0
    assert "quadratic: " in capsys.readouterr().out
