"""BFGS with a dense inverse-Hessian approximation."""
from __future__ import annotations

import torch

from bench.optim.flat import FlatOptimizer
from bench.optim.linesearch import LINE_SEARCHES, search


class BFGS(FlatOptimizer):
    """Quasi-Newton BFGS: d = −H∇f, a line search for t, then with s = t·d, y = Δ∇f, ρ = 1/yᵀs

        H ← (I − ρsyᵀ) H (I − ρysᵀ) + ρssᵀ

    H starts as I and is rescaled by yᵀs / yᵀy before the first update (Nocedal & Wright
    eq. 6.20); an update with yᵀs ≤ 1e-10·‖s‖‖y‖ is skipped so H stays positive definite.
    With `line_search: exact` on a quadratic it terminates in at most n iterations; O(n²)
    memory and work per step, hence `max_params`.
    """

    def __init__(self, params, line_search: str = "strong_wolfe",
                 max_params: int = FlatOptimizer.max_params_default):
        if line_search not in LINE_SEARCHES:
            raise ValueError(f"line_search must be one of {', '.join(LINE_SEARCHES)}")
        super().__init__(params, dict(line_search=line_search, max_params=max_params))

    @torch.no_grad()
    def step(self, closure):
        obj = self.objective(closure)
        state = self.flat_state
        x = obj.flat()
        exact = self.param_groups[0]["line_search"] == "exact"
        g_graph = None
        if obj.fixed_batch and not exact and "x" in state and torch.equal(state["x"], x):
            loss, g = state["f"], state["g"]   # the last line search ended here: no re-evaluation
        else:
            with torch.enable_grad():
                loss, g_graph = obj.value_and_gradient(create_graph=exact)
            g = g_graph.detach()
        if "H" not in state:
            state["H"] = torch.eye(len(g), dtype=g.dtype, device=g.device)
        d = -state["H"] @ g
        if float(g @ d) >= 0:   # lost positive definiteness numerically: restart from I
            state["H"] = torch.eye(len(g), dtype=g.dtype, device=g.device)
            d = -g
        with torch.enable_grad():
            t, g_new, f_new = search(self.param_groups[0]["line_search"], obj, x, d, loss, g,
                                     g_graph if exact else None)
        x_new = x + t * d
        obj.set_flat(x_new)
        if g_new is None or f_new is None:
            f_new, g_new = obj.value_and_gradient()
        self._update(state, x_new - x, g_new - g)
        state["x"], state["f"], state["g"] = x_new, torch.as_tensor(f_new).detach(), g_new
        return loss

    @staticmethod
    def _update(state: dict, s: torch.Tensor, y: torch.Tensor) -> None:
        ys = float(y @ s)
        if ys <= 1e-10 * float(s.norm() * y.norm()):
            return
        H = state["H"]
        if not state.get("scaled"):
            H.mul_(ys / float(y @ y))
            state["scaled"] = True
        rho = 1.0 / ys
        Hy = H @ y
        # (I − ρsyᵀ)H(I − ρysᵀ) + ρssᵀ, expanded so it costs two outer products
        H.add_(rho * ((1 + rho * float(y @ Hy)) * torch.outer(s, s)
                      - torch.outer(Hy, s) - torch.outer(s, Hy)))
