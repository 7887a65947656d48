"""Shared base of the optimizers that work on all parameters as one flat vector."""
from __future__ import annotations

import torch

from bench.objective import Objective


class FlatOptimizer(torch.optim.Optimizer):
    """One parameter group seen as a single vector x ∈ Rⁿ; state lives under the first
    parameter (as in torch.optim.LBFGS), so `state_dict` round-trips it."""

    max_params_default = 5000

    def __init__(self, params, defaults: dict):
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError(f"{type(self).__name__} takes a single parameter group")
        self._params = self.param_groups[0]["params"]
        limit = defaults.get("max_params")
        n = sum(p.numel() for p in self._params)
        if limit is not None and n > limit:
            raise ValueError(too_many_params_message(type(self).__name__, n, limit))

    @property
    def flat_state(self) -> dict:
        return self.state[self._params[0]]

    @staticmethod
    def objective(closure) -> Objective:
        if not isinstance(closure, Objective):
            raise TypeError("this optimizer needs the suite's Objective as its closure "
                            "(bench.objective.Objective), for Hessian products and counting")
        return closure


def too_many_params_message(name: str, n: int, limit: int) -> str:
    return (f"{name} forms a dense {n}×{n} matrix: the problem has {n:,} parameters, above "
            f"the limit max_params={limit:,}; use newton_cg or lbfgs (no dense matrix), "
            "or raise max_params")
