"""Every first-order optimizer against its formula in the lecture notes (TOPICS.md),
computed by hand in float64 over 50 steps on a rotated, ill-conditioned quadratic."""
from __future__ import annotations

import math

import pytest
import torch

from bench import optimizers
from bench.registry import ChoiceError
from problems import PROBLEMS
from problems.base import Context

STEPS = 50


def make_problem(**params):
    ctx = Context(0, torch.device("cpu"), torch.Generator().manual_seed(3))
    return PROBLEMS.get("quadratic").factory(ctx, dtype="float64", **params)


def run_bench(name: str, options: dict, problem) -> list[torch.Tensor]:
    """The suite's path: registry factory, closure step, the problem's own loss."""
    opt = optimizers.build(name, problem.parameters(), options)
    path = [problem.x.detach().clone()]
    for _ in range(STEPS):
        def closure():
            opt.zero_grad()
            loss = problem.loss(None)
            loss.backward()
            return loss
        opt.step(closure)
        path.append(problem.x.detach().clone())
    return path


def hand(update, problem, state: dict) -> list[torch.Tensor]:
    """Iterate `update(x, grad, state, t)` with the exact gradient A x."""
    A = problem.hessian().double()
    x = problem.x.detach().clone()
    path = [x.clone()]
    for t in range(1, STEPS + 1):
        x = update(x, lambda z: A @ z, state, t)
        path.append(x.clone())
    return path


def sgd(x, grad, s, t):
    return x - s["lr"] * grad(x)


def momentum(x, grad, s, t):            # v ← ρv + ∇f(x); x ← x − αv
    s["v"] = s["rho"] * s.get("v", 0) + grad(x)
    return x - s["lr"] * s["v"]


def nesterov_notes(x, grad, s, t):      # v ← ρv − α∇f(x + ρv); x ← x + v
    v = s.get("v", torch.zeros_like(x))
    s["v"] = s["rho"] * v - s["lr"] * grad(x + s["rho"] * v)
    return x + s["v"]


def nesterov_change_of_variables(x, grad, s, t):   # x̃ ← x̃ − ρv_old + (1+ρ)v, needs ∇f(x̃)
    v_old = s.get("v", torch.zeros_like(x))
    s["v"] = s["rho"] * v_old - s["lr"] * grad(x)
    return x - s["rho"] * v_old + (1 + s["rho"]) * s["v"]


def adagrad(x, grad, s, t):             # s ← s + g²; x ← x − α g / (√s + 1e-7)
    g = grad(x)
    s["s"] = s.get("s", 0) + g * g
    return x - s["lr"] * g / (s["s"].sqrt() + 1e-7)


def rmsprop(x, grad, s, t):             # s ← βs + (1−β)g²
    g = grad(x)
    s["s"] = s["beta"] * s.get("s", 0) + (1 - s["beta"]) * g * g
    return x - s["lr"] * g / (s["s"].sqrt() + 1e-8)


def adam(x, grad, s, t, decay=0.0):     # bias-corrected moments
    g = grad(x)
    b1, b2 = 0.9, 0.999
    s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0) + (1 - b2) * g * g
    m_hat, v_hat = s["m"] / (1 - b1 ** t), s["v"] / (1 - b2 ** t)
    x = x * (1 - s["lr"] * decay)       # AdamW: decoupled decay before the Adam step
    return x - s["lr"] * m_hat / (v_hat.sqrt() + 1e-8)


def adamw(x, grad, s, t):
    return adam(x, grad, s, t, decay=s["wd"])


def adadelta(x, grad, s, t):            # Δθ = −(RMS[Δθ]ₜ₋₁ / RMS[g]ₜ) g, no learning rate
    g, rho, eps = grad(x), 0.9, 1e-6
    s["g2"] = rho * s.get("g2", 0) + (1 - rho) * g * g
    delta = -((s.get("d2", 0) + eps) ** 0.5 / (s["g2"] + eps).sqrt()) * g
    s["d2"] = rho * s.get("d2", 0) + (1 - rho) * delta * delta
    return x + delta


CASES = {   # registry name, its options, the hand formula, the formula's state
    "sgd": ({"lr": 0.5}, sgd, {"lr": 0.5}),
    "momentum": ({"lr": 0.1, "momentum": 0.9}, momentum, {"lr": 0.1, "rho": 0.9}),
    "nesterov": ({"lr": 0.1, "momentum": 0.9}, nesterov_change_of_variables,
                 {"lr": 0.1, "rho": 0.9}),
    "adagrad": ({"lr": 0.3}, adagrad, {"lr": 0.3}),
    "rmsprop": ({"lr": 0.01, "alpha": 0.9}, rmsprop, {"lr": 0.01, "beta": 0.9}),
    "adam": ({"lr": 0.05}, adam, {"lr": 0.05}),
    "adamw": ({"lr": 0.05, "weight_decay": 0.1}, adamw, {"lr": 0.05, "wd": 0.1}),
    "adadelta": ({"rho": 0.9, "eps": 1e-6}, adadelta, {}),
    "nesterov_lookahead": ({"lr": 0.1, "momentum": 0.9}, nesterov_notes, {"lr": 0.1, "rho": 0.9}),
}
# tested against theory, torch and scipy in test_second_order.py
SECOND_ORDER = {"newton", "newton_cg", "bfgs", "lbfgs", "scipy_bfgs", "scipy_lbfgsb",
                "scipy_newton_cg", "scipy_trust_exact"}


def test_every_registered_optimizer_has_a_reference_test():
    assert set(CASES) | SECOND_ORDER == set(optimizers.OPTIMIZERS.names())


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_lecture_formula_over_50_steps(name):
    options, formula, state = CASES[name]
    problem = make_problem(dim=4, kappa=20.0)
    expected = hand(formula, make_problem(dim=4, kappa=20.0), dict(state))
    got = run_bench(name, options, problem)
    moved = (expected[-1] - expected[0]).norm().item()
    assert moved > 1e-2, "the formula must actually move the iterate"
    for t, (a, b) in enumerate(zip(got, expected)):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12), f"{name} differs at step {t}"


def test_torch_nesterov_is_the_notes_nesterov_after_change_of_variables():
    """torch iterates x̃ = x + ρv where the notes' form iterates x."""
    rho, lr = 0.9, 0.1
    got = run_bench("nesterov", {"lr": lr, "momentum": rho}, make_problem(dim=3, kappa=50.0))
    problem = make_problem(dim=3, kappa=50.0)
    A = problem.hessian().double()
    x = problem.x.detach().clone()
    v = torch.zeros_like(x)
    for t in range(1, STEPS + 1):
        state = {"v": v, "rho": rho, "lr": lr}
        x = nesterov_notes(x, lambda z: A @ z, state, t)
        v = state["v"]
        assert torch.allclose(got[t], x + rho * v, rtol=1e-10, atol=1e-12), f"step {t}"


def test_sgd_matches_closed_form_on_diagonal_quadratic_at_every_step():
    """xᵢ(t) = (1 − lr·λᵢ)ᵗ xᵢ(0) with eigenvalues [1, 0.1], no rotation, x0 = [1, 1]."""
    lr = 0.3
    problem = make_problem(eigenvalues=[1.0, 0.1], rotate=False, x0=[1.0, 1.0])
    got = run_bench("sgd", {"lr": lr}, problem)
    lam = torch.tensor([1.0, 0.1], dtype=torch.float64)
    for t, x in enumerate(got):
        assert torch.allclose(x, (1 - lr * lam) ** t, rtol=1e-12, atol=0), f"step {t}"


def test_adadelta_needs_no_learning_rate_and_still_converges():
    problem = make_problem(dim=2, kappa=5.0)
    start = problem.evaluate()["train_loss"]
    run_bench("adadelta", {"eps": 1e-4}, problem)
    assert problem.evaluate()["train_loss"] < 0.5 * start


def test_import_path_optimizer_is_accepted_and_non_optimizers_are_refused():
    entry = optimizers.lookup("torch.optim.NAdam")
    assert entry.factory is torch.optim.NAdam
    with pytest.raises(ChoiceError, match="not a torch.optim.Optimizer"):
        optimizers.lookup("torch.nn.Linear")
    with pytest.raises(ChoiceError, match="cannot import"):
        optimizers.lookup("torch.optim.NoSuchThing")


def test_rates_are_what_theory_says_for_gd_at_optimal_step():
    """On 2-D quadratics both eigen-directions contract by exactly (κ−1)/(κ+1) per step."""
    kappa = 30.0
    problem = make_problem(dim=2, kappa=kappa)
    lr = 2 / (1 + 1 / kappa)
    path = run_bench("sgd", {"lr": lr}, problem)
    q = (kappa - 1) / (kappa + 1)
    for t in (10, 30, 50):
        assert math.isclose(path[t].norm().item(), q ** t * path[0].norm().item(), rel_tol=1e-9)
