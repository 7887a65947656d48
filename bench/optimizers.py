"""The OPTIMIZERS registry: torch.optim algorithms under the lecture notes' names.

Nothing here re-implements a torch.optim update. Factories take the parameters first and
then exactly the keys a spec may set. Any `torch.optim.Optimizer` subclass can also be named
by import path (`torch.optim.NAdam`); its constructor signature is then the schema.
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Literal

import torch

from bench.optim import textbook
from bench.optim.bfgs import BFGS
from bench.optim.flat import too_many_params_message
from bench.optim.newton import Newton, NewtonCG
from bench.optim.scipy_driver import ScipyMinimize
from bench.registry import ChoiceError, Entry, Registry


class OptimizerRegistry(Registry):
    """The registered optimizers, and any torch.optim.Optimizer subclass by import path."""

    def get(self, name: str) -> Entry:
        return super().get(name) if not is_import_path(name) else _by_import_path(name)


OPTIMIZERS = OptimizerRegistry("optimizer")
_reg = OPTIMIZERS.register


def dense_limit(name: str):
    """The suitability rule of a method that forms an n×n matrix: big problems are refused
    at validation, not after hours of queueing."""
    def unsuitable(problem, max_params: int | None = 5000, **_params) -> str | None:
        n = sum(p.numel() for p in problem.parameters())
        if max_params is not None and n > max_params:
            return too_many_params_message(name, n, max_params)
        return None
    return unsuitable


@_reg("sgd", skip_params=1, sample={"lr": 0.1})
def sgd(params, lr: float = 0.01, weight_decay: float = 0.0):
    """Gradient descent: x ← x − α∇f(x).

    Args:
        lr: α > 0, the learning rate (the notes' step size α, η in some chapters); a schedule
            multiplies it each step.
        weight_decay: λ ≥ 0, coupled L2 decay: λx is added to the gradient, the same as adding
            (λ/2)‖x‖² to the loss, so the notes' L2 term λ'ΣW² ("weight decay") is λ = 2λ'. Unlike
            the `l2` regularizer it applies to every parameter, biases included.
    """
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)


@_reg("momentum", skip_params=1, sample={"lr": 0.05, "momentum": 0.9})
def momentum(params, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0):
    """Heavy ball: v ← ρv + ∇f(x); x ← x − αv.

    The notes' equivalent form m ← βm + η∇J; θ ← θ − m has β = ρ and η = α; the terminal
    velocity is 1/(1 − ρ) times the gradient.

    Args:
        lr: α > 0, the learning rate.
        momentum: ρ, 0 ≤ ρ < 1, the heavy-ball (friction) coefficient: 0 is plain gradient
            descent; the notes use 0.9 or 0.99.
        weight_decay: λ ≥ 0, coupled L2 decay: λx is added to the gradient, the same as adding
            (λ/2)‖x‖² to the loss, so the notes' L2 term λ'ΣW² ("weight decay") is λ = 2λ'. Unlike
            the `l2` regularizer it applies to every parameter, biases included.
    """
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


@_reg("nesterov", skip_params=1, sample={"lr": 0.05, "momentum": 0.9})
def nesterov(params, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0):
    """Nesterov momentum in torch's change-of-variables form (the iterate is x̃ = x + ρv).

    torch writes it v ← ρv + ∇f(x̃); x̃ ← x̃ − α(∇f(x̃) + ρv), the notes' x̃ ← x̃ − ρv_old +
    (1+ρ)v with their v = −α times this one; only ∇f at the iterate is needed. See
    `nesterov_lookahead` for the form with the gradient at the look-ahead point x + ρv.

    Args:
        lr: α > 0, the learning rate.
        momentum: ρ, 0 < ρ < 1, the momentum coefficient; torch refuses 0 with Nesterov.
        weight_decay: λ ≥ 0, coupled L2 decay: λx is added to the gradient, the same as adding
            (λ/2)‖x‖² to the loss, so the notes' L2 term λ'ΣW² ("weight decay") is λ = 2λ'. Unlike
            the `l2` regularizer it applies to every parameter, biases included.
    """
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True,
                           weight_decay=weight_decay)


@_reg("adagrad", skip_params=1, sample={"lr": 0.1})
def adagrad(params, lr: float = 0.01, eps: float = 1e-7, weight_decay: float = 0.0):
    """s ← s + g²; x ← x − α g / (√s + ε), ε = 1e-7 as in the notes.

    AdaGrad: s sums every squared gradient, so the effective step α/√s keeps shrinking (the
    notes' "decays too much over time").

    Args:
        lr: α > 0, the learning rate (before the per-coordinate division by √s).
        eps: ε > 0, added to √s to avoid division by zero; the notes' 1e-7 (torch's own
            default is 1e-10).
        weight_decay: λ ≥ 0, coupled L2 decay: λx is added to the gradient, the same as adding
            (λ/2)‖x‖² to the loss, so the notes' L2 term λ'ΣW² ("weight decay") is λ = 2λ'. Unlike
            the `l2` regularizer it applies to every parameter, biases included.
    """
    return torch.optim.Adagrad(params, lr=lr, eps=eps, weight_decay=weight_decay)


@_reg("rmsprop", skip_params=1, sample={"lr": 0.01, "alpha": 0.9})
def rmsprop(params, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
            momentum: float = 0.0, weight_decay: float = 0.0):
    """s ← αs + (1−α)g²; x ← x − η g / (√s + ε)  (α is the notes' decay rate).

    RMSProp: AdaGrad with a leaky (exponentially decaying) average of g² instead of a sum.
    Parameter names are torch's: `alpha` is the decay rate, `lr` the step size.

    Args:
        lr: η > 0, the learning rate (the notes' `learning_rate`, α in their other updates).
        alpha: 0 ≤ alpha < 1, the decay rate of the squared-gradient average: the notes'
            `decay_rate` (β in s ← βs + (1−β)g²), usually 0.9 or 0.99. Not a learning rate.
        eps: ε > 0, added to √s to avoid division by zero (the notes use 1e-7).
        momentum: μ, 0 ≤ μ < 1: torch's momentum on the scaled step, b ← μb + g/(√s + ε);
            x ← x − ηb. 0 is the notes' RMSProp.
        weight_decay: λ ≥ 0, coupled L2 decay: λx is added to the gradient, the same as adding
            (λ/2)‖x‖² to the loss, so the notes' L2 term λ'ΣW² ("weight decay") is λ = 2λ'. Unlike
            the `l2` regularizer it applies to every parameter, biases included.
    """
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=eps, momentum=momentum,
                               weight_decay=weight_decay)


@_reg("adam", skip_params=1, sample={"lr": 0.01})
def adam(params, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
         eps: float = 1e-8, weight_decay: float = 0.0, bias_correction: bool = True):
    """Adam: x ← x − α m̂ / (√v̂ + ε); `bias_correction: false` is the notes' ablation.

    m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ). The notes call
    β₁ = 0.9, β₂ = 0.999 with α = 1e-3 or 5e-4 "a great starting point".

    Args:
        lr: α > 0, the learning rate.
        beta1: β₁, 0 ≤ β₁ < 1, decay rate of the first moment m (the momentum-like average
            of g).
        beta2: β₂, 0 ≤ β₂ < 1, decay rate of the second moment v (the RMSProp-like average
            of g²).
        eps: ε > 0, added to √v̂ to avoid division by zero (the notes use 1e-7).
        weight_decay: λ ≥ 0, coupled L2 decay: λx is added to g before the moments, so it is
            rescaled by 1/√v̂ like the gradient (use `adamw` for decoupled decay). Must be 0
            when `bias_correction` is false.
        bias_correction: divide m and v by (1−β₁ᵗ) and (1−β₂ᵗ). false is the notes' ablation
            without it: m and v start at 0, so the first steps are ≈ α(1−β₁)/√(1−β₂) ≈ 3.16α
            per coordinate rather than α (run by the suite's textbook Adam).
    """
    if not bias_correction:
        if weight_decay:
            raise ValueError("adam without bias correction takes no weight_decay (use a "
                             "regularizer)")
        return textbook.Adam(params, lr=lr, betas=(beta1, beta2), eps=eps, bias_correction=False)
    return torch.optim.Adam(params, lr=lr, betas=(beta1, beta2), eps=eps,
                            weight_decay=weight_decay)


@_reg("adamw", skip_params=1, sample={"lr": 0.01, "weight_decay": 0.1})
def adamw(params, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
          eps: float = 1e-8, weight_decay: float = 1e-2):
    """Adam with decoupled weight decay: x ← x(1 − αλ) before the Adam step.

    Args:
        lr: α > 0, the learning rate (it also scales the decay, schedule included).
        beta1: β₁, 0 ≤ β₁ < 1, decay rate of the first moment m.
        beta2: β₂, 0 ≤ β₂ < 1, decay rate of the second moment v.
        eps: ε > 0, added to √v̂ to avoid division by zero.
        weight_decay: λ ≥ 0, the decoupled decay rate: x shrinks by the factor (1 − αλ) each
            step, outside the adaptive scaling (not the same as an L2 term in the loss).
    """
    return torch.optim.AdamW(params, lr=lr, betas=(beta1, beta2), eps=eps,
                             weight_decay=weight_decay)


@_reg("adadelta", skip_params=1, sample={})
def adadelta(params, rho: float = 0.9, eps: float = 1e-6, lr: float = 1.0,
             weight_decay: float = 0.0):
    """Δθ = −(RMS[Δθ]ₜ₋₁ / RMS[g]ₜ) g: no learning rate (lr = 1 scales the step, as in torch).

    AdaDelta: E[g²] ← ρE[g²] + (1−ρ)g², RMS[x] = √(E[x²] + ε); after the step
    E[Δθ²] ← ρE[Δθ²] + (1−ρ)Δθ², and θ ← θ + lr·Δθ.

    Args:
        rho: ρ, 0 ≤ ρ < 1, the decay rate of both running averages (the notes' γ, the
            exponential moving average that keeps the sum of squares from growing).
        eps: ε > 0, inside both RMS terms. It is more than a guard against division by zero:
            RMS[Δθ] starts at √ε, so ε sets the size of the first steps.
        lr: multiplier of Δθ, > 0; not in the notes (1 is the notes' method). A schedule
            scales it like any learning rate.
        weight_decay: λ ≥ 0, coupled L2 decay: λx is added to the gradient, the same as adding
            (λ/2)‖x‖² to the loss, so the notes' L2 term λ'ΣW² ("weight decay") is λ = 2λ'. Unlike
            the `l2` regularizer it applies to every parameter, biases included.
    """
    return torch.optim.Adadelta(params, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay)


@_reg("nesterov_lookahead", skip_params=1, sample={"lr": 0.05, "momentum": 0.9})
def nesterov_lookahead(params, lr: float = 0.01, momentum: float = 0.9):
    """Nesterov in the notes' form: v ← ρv − α∇f(x + ρv); x ← x + v.

    Needs the closure at the look-ahead point x + ρv (one evaluation per step, as for SGD).

    Args:
        lr: α > 0, the learning rate.
        momentum: ρ, 0 ≤ ρ < 1, the momentum coefficient; 0 is plain gradient descent.
    """
    return textbook.NesterovLookahead(params, lr=lr, momentum=momentum)


# ---- second order and quasi-Newton -------------------------------------------------------------
LineSearch = Literal["none", "backtracking", "exact", "strong_wolfe"]


@_reg("newton", skip_params=1, sample={}, unsuitable=dense_limit("newton"))
def newton(params, damping: float = 0.0, line_search: LineSearch = "none",
           max_params: int = 5000):
    """Exact Newton: (H + λI)d = −∇f with the dense Hessian; no learning rate.

    The step x ← x + t·d comes from the second-order Taylor model (the notes' θ* = θ₀ −
    H⁻¹∇J(θ₀)); where H + λI is not positive definite and d points uphill, −∇f is used.

    Args:
        damping: λ ≥ 0, Levenberg–Marquardt damping added to the Hessian's diagonal; 0 is the
            notes' pure Newton. Larger λ moves the step toward gradient descent with step 1/λ.
        line_search: how far to go along the direction d: `none` takes t = 1 (the pure Newton
            step), `backtracking` halves t from 1 until Armijo's sufficient decrease holds,
            `exact` minimises f(x + t d) by Newton's method on t (Hessian-vector products), and
            `strong_wolfe` is torch.optim.LBFGS's strong-Wolfe search.
        max_params: the largest number of parameters n accepted; above it the cell is refused
            at validation, since the method stores an n×n matrix (O(n²) memory, an O(n³) solve
            per step).
    """
    return Newton(params, damping=damping, line_search=line_search, max_params=max_params)


@_reg("newton_cg", skip_params=1, sample={})
def newton_cg(params, damping: float = 0.0, cg_iters: int = 50, cg_tol: float = 1e-5,
              line_search: LineSearch = "none"):
    """Hessian-free Newton: conjugate gradient on Hessian-vector products.

    Truncated Newton: (H + λI)d = −∇f is solved approximately by CG using only Hessian-vector
    products (double backward), so memory is O(n) and no `max_params` limit is needed. CG
    also stops at the first direction of non-positive curvature.

    Args:
        damping: λ ≥ 0, Levenberg–Marquardt damping added to the Hessian's diagonal.
        cg_iters: the most CG iterations (Hessian-vector products) per step, ≥ 1; n of them
            solve the system exactly in exact arithmetic.
        cg_tol: > 0, the relative CG tolerance: CG stops at ‖r‖ ≤ cg_tol·‖∇f‖ (r the residual
            of the Newton system).
        line_search: how far to go along the direction d: `none` takes t = 1 (the pure Newton
            step), `backtracking` halves t from 1 until Armijo's sufficient decrease holds,
            `exact` minimises f(x + t d) by Newton's method on t (Hessian-vector products), and
            `strong_wolfe` is torch.optim.LBFGS's strong-Wolfe search.
    """
    return NewtonCG(params, damping=damping, cg_iters=cg_iters, cg_tol=cg_tol,
                    line_search=line_search)


@_reg("bfgs", skip_params=1, sample={}, unsuitable=dense_limit("bfgs"))
def bfgs(params, line_search: LineSearch = "strong_wolfe", max_params: int = 5000):
    """BFGS with a dense inverse-Hessian approximation and a line search.

    The notes' quasi-Newton BFGS: d = −H∇f, then H gets the rank-two BFGS update from
    s = Δx, y = Δ∇f; O(n²) memory and work per step.

    Args:
        line_search: how far to go along d: `strong_wolfe` (torch.optim.LBFGS's search, the
            usual choice), `exact` (minimises f(x + t d) by Newton's method on t; BFGS then
            ends in at most n steps on a quadratic), `backtracking` (Armijo, halving t from 1)
            or `none` (t = 1, so the first step, with H = I, is x − ∇f unscaled).
        max_params: the largest number of parameters n accepted; above it the cell is refused
            at validation, since the method stores an n×n matrix (O(n²) memory).
    """
    return BFGS(params, line_search=line_search, max_params=max_params)


@_reg("lbfgs", skip_params=1, sample={})
def lbfgs(params, lr: float = 1.0, history: int = 10,
          line_search: Literal["strong_wolfe", "none"] = "strong_wolfe", max_iter: int = 1,
          tolerance_grad: float = 1e-12, tolerance_change: float = 1e-14):
    """torch.optim.LBFGS; one step = `max_iter` iterations (default 1).

    The notes' L-BFGS: the inverse Hessian is never formed, only the last `history` pairs
    (s, y) are kept; works best full-batch and deterministic.

    Args:
        lr: > 0, the step length t: with `strong_wolfe` the line search's first trial step,
            with `none` the fixed step (the very first iteration uses lr·min(1, 1/‖∇f‖₁)).
            A schedule scales it like any learning rate.
        history: m ≥ 1, the number of (s, y) pairs kept (torch's history_size); O(m·n) memory.
        line_search: `strong_wolfe` (torch's strong-Wolfe search, up to 25 evaluations per
            iteration) or `none` (fixed step lr).
        max_iter: ≥ 1, L-BFGS iterations per benchmark step, all on that step's batch.
        tolerance_grad: ≥ 0; a step leaves x unchanged once max|∂f/∂xᵢ| ≤ tolerance_grad (the
            gradient's ∞-norm). Far below torch's 1e-7 so the budget and target end a run.
        tolerance_change: ≥ 0; an iteration ends the step early when the loss changes by less
            than this, the move max|t·dᵢ| is no larger, or ∇fᵀd > −tolerance_change.
    """
    # torch's default max_eval = 1.25·max_iter leaves the line search no evaluation when
    # max_iter = 1 (the step never moves); allow each iteration 25 as its line search does.
    # Its stopping tolerances (1e-7, 1e-9) are tightened: the budget and target decide when a
    # benchmark stops, not the optimizer's own early exit.
    return torch.optim.LBFGS(params, lr=lr, history_size=history, max_iter=max_iter,
                             max_eval=25 * max_iter + 1, tolerance_grad=tolerance_grad,
                             tolerance_change=tolerance_change,
                             line_search_fn=None if line_search == "none" else line_search)


# scipy's own iteration caps (200·n for BFGS, 15000 for L-BFGS-B) and L-BFGS-B's relative
# decrease test are lifted: the budget and the target end a benchmark, as for every method.
_UNLIMITED = {"maxiter": 10**9}


@_reg("scipy_bfgs", skip_params=1, sample={})
def scipy_bfgs(params, gtol: float = 1e-8):
    """scipy.optimize.minimize(method='BFGS'), one iteration per step.

    scipy's own BFGS (dense inverse Hessian, Wolfe line search) in float64 on the host.

    Args:
        gtol: > 0; scipy's run ends when ‖∇f‖_∞ < gtol, and later steps leave x unchanged.
    """
    return ScipyMinimize(params, method="BFGS", options={"gtol": gtol, **_UNLIMITED})


@_reg("scipy_lbfgsb", skip_params=1, sample={})
def scipy_lbfgsb(params, history: int = 10, gtol: float = 1e-8):
    """scipy.optimize.minimize(method='L-BFGS-B'), one iteration per step.

    scipy's L-BFGS-B (Fortran), without bounds, in float64 on the host.

    Args:
        history: m ≥ 1, the number of (s, y) correction pairs kept (scipy's `maxcor`).
        gtol: > 0; scipy's run ends when the largest projected-gradient component is ≤ gtol
            (with no bounds, ‖∇f‖_∞ ≤ gtol), and later steps leave x unchanged.
    """
    return ScipyMinimize(params, method="L-BFGS-B", options={
        "maxcor": history, "gtol": gtol, "ftol": 0.0, "maxfun": _UNLIMITED["maxiter"],
        **_UNLIMITED})


@_reg("scipy_newton_cg", skip_params=1, sample={})
def scipy_newton_cg(params, xtol: float = 1e-8):
    """scipy.optimize.minimize(method='Newton-CG') on torch Hessian-vector products.

    scipy's truncated Newton (inner CG, then a line search) in float64 on the host.

    Args:
        xtol: > 0, scipy's average relative step tolerance: the run ends when the step is
            small, Σ|Δxᵢ| ≤ n·xtol, and later steps leave x unchanged.
    """
    return ScipyMinimize(params, method="Newton-CG", options={"xtol": xtol, **_UNLIMITED})


@_reg("scipy_trust_exact", skip_params=1, sample={},
      unsuitable=dense_limit("scipy_trust_exact"))
def scipy_trust_exact(params, gtol: float = 1e-8, max_params: int = 5000):
    """scipy.optimize.minimize(method='trust-exact') on the torch dense Hessian.

    A trust-region Newton method that solves the subproblem nearly exactly; no learning rate.

    Args:
        gtol: > 0; scipy's run ends when ‖∇f‖₂ < gtol, and later steps leave x unchanged.
        max_params: the largest number of parameters n accepted; above it the cell is refused
            at validation, since the method stores an n×n matrix (O(n²) memory, an O(n³)
            factorisation per step).
    """
    return ScipyMinimize(params, method="trust-exact", options={"gtol": gtol, **_UNLIMITED},
                         max_params=max_params)


def is_import_path(name: str) -> bool:
    return "." in name


def _by_import_path(name: str) -> Entry:
    """A torch.optim.Optimizer subclass named by import path (`torch.optim.NAdam`)."""
    module_name, _, attr = name.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ChoiceError(f"cannot import optimizer '{name}': {exc}") from None
    if not (inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer)):
        raise ChoiceError(f"'{name}' is not a torch.optim.Optimizer subclass")
    return Entry(name, obj, about=f"{name} by import path", skip_params=1)


def build(name: str, params: list[torch.Tensor], options: dict) -> torch.optim.Optimizer:
    factory: Callable = OPTIMIZERS.get(name).factory
    return factory(params, **options)
