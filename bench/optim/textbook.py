"""The lecture notes' textbook forms that torch.optim does not offer."""
from __future__ import annotations

import torch


class Adam(torch.optim.Optimizer):
    """Adam as written in the notes, with bias correction optional (the notes' ablation):

        m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²
        m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ)   (or m̂ = m, v̂ = v without bias correction)
        x ← x − α m̂ / (√v̂ + ε)

    Without bias correction the first steps are badly scaled: with m, v started at 0 the
    first step is α(1−β₁)/√(1−β₂) ≈ 3.16α per coordinate rather than α. The registry uses
    torch.optim.Adam when bias correction is on; this form is tested against it.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 bias_correction: bool = True):
        if not lr >= 0 or not eps >= 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"invalid Adam settings lr={lr}, betas={betas}, eps={eps}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      bias_correction=bias_correction))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = float(state["step"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                if group["bias_correction"]:
                    m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
                else:
                    m_hat, v_hat = m, v
                p.addcdiv_(m_hat, v_hat.sqrt().add_(group["eps"]), value=-group["lr"])
        return loss


class NesterovLookahead(torch.optim.Optimizer):
    """Nesterov momentum in the notes' original form, with the gradient at the look-ahead point:

        v ← ρv − α∇f(x + ρv);  x ← x + v

    torch's `nesterov=True` iterates x̃ = x + ρv instead (the change-of-variables form); this
    one keeps x itself, at the price of moving the parameters to x + ρv for the closure.
    """

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.9):
        if not lr >= 0 or not 0 <= momentum < 1:
            raise ValueError(f"invalid settings lr={lr}, momentum={momentum}")
        super().__init__(params, dict(lr=lr, momentum=momentum))

    @torch.no_grad()
    def step(self, closure):
        if closure is None:
            raise ValueError("NesterovLookahead needs a closure: it evaluates ∇f(x + ρv)")
        velocities = []
        for group in self.param_groups:
            for p in group["params"]:
                v = self.state[p].setdefault("velocity", torch.zeros_like(p))
                p.add_(v, alpha=group["momentum"])          # move to the look-ahead point
                velocities.append((p, v, group))
        with torch.enable_grad():
            loss = closure()
        for p, v, group in velocities:
            p.sub_(v, alpha=group["momentum"])              # back to x
            if p.grad is not None:
                v.mul_(group["momentum"]).sub_(p.grad, alpha=group["lr"])
            p.add_(v)
        return loss
