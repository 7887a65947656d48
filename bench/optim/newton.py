"""Newton's method, exact and Hessian-free."""
from __future__ import annotations

import torch

from bench.optim.flat import FlatOptimizer
from bench.optim.linesearch import LINE_SEARCHES, search


def _check(damping: float, line_search: str) -> None:
    if damping < 0:
        raise ValueError(f"damping must be at least 0, got {damping}")
    if line_search not in LINE_SEARCHES:
        raise ValueError(f"line_search must be one of {', '.join(LINE_SEARCHES)}")


class _NewtonStep(FlatOptimizer):
    """x ← x + t·d for a Newton direction d from `direction`, t from the line search."""

    @torch.no_grad()
    def step(self, closure):
        obj = self.objective(closure)
        group = self.param_groups[0]
        x = obj.flat()
        with torch.enable_grad():
            loss, g_graph = obj.value_and_gradient(create_graph=True)
            d = self.direction(obj, g_graph, group)
        with torch.enable_grad():
            t, _g, _f = search(group["line_search"], obj, x, d, loss, g_graph.detach(), g_graph)
        obj.set_flat(x + t * d)
        return loss

    def direction(self, obj, g_graph, group) -> torch.Tensor:
        raise NotImplementedError


class Newton(_NewtonStep):
    """Exact Newton: θ ← θ + t·d with (H + λI) d = −∇f, from the second-order Taylor model.

    H is the dense Hessian (all n Hessian-vector products at once), λ = `damping`
    (Levenberg–Marquardt) and t = 1 unless `line_search` is set. When H + λI is not positive
    definite (a saddle, a non-convex region) the Newton direction may point uphill; then, and
    only then, the step falls back to −∇f, so a line search always has a descent direction.
    No learning rate; O(n²) memory and an O(n³) solve per step, hence `max_params`.
    """

    def __init__(self, params, damping: float = 0.0, line_search: str = "none",
                 max_params: int = FlatOptimizer.max_params_default):
        _check(damping, line_search)
        super().__init__(params, dict(damping=damping, line_search=line_search,
                                      max_params=max_params))

    def direction(self, obj, g_graph, group) -> torch.Tensor:
        with torch.enable_grad():
            hessian = obj.hessian(g_graph)
        g = g_graph.detach()
        hessian = hessian + group["damping"] * torch.eye(len(g), dtype=g.dtype, device=g.device)
        factor, info = torch.linalg.cholesky_ex(hessian)
        if int(info) == 0:
            return torch.cholesky_solve(-g.unsqueeze(1), factor).squeeze(1)
        d, info = torch.linalg.solve_ex(hessian, -g)   # no exception on a singular matrix
        usable = int(info) == 0 and bool(torch.isfinite(d).all()) and float(g @ d) < 0
        return d if usable else -g


class NewtonCG(_NewtonStep):
    """Hessian-free (truncated) Newton: solve (H + λI) d = −∇f by conjugate gradient using only
    Hessian-vector products (double backward), stopping at ‖r‖ ≤ `cg_tol`·‖∇f‖, after
    `cg_iters` products, or at the first direction of non-positive curvature (then the
    direction found so far, or −∇f on the first iteration). Memory O(n): for models too big
    for a dense Hessian.
    """

    def __init__(self, params, damping: float = 0.0, cg_iters: int = 50, cg_tol: float = 1e-5,
                 line_search: str = "none"):
        _check(damping, line_search)
        if cg_iters < 1 or not cg_tol > 0:
            raise ValueError("cg_iters must be at least 1 and cg_tol positive")
        super().__init__(params, dict(damping=damping, cg_iters=cg_iters, cg_tol=cg_tol,
                                      line_search=line_search))

    def direction(self, obj, g_graph, group) -> torch.Tensor:
        with torch.enable_grad():
            return self._cg(obj, g_graph, group)

    @staticmethod
    def _cg(obj, g_graph, group) -> torch.Tensor:
        g = g_graph.detach()
        d, r = torch.zeros_like(g), -g
        p, rr = r.clone(), float(r @ r)
        stop = group["cg_tol"] ** 2 * rr
        for _ in range(group["cg_iters"]):
            hp = obj.hvp(g_graph, p) + group["damping"] * p
            curvature = float(p @ hp)
            if curvature <= 0:
                return d if d.any() else -g
            alpha = rr / curvature
            d += alpha * p
            r -= alpha * hp
            rr, rr_old = float(r @ r), rr
            if rr <= stop:
                break
            p = r + (rr / rr_old) * p
        return d
