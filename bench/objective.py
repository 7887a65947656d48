"""The closure every optimizer steps with, and the fair count of what each step evaluated.

`Objective` is a torch.optim closure (calling it zeroes the grads, computes the loss on the
step's batch, backpropagates and returns the loss) that also offers what second-order methods
need: the loss alone, a flat gradient with its graph, Hessian-vector products and dense
Hessians. Every evaluation goes through it, so function, gradient, Hessian-vector and Hessian
evaluations are counted in one place, for first-order and second-order methods alike.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import torch
from torch.nn.utils import parameters_to_vector

# Cost of each evaluation in gradient equivalents (one loss + backward = 1). A loss alone is a
# forward pass, about half a gradient; a Hessian-vector product by double backward measured
# 1.9–2.3 gradients on this suite's CPU (PERF-FACTS.md), taken as 2; a dense Hessian is n of them.
COST_FUNCTION_ONLY = 0.5
COST_HVP = 2.0


class Objective:
    def __init__(self, loss_fn: Callable[[], torch.Tensor], params: list[torch.Tensor],
                 counts: Counter, hessian_fn: Callable[[], torch.Tensor | None] | None = None,
                 fixed_batch: bool = False):
        self.loss_fn = loss_fn
        self.params = params
        self.counts = counts
        # True when every step sees the same data (full batch, no noise): a value computed at
        # the end of one step may then be reused at the start of the next
        self.fixed_batch = fixed_batch
        self.hessian_fn = hessian_fn   # a closed form at the current parameters, if known

    # -- torch.optim closure protocol -------------------------------------------------------
    def __call__(self) -> torch.Tensor:
        with torch.enable_grad():
            for p in self.params:
                p.grad = None
            loss = self.loss_fn()
            loss.backward()
        self.counts["function"] += 1
        self.counts["gradient"] += 1
        return loss.detach()

    # -- what second-order methods need ----------------------------------------------------------
    def loss(self, graph: bool = False) -> torch.Tensor:
        """The loss at the current parameters; with `graph`, differentiable in them."""
        self.counts["function"] += 1
        with torch.set_grad_enabled(graph):
            out = self.loss_fn()
        return out if graph else out.detach()

    def gradient(self, loss: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        """∇f as one flat vector (with its own graph if Hessian products will follow)."""
        self.counts["gradient"] += 1
        grads = torch.autograd.grad(loss, self.params, create_graph=create_graph)
        return torch.cat([g.reshape(-1) for g in grads])

    def value_and_gradient(self, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            loss = self.loss(graph=True)
            grad = self.gradient(loss, create_graph)
        return loss.detach(), grad if create_graph else grad.detach()

    def hvp(self, grad: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        """H·v by double backward through `grad` (which must carry its graph)."""
        self.counts["hvp"] += 1
        out = torch.autograd.grad(grad, self.params, vector, retain_graph=True)
        return torch.cat([o.reshape(-1) for o in out])

    def hessian(self, grad: torch.Tensor) -> torch.Tensor:
        """The dense n×n Hessian: the problem's closed form when it has one, else all n
        Hessian-vector products at once (vmapped double backward)."""
        self.counts["hessian"] += 1
        closed = self.hessian_fn() if self.hessian_fn is not None else None
        if closed is not None:
            return closed
        eye = torch.eye(grad.numel(), dtype=grad.dtype, device=grad.device)
        rows = torch.autograd.grad(grad, self.params, eye, retain_graph=True,
                                   is_grads_batched=True)
        return torch.cat([r.reshape(grad.numel(), -1) for r in rows], dim=1)

    # -- moving along a direction ------------------------------------------------------------------
    def flat(self) -> torch.Tensor:
        return parameters_to_vector(self.params).detach()

    def set_flat(self, vector: torch.Tensor) -> None:
        # copy_ (not vector_to_parameters, which makes parameters views of `vector`)
        offset = 0
        with torch.no_grad():
            for p in self.params:
                p.copy_(vector[offset:offset + p.numel()].view_as(p))
                offset += p.numel()


def gradient_equivalents(counts: Counter, dim: int) -> float:
    function_only = counts["function"] - counts["gradient"]
    return (counts["gradient"] + COST_FUNCTION_ONLY * max(0, function_only)
            + COST_HVP * (counts["hvp"] + dim * counts["hessian"]))


def count_fields(counts: Counter, dim: int) -> dict:
    return {"function_evals": counts["function"], "gradient_evals": counts["gradient"],
            "hvp_evals": counts["hvp"], "hessian_evals": counts["hessian"],
            "grad_equivalents": gradient_equivalents(counts, dim)}
