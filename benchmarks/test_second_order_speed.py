"""Cost of second-order steps: seconds per exact Newton step at n = 10, 100, 1000, and the cost
of a Hessian-vector product relative to a gradient (double backward, as the suite does it,
and forward-over-reverse with torch.func for comparison). `tox -e perf` runs it."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

from bench import optimizers
from bench.execute import process_settings
from bench.objective import Objective
from problems import PROBLEMS
from problems.base import Context


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    with process_settings(threads=1):
        yield


def build(name: str, **params):
    ctx = Context(0, torch.device("cpu"), torch.Generator().manual_seed(0))
    return PROBLEMS.get(name).factory(ctx, **params)


def _newton(benchmark, problem, hessian: str, options: dict) -> None:
    opt = optimizers.build("newton", problem.parameters(), options)
    closed = (lambda: problem.hessian(None)) if hessian == "closed-form" else None
    objective = Objective(lambda: problem.loss(None), problem.parameters(), Counter(), closed)
    benchmark.pedantic(opt.step, args=(objective,), rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("hessian", ["closed-form", "autograd"])
@pytest.mark.parametrize("dim", [10, 100, 1000])
def test_newton_step_on_quadratic(benchmark, dim, hessian):
    benchmark.group = "newton step, rotated quadratic"
    _newton(benchmark, build("quadratic", dim=dim, kappa=100.0), hessian, {})


@pytest.mark.parametrize("hessian", ["closed-form", "autograd"])
@pytest.mark.parametrize("features", [10, 100, 1000])
def test_newton_step_on_logistic_regression(benchmark, features, hessian):
    benchmark.group = "newton step, logistic regression, 2000 samples"
    _newton(benchmark, build("logistic", samples=2000, features=features - 1), hessian,
            {"damping": 1e-6})


def _logistic_objective():
    problem = build("logistic", samples=2000, features=99)
    return problem, Objective(lambda: problem.loss(None), problem.parameters(), Counter())


def test_gradient(benchmark):
    benchmark.group = "logistic regression n=100, 2000 samples: gradient vs Hessian-vector product"
    _problem, obj = _logistic_objective()
    benchmark(obj.value_and_gradient)


def test_hvp_double_backward(benchmark):
    benchmark.group = "logistic regression n=100, 2000 samples: gradient vs Hessian-vector product"
    _problem, obj = _logistic_objective()
    v = torch.randn(100)

    def hvp():
        with torch.enable_grad():
            _loss, g = obj.value_and_gradient(create_graph=True)
            return obj.hvp(g, v)
    benchmark(hvp)


def test_hvp_forward_over_reverse(benchmark):
    benchmark.group = "logistic regression n=100, 2000 samples: gradient vs Hessian-vector product"
    problem, _obj = _logistic_objective()
    w, v = problem.w.detach().clone(), torch.randn(100)
    f = lambda w_: torch.nn.functional.binary_cross_entropy_with_logits(problem.X @ w_, problem.y)  # noqa: E731
    benchmark(lambda: torch.func.jvp(torch.func.grad(f), (w,), (v,))[1])
