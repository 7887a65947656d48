"""Second-order and quasi-Newton methods, the notes' textbook variants, and theory on quadratics."""
from __future__ import annotations

import copy
import math
from collections import Counter

import pytest
import torch

from bench import optimizers
from bench.cell import Cell  # the one internal this file builds cells with (Cell.build)
from bench.objective import Objective
from bench.theory import measured_rate, predicted_rate
from bench.train import run_cell
from problems import PROBLEMS
from problems.base import Context


def cell(problem: dict, optimizer: dict, steps=50, batch_size=None, measures=(), axes=None,
         **budget) -> Cell:
    """A cell evaluated at every step, seed 0; other axes at their defaults unless `axes`."""
    return Cell.build("t", {"steps": steps, "eval_every": 1, **budget}, tuple(measures),
                      problem=problem, optimizer=optimizer, batch_size=batch_size, seed=0,
                      **(axes or {}))


QUAD10 = {"name": "quadratic", "params": {"dim": 10, "kappa": 100.0, "dtype": "float64"}}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_newton_reaches_1e_12_in_one_step(dtype):
    problem = {"name": "quadratic", "params": {"dim": 10, "kappa": 1000.0, "dtype": dtype}}
    out = run_cell(cell(problem, {"name": "newton", "params": {}}, steps=1))
    assert out.history[0]["train_loss"] > 1e-3
    assert out.history[1]["train_loss"] < 1e-12


def test_bfgs_with_exact_line_search_converges_within_n_plus_1_iterations():
    out = run_cell(cell(QUAD10, {"name": "bfgs", "params": {"line_search": "exact"}}, steps=11,
                        target={"suboptimality": 1e-20}))
    assert out.target_step is not None and out.target_step <= 11, out.history[-1]
    # and it is no accident: plain GD is nowhere near after 11 steps
    gd = run_cell(cell(QUAD10, {"name": "sgd", "params": {"lr": 1.0}}, steps=11))
    assert gd.history[-1]["suboptimality"] > 1e-4


def test_newton_cg_agrees_with_newton():
    problem = {"name": "logistic", "params": {"samples": 300, "features": 8, "dtype": "float64"}}
    paths = {}
    for name in ("newton", "newton_cg"):
        params = {"cg_tol": 1e-12} if name == "newton_cg" else {}
        out = run_cell(cell(problem, {"name": name, "params": params}, steps=4))
        paths[name] = [h["train_loss"] for h in out.history]
    assert paths["newton"] == pytest.approx(paths["newton_cg"], rel=1e-10, abs=1e-14)
    assert paths["newton"][-1] < paths["newton"][0] - 0.1


@pytest.mark.parametrize("name", ["lbfgs", "scipy_bfgs", "scipy_lbfgsb", "scipy_newton_cg",
                                  "scipy_trust_exact", "bfgs"])
def test_quasi_newton_methods_reach_rosenbrock_minimum(name):
    problem = {"name": "rosenbrock", "params": {"dtype": "float64"}}
    out = run_cell(cell(problem, {"name": name, "params": {}}, steps=300,
                        target={"dist_to_opt": 1e-6}))
    assert out.status == "ok", out.error
    assert out.target_step is not None, out.history[-1]


def test_adam_without_bias_correction_takes_the_predicted_first_step():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    problem = {"name": "quadratic", "params": {"eigenvalues": [1.0, 0.1], "rotate": False,
                                               "x0": [1.0, 1.0], "dtype": "float64"}}
    for correct, expected in ((True, lambda g: lr * g.sign()),
                              (False, lambda g: lr * (1 - b1) * g / ((1 - b2) ** 0.5 * g.abs() + eps))):
        out = run_cell(cell(problem, {"name": "adam", "params": {
            "lr": lr, "bias_correction": correct}}, steps=1, measures=("trajectory",)))
        x0, x1 = (torch.tensor(p, dtype=torch.float64)
                  for p in out.measures["trajectory"]["points"])
        g = torch.tensor([1.0, 0.1], dtype=torch.float64)
        assert torch.allclose(x0 - x1, expected(g), rtol=1e-9)
    assert (1 - b1) / (1 - b2) ** 0.5 == pytest.approx(3.162, rel=1e-3)   # the notes' "too large"


def test_textbook_adam_with_bias_correction_matches_torch_adam():
    from bench.optim.textbook import Adam
    xs = [torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True) for _ in "ab"]
    mine, ref = Adam([xs[0]], lr=0.05), torch.optim.Adam([xs[1]], lr=0.05)
    for _ in range(50):
        for x, opt in ((xs[0], mine), (xs[1], ref)):
            opt.zero_grad()
            (x ** 4).sum().backward()
            opt.step()
        assert torch.allclose(xs[0], xs[1], rtol=1e-12, atol=1e-14)


ROUND_TRIP = [("newton", {"line_search": "backtracking"}), ("newton_cg", {}),
              ("bfgs", {}), ("bfgs", {"line_search": "exact"}), ("lbfgs", {}),
              ("scipy_bfgs", {}), ("scipy_lbfgsb", {}), ("scipy_newton_cg", {}),
              ("scipy_trust_exact", {}), ("nesterov_lookahead", {"lr": 1e-3}),
              ("adam", {"lr": 0.01, "bias_correction": False})]


def test_round_trip_list_covers_every_optimizer_the_suite_wrote():
    ours = {n for n in optimizers.OPTIMIZERS.names()
            if not isinstance(optimizers.OPTIMIZERS.get(n).factory([torch.zeros(1,
                              requires_grad=True)], **optimizers.OPTIMIZERS.get(n).sample),
                              _TORCH_CLASSES)}
    assert ours <= {n for n, _ in ROUND_TRIP}


_TORCH_CLASSES = (torch.optim.SGD, torch.optim.Adagrad, torch.optim.RMSprop, torch.optim.AdamW,
                  torch.optim.Adadelta)


def _rosenbrock_steps(optimizer, x, steps, counts):
    loss_fn = lambda: 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2  # noqa: E731
    path = []
    for _ in range(steps):
        optimizer.step(Objective(loss_fn, [x], counts))
        path.append(x.detach().clone())
    return path


@pytest.mark.parametrize("name, params", ROUND_TRIP, ids=[f"{n}{p}" for n, p in ROUND_TRIP])
def test_state_dict_round_trip_continues_identically(name, params):
    x = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    first = optimizers.build(name, [x], params)
    _rosenbrock_steps(first, x, 4, Counter())
    saved_x, saved_state = x.detach().clone(), copy.deepcopy(first.state_dict())
    expected = _rosenbrock_steps(first, x, 4, Counter())
    y = saved_x.clone().requires_grad_(True)
    second = optimizers.build(name, [y], params)
    second.load_state_dict(saved_state)
    counts = Counter()
    got = _rosenbrock_steps(second, y, 4, counts)
    for a, b in zip(got, expected):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
    assert not torch.equal(expected[0], expected[-1])
    if name.startswith("scipy"):   # the replay re-created scipy's state without evaluating
        assert counts["function"] <= 4 * 30
    for opt in (first, second):
        getattr(opt, "close", lambda: None)()


class CountingProblem:
    """Counts, from outside the suite's Objective, what the optimizer made autograd do on a
    problem with one parameter tensor x:

    - function evaluations: calls of the problem's training forward pass;
    - gradients: first-order backward passes. They start at the loss, so a hook on the
      forward's output fires before x's hook in the same pass;
    - Hessian-vector products: backward passes reaching x that do not start at the loss
      (double backward through a gradient with its graph), one vector at a time;
    - Hessians: a closed-form `problem.hessian` that returned a matrix, or one batched
      (`is_grads_batched`) double backward giving all n rows at once.
    """

    def __init__(self, problem, monkeypatch):
        (x,) = problem.parameters()
        self.problem, self.counts = problem, Counter()
        self._from_loss = 0       # loss hooks fired whose x hook is still to come
        self._batched = False     # inside torch.autograd.grad(..., is_grads_batched=True)
        forward, hessian = problem.forward, problem.hessian

        def counted_forward(inputs):
            out = forward(inputs)
            self.counts["function"] += 1
            if out.requires_grad:
                out.register_hook(self._loss_hook)
            return out

        def counted_hessian(batch=None):
            matrix = hessian(batch)
            if matrix is not None:
                self.counts["hessian"] += 1
            return matrix
        problem.forward, problem.hessian = counted_forward, counted_hessian
        x.register_hook(self._x_hook)
        grad = torch.autograd.grad

        def counted_grad(*args, **kwargs):
            self._batched = bool(kwargs.get("is_grads_batched"))
            try:
                return grad(*args, **kwargs)
            finally:
                self._batched = False
        monkeypatch.setattr(torch.autograd, "grad", counted_grad)

    def _loss_hook(self, grad):
        self._from_loss += 1

    def _x_hook(self, grad):
        if self._from_loss:
            self._from_loss -= 1
            self.counts["gradient"] += 1
        elif self._batched:
            self.counts["hessian"] += 1
        else:
            self.counts["hvp"] += 1


ROSENBROCK = {"name": "rosenbrock", "params": {"dtype": "float64"}}
QUAD4 = {"name": "quadratic", "params": {"dim": 4, "kappa": 10.0, "dtype": "float64"}}
STEPS = 7
SOME = "some"   # at least one; the exact number depends on the line search or CG
COUNT_CASES = [  # problem, optimizer, params, expected gradients, HVPs and Hessians
    (ROSENBROCK, "sgd", {"lr": 1e-3}, {"gradient": STEPS, "hvp": 0, "hessian": 0}),
    (ROSENBROCK, "nesterov_lookahead", {"lr": 1e-4}, {"gradient": STEPS, "hvp": 0, "hessian": 0}),
    # Newton: one gradient (with graph) and one autograd Hessian per step, no HVP
    (ROSENBROCK, "newton", {}, {"gradient": STEPS, "hvp": 0, "hessian": STEPS}),
    (ROSENBROCK, "newton", {"line_search": "backtracking"}, {"hvp": 0, "hessian": STEPS}),
    # on a quadratic the Hessian is the problem's closed form, still one per step
    (QUAD4, "newton", {}, {"gradient": STEPS, "hvp": 0, "hessian": STEPS}),
    (ROSENBROCK, "newton_cg", {}, {"gradient": STEPS, "hvp": SOME, "hessian": 0}),
    (ROSENBROCK, "bfgs", {}, {"hvp": 0, "hessian": 0}),
    (ROSENBROCK, "bfgs", {"line_search": "exact"}, {"hvp": SOME, "hessian": 0}),
    (ROSENBROCK, "lbfgs", {}, {"hvp": 0, "hessian": 0}),
    (ROSENBROCK, "scipy_newton_cg", {}, {"hvp": SOME, "hessian": 0}),
    (ROSENBROCK, "scipy_trust_exact", {}, {"hvp": 0, "hessian": SOME}),
]


@pytest.mark.parametrize("problem, name, params, expected", COUNT_CASES,
                         ids=[f"{p['name']}-{n}{o or ''}" for p, n, o, _ in COUNT_CASES])
def test_evaluation_counts_match_an_instrumented_problem(problem, name, params, expected,
                                                         monkeypatch):
    seen = []
    entry = PROBLEMS.get(problem["name"])
    real = entry.factory

    def instrumented(ctx, **kw):
        seen.append(CountingProblem(real(ctx, **kw), monkeypatch))
        return seen[-1].problem
    monkeypatch.setattr(entry, "factory", instrumented)
    out = run_cell(cell(problem, {"name": name, "params": params}, steps=STEPS))
    assert out.status == "ok", out.error
    assert len(seen) == 1 and out.steps == STEPS
    last, spy = out.history[-1], seen[0].counts
    # each count on its own against the instrumented problem
    assert last["function_evals"] == spy["function"] >= STEPS
    assert last["gradient_evals"] == spy["gradient"] >= STEPS
    assert last["hvp_evals"] == spy["hvp"]
    assert last["hessian_evals"] == spy["hessian"]
    # and against what the method must do
    for kind, want in expected.items():
        got = last[f"{kind}_evals"]
        assert got >= 1 if want == SOME else got == want, (kind, got, want)
    # the history counts up: each entry is the count after that many steps
    for field in ("function_evals", "gradient_evals", "hvp_evals", "hessian_evals"):
        values = [h[field] for h in out.history]
        assert values[0] == 0 and values == sorted(values), field
    n = 2 if problem is ROSENBROCK else 4
    assert last["grad_equivalents"] == pytest.approx(
        spy["gradient"] + 0.5 * (spy["function"] - spy["gradient"])
        + 2.0 * (spy["hvp"] + n * spy["hessian"]))


@pytest.mark.parametrize("kappa", [10.0, 100.0])
def test_heavy_ball_at_optimal_parameters_contracts_at_theory_rate(kappa):
    r = math.sqrt(kappa)
    opt = {"name": "momentum", "params": {"lr": 4 / (1 + 1 / r) ** 2,
                                          "momentum": ((r - 1) / (r + 1)) ** 2}}
    problem = {"name": "quadratic", "params": {"dim": 2, "kappa": kappa, "dtype": "float64"}}
    assert predicted_rate(opt, problem) == pytest.approx((r - 1) / (r + 1), rel=1e-6)
    out = run_cell(cell(problem, opt, steps=400))
    rate = measured_rate(out.history)
    # a double eigenvalue makes the error t·qᵗ: measured over steps t..2t the rate is about
    # q·(1 + 1/t), approaching q from above
    assert (r - 1) / (r + 1) <= rate <= (r - 1) / (r + 1) * 1.05


@pytest.mark.parametrize("opt", [{"name": "sgd", "params": {"lr": 1.5}},
                                 {"name": "momentum", "params": {"lr": 0.3, "momentum": 0.5}},
                                 {"name": "nesterov", "params": {"lr": 0.3, "momentum": 0.7}}])
def test_predicted_rates_of_linear_methods_match_measurement(opt):
    problem = {"name": "quadratic", "params": {"dim": 6, "kappa": 30.0, "dtype": "float64"}}
    out = run_cell(cell(problem, opt, steps=300))
    assert measured_rate(out.history) == pytest.approx(predicted_rate(opt, problem), rel=5e-3)


def test_minibatch_lbfgs_is_worse_than_full_batch_lbfgs():
    problem = {"name": "logistic", "params": {"samples": 512, "features": 10, "dtype": "float64"}}
    full = run_cell(cell(problem, {"name": "lbfgs", "params": {}}, steps=60))
    mini = run_cell(cell(problem, {"name": "lbfgs", "params": {}}, steps=60, batch_size=32))
    assert full.history[-1]["suboptimality"] < 1e-8 < mini.history[-1]["suboptimality"]


def test_newton_problem_too_large_fails_validation(write_spec, cli, capsys):
    spec = write_spec("""
        name: t
        seeds: [0]
        experiments:
          e:
            problem: {name: quadratic, dim: 6000, rotate: false}
            optimizer: [newton_cg, newton]
            budget: {steps: 1}
        """)
    assert cli("validate", spec) == 2
    err = capsys.readouterr().err
    assert "spec.yaml:6:" in err and "6,000 parameters" in err and "max_params=5,000" in err
    assert "use newton_cg" in err and "Traceback" not in err


def test_second_order_needs_the_suite_objective():
    x = torch.zeros(2, requires_grad=True)
    opt = optimizers.build("newton", [x], {})
    with pytest.raises(TypeError, match="Objective"):
        opt.step(lambda: (x ** 2).sum())


def build_logistic():
    ctx = Context(0, torch.device("cpu"), torch.Generator().manual_seed(0))
    return PROBLEMS.get("logistic").factory(ctx, samples=200, features=4, dtype="float64")


def test_logistic_minimum_is_a_stationary_point():
    p = build_logistic()
    with torch.no_grad():
        p.w.copy_(p.x_star)
    m = p.evaluate()
    assert m["grad_norm"] < 1e-10 and abs(m["suboptimality"]) < 1e-14 and 0.6 < m["train_accuracy"]


@pytest.mark.parametrize("name, params", [
    ("quadratic", {"dim": 6, "kappa": 50.0, "dtype": "float64"}),
    ("logistic", {"samples": 300, "features": 5, "dtype": "float64"})])
def test_closed_form_hessians_equal_autograd(name, params):
    ctx = Context(0, torch.device("cpu"), torch.Generator().manual_seed(0))
    problem = PROBLEMS.get(name).factory(ctx, **params)
    with torch.no_grad():
        problem.parameters()[0].add_(0.3)
    obj = Objective(lambda: problem.loss(None), problem.parameters(), Counter())
    with torch.enable_grad():
        _loss, g = obj.value_and_gradient(create_graph=True)
        auto = obj.hessian(g)
    assert torch.allclose(problem.hessian(None), auto, rtol=1e-10, atol=1e-12)


def test_regularized_newton_uses_the_penalized_hessian():
    """With a penalty the closed form no longer holds: Newton must still land in one step."""
    problem = {"name": "quadratic", "params": {"dim": 4, "kappa": 10.0, "dtype": "float64"}}
    out = run_cell(cell(problem, {"name": "newton", "params": {}}, steps=2,
                        axes={"regularizer": {"name": "l2", "params": {"strength": 0.5}}}))
    # the minimiser of ½xᵀAx + 0.5‖x‖² is still 0; one exact Newton step reaches it
    assert out.history[1]["dist_to_opt"] < 1e-12


def test_newton_on_a_singular_hessian_falls_back_to_the_gradient():
    """Zero weights make the Hessian of a tanh network singular: the step must not crash."""
    problem = {"name": "toy_mlp", "params": {"activation": "tanh"}}
    out = run_cell(cell(problem, {"name": "newton", "params": {"line_search": "backtracking"}},
                        steps=3, axes={"init": {"name": "zeros", "params": {}}}))
    assert out.status == "ok", out.error


def test_scipy_thread_is_released_when_a_cell_fails(monkeypatch):
    import threading
    before = threading.active_count()
    real = PROBLEMS.get("quadratic").factory

    def failing(ctx, **kw):
        problem = real(ctx, **kw)
        calls = {"n": 0}
        forward = problem.forward      # the training loss's forward pass

        def flaky(inputs):
            calls["n"] += 1
            if calls["n"] > 5:
                raise RuntimeError("the model broke")
            return forward(inputs)
        problem.forward = flaky
        return problem
    monkeypatch.setattr(PROBLEMS.get("quadratic"), "factory", failing)
    for _ in range(3):
        out = run_cell(cell(QUAD10, {"name": "scipy_bfgs", "params": {}}, steps=20))
        assert out.status == "error" and "the model broke" in out.error
    assert threading.active_count() == before


def test_bfgs_reuses_the_line_search_gradient_on_a_fixed_batch():
    out = run_cell(cell(QUAD10, {"name": "bfgs", "params": {}}, steps=5))
    scipy = run_cell(cell(QUAD10, {"name": "scipy_bfgs", "params": {}}, steps=5))
    assert out.history[-1]["gradient_evals"] <= scipy.history[-1]["gradient_evals"]


def test_scipy_hessian_products_at_one_point_share_one_gradient():
    x = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = optimizers.build("scipy_newton_cg", [x], {})
    counts = Counter()
    obj = Objective(lambda: (x ** 4).sum(), [x], counts)
    with torch.enable_grad():
        first = opt._gradient_graph(obj, x.detach())
        again = opt._gradient_graph(obj, x.detach())
        assert again is first and counts["gradient"] == 1
        obj.set_flat(torch.tensor([0.5, 0.5], dtype=torch.float64))   # parameters moved
        assert opt._gradient_graph(obj, x.detach()) is not first and counts["gradient"] == 2
