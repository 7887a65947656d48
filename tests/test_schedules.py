"""Closed-form schedules, and that the training loop writes them into the param groups."""
from __future__ import annotations

import math

import pytest

from bench.cell import Cell
from bench.schedules import SCHEDULES
from bench.train import run_cell


def factor(name, step, total=100, **params):
    return SCHEDULES.get(name).factory(**params).factor(step, total)


def test_closed_forms():
    assert factor("constant", 50) == 1
    assert factor("step", 25, every=10, gamma=0.5) == 0.25
    assert factor("exponential", 3, gamma=0.9) == pytest.approx(0.729)
    assert factor("inverse_time", 10, decay=0.1) == pytest.approx(0.5)
    assert factor("cosine", 0) == 1 and factor("cosine", 50) == pytest.approx(0.5)
    assert factor("cosine", 100, min_factor=0.1) == pytest.approx(0.1)
    assert factor("sgdr", 10, period=10) == 1                      # restart
    assert factor("sgdr", 5, period=10) == pytest.approx(0.5)
    assert factor("sgdr", 25, period=10, mult=2) == pytest.approx(0.5 * (1 + math.cos(math.pi * 15 / 20)))
    assert factor("cyclic", 5, period=10, max_factor=3) == 3 and factor("cyclic", 10, period=10) == 1


def test_warmup_composes_with_every_schedule():
    assert factor("warmup", 4, warmup=10) == pytest.approx(0.5)
    assert factor("warmup", 50, warmup=10) == 1
    assert factor("cosine", 4, warmup=10) == pytest.approx(0.5)
    assert factor("cosine", 10, warmup=10) == 1                    # cosine starts after warm-up
    assert factor("cosine", 55, warmup=10) == pytest.approx(0.5)


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_every_schedule_is_positive_and_bounded(name):
    sample = SCHEDULES.get(name).sample
    values = [factor(name, s, 200, **sample) for s in range(200)]
    assert all(0 <= v <= 10 for v in values)


def test_loop_writes_schedule_into_param_groups():
    cell = Cell.build("t", {"steps": 20, "eval_every": 1}, problem="quadratic",
                      optimizer={"name": "sgd", "params": {"lr": 0.4}},
                      schedule={"name": "step", "params": {"every": 5, "gamma": 0.5}}, seed=0)
    lrs = [h["lr"] for h in run_cell(cell).history[1:]]
    assert lrs == [0.4 * 0.5 ** (s // 5) for s in range(20)]
