"""Every first-order optimizer against its formula in the lecture notes (TOPICS.md),
computed by hand in float64 over 50 steps on a rotated, ill-conditioned quadratic; weight
decay of every optimizer that takes it; every optimizer's state through a real file."""
from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from bench import optimizers
from bench.objective import Objective  # the closure every suite optimizer accepts
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
    entry = optimizers.OPTIMIZERS.get("torch.optim.NAdam")
    assert entry.factory is torch.optim.NAdam
    with pytest.raises(ChoiceError, match="not a torch.optim.Optimizer"):
        optimizers.OPTIMIZERS.get("torch.nn.Linear")
    with pytest.raises(ChoiceError, match="cannot import"):
        optimizers.OPTIMIZERS.get("torch.optim.NoSuchThing")


def test_rates_are_what_theory_says_for_gd_at_optimal_step():
    """On 2-D quadratics both eigen-directions contract by exactly (κ−1)/(κ+1) per step."""
    kappa = 30.0
    problem = make_problem(dim=2, kappa=kappa)
    lr = 2 / (1 + 1 / kappa)
    path = run_bench("sgd", {"lr": lr}, problem)
    q = (kappa - 1) / (kappa + 1)
    for t in (10, 30, 50):
        assert math.isclose(path[t].norm().item(), q ** t * path[0].norm().item(), rel_tol=1e-9)


# ---- weight decay --------------------------------------------------------------------------
# Coupled decay adds λx to the gradient: the same as minimising f(x) + (λ/2)‖x‖² without it.
# Decoupled decay (AdamW) shrinks x by (1 − αλ) outside the adaptive step.
WEIGHT_DECAY = {"sgd": "coupled", "momentum": "coupled", "nesterov": "coupled",
                "adagrad": "coupled", "rmsprop": "coupled", "adam": "coupled",
                "adadelta": "coupled", "adamw": "decoupled"}
DECAY = 0.3


def test_every_optimizer_taking_weight_decay_is_checked():
    takes = {n for n in optimizers.OPTIMIZERS.names()
             if "weight_decay" in {p.name for p in optimizers.OPTIMIZERS.get(n).parameters()}}
    assert takes == set(WEIGHT_DECAY)


def run_penalized(name: str, options: dict, problem, decay: float) -> list[torch.Tensor]:
    """`name` without weight decay on f(x) + (decay/2)‖x‖²: gradient Ax + decay·x."""
    opt = optimizers.build(name, problem.parameters(), {**options, "weight_decay": 0.0})
    path = [problem.x.detach().clone()]
    for _ in range(STEPS):
        def closure():
            opt.zero_grad()
            loss = problem.loss(None) + 0.5 * decay * (problem.x ** 2).sum()
            loss.backward()
            return loss
        opt.step(closure)
        path.append(problem.x.detach().clone())
    return path


@pytest.mark.parametrize("name", sorted(n for n, kind in WEIGHT_DECAY.items() if kind == "coupled"))
def test_coupled_weight_decay_is_the_l2_penalty_on_the_gradient(name):
    options = {k: v for k, v in CASES[name][0].items() if k != "weight_decay"}
    got = run_bench(name, {**options, "weight_decay": DECAY}, make_problem(dim=4, kappa=20.0))
    expected = run_penalized(name, options, make_problem(dim=4, kappa=20.0), DECAY)
    plain = run_bench(name, {**options, "weight_decay": 0.0}, make_problem(dim=4, kappa=20.0))
    # the decay matters: without it the path is far from the path with it
    assert max((a - b).norm().item() for a, b in zip(plain, expected)) > 1e-2
    for t, (a, b) in enumerate(zip(got, expected)):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12), f"{name} differs at step {t}"


@pytest.mark.parametrize("name", sorted(WEIGHT_DECAY))
def test_weight_decay_matches_torch_optim_by_hand_gradient(name):
    """The same run against torch's own class fed g + λx by hand (coupled), or against the
    decoupled update x ← x(1 − αλ) then the step on g (AdamW), written out here."""
    options = {k: v for k, v in CASES[name][0].items() if k != "weight_decay"}
    got = run_bench(name, {**options, "weight_decay": DECAY}, make_problem(dim=3, kappa=10.0))
    problem = make_problem(dim=3, kappa=10.0)
    A = problem.hessian().double()
    x = problem.x.detach().clone().requires_grad_(True)
    torch_options = {"lr": options.get("lr", 1.0)}
    reference = {
        "sgd": lambda: torch.optim.SGD([x], **torch_options),
        "momentum": lambda: torch.optim.SGD([x], **torch_options, momentum=0.9),
        "nesterov": lambda: torch.optim.SGD([x], **torch_options, momentum=0.9, nesterov=True),
        "adagrad": lambda: torch.optim.Adagrad([x], **torch_options, eps=1e-7),
        "rmsprop": lambda: torch.optim.RMSprop([x], **torch_options, alpha=0.9),
        "adam": lambda: torch.optim.Adam([x], **torch_options),
        "adamw": lambda: torch.optim.Adam([x], **torch_options),
        "adadelta": lambda: torch.optim.Adadelta([x], lr=1.0, rho=0.9, eps=1e-6),
    }[name]()
    for t in range(1, STEPS + 1):
        with torch.no_grad():
            g = A @ x
            if WEIGHT_DECAY[name] == "coupled":
                g = g + DECAY * x
            else:
                x.mul_(1 - torch_options["lr"] * DECAY)
        x.grad = g.clone()
        reference.step()
        assert torch.allclose(got[t], x.detach(), rtol=1e-9, atol=1e-12), f"{name} step {t}"


# ---- state through a real file -------------------------------------------------------------
# Rosenbrock from (−1.2, 1): curved enough that no method is done within a few steps. The
# first-order methods get learning rates it tolerates; the rest take the registry's sample.
ROUND_TRIP_OPTIONS = {"sgd": {"lr": 1e-4}, "momentum": {"lr": 1e-4, "momentum": 0.9},
                      "nesterov": {"lr": 1e-4, "momentum": 0.9},
                      "nesterov_lookahead": {"lr": 1e-4, "momentum": 0.9},
                      "adamw": {"lr": 0.01, "weight_decay": 0.1}}
BEFORE, AFTER = 4, 4
# Newton steps with no learning rate: the next step depends on the point alone
MEMORYLESS = {"newton", "newton_cg", "scipy_newton_cg", "scipy_trust_exact"}


def rosenbrock_steps(optimizer, x: torch.Tensor, steps: int) -> list[torch.Tensor]:
    def loss_fn():
        return 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2
    path = []
    for _ in range(steps):
        optimizer.step(Objective(loss_fn, [x], Counter()))
        path.append(x.detach().clone())
    return path


@pytest.mark.parametrize("name", optimizers.OPTIMIZERS.names())
def test_state_saved_to_a_file_continues_identically(name, tmp_path):
    """N steps, torch.save, M more; a fresh optimizer loaded from the file (weights_only) at
    the saved point takes the same M steps, bit for bit."""
    options = ROUND_TRIP_OPTIONS.get(name, optimizers.OPTIMIZERS.get(name).sample)
    x = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    first = optimizers.build(name, [x], options)
    rosenbrock_steps(first, x, BEFORE)
    for group in first.param_groups:   # as a schedule would: the file must carry it
        if "lr" in group:
            group["lr"] *= 0.5
    torch.save({"x": x.detach().clone(), "optimizer": first.state_dict()}, tmp_path / "ckpt.pt")
    expected = rosenbrock_steps(first, x, AFTER)
    getattr(first, "close", lambda: None)()

    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    y = saved["x"].clone().requires_grad_(True)
    second = optimizers.build(name, [y], options)
    second.load_state_dict(saved["optimizer"])
    got = rosenbrock_steps(second, y, AFTER)
    getattr(second, "close", lambda: None)()
    for t, (a, b) in enumerate(zip(got, expected)):
        assert torch.equal(a, b), f"{name} differs {t + 1} steps after reloading: {a} vs {b}"
    assert not torch.equal(expected[-1], saved["x"]), "the steps after saving must move x"

    # the file's content matters: a fresh optimizer at the same point (no state, the lr it
    # was built with) steps differently, unless the method's step depends on the point only
    if name not in MEMORYLESS:
        z = saved["x"].clone().requires_grad_(True)
        fresh = optimizers.build(name, [z], options)
        fresh_path = rosenbrock_steps(fresh, z, AFTER)
        getattr(fresh, "close", lambda: None)()
        assert not all(torch.equal(a, b) for a, b in zip(fresh_path, expected)), name
