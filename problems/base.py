"""What the training loop needs from a problem, and the shared code of analytic landscapes.

A problem owns its parameters, draws its own batches from the cell's generator, and computes
the training loss in three parts, as AlgoPerf's `model_fn`/`loss_fn` do: `inputs(batch)`
gives the batch's inputs and targets, `forward(inputs)` the outputs, `criterion(outputs,
targets)` the loss. The loop composes them, so a regularizer can act between the parts
(noise on the inputs, smoothed targets). It evaluates named metrics; analytic problems know
their minimum (when there is one) so suboptimality and distance to the optimum are recorded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class Context:
    """What the suite supplies to every problem factory: seed, device, generator and the
    cell's batch size (None: full batch)."""
    seed: int
    device: torch.device
    generator: torch.Generator
    batch_size: int | None = None
    data_dir: str | None = None   # the spec's data_dir: looked in first for datasets


@runtime_checkable
class Problem(Protocol):
    """The interface the one training loop uses (BaseProblem gives the defaults)."""
    accepts_batch_size: bool          # has data to batch (else a batch_size is an error)
    steps_per_epoch: int
    samples_per_step: int
    train_size: int | None            # training examples a batch indexes (None: no data)
    cheap_metrics: frozenset          # metrics cheap enough to check after every step

    def parameters(self) -> list[torch.Tensor]: ...
    def sample_batch(self, generator: torch.Generator) -> Any: ...
    def inputs(self, batch: Any) -> tuple[Any, Any]: ...
    def forward(self, inputs: Any) -> torch.Tensor: ...
    def criterion(self, outputs: torch.Tensor, targets: Any) -> torch.Tensor: ...
    def loss(self, batch: Any) -> torch.Tensor: ...
    def samples_seen(self, steps: int) -> int: ...
    def evaluate(self) -> dict[str, float]: ...
    def metric_names(self) -> list[str]: ...
    def hessian(self, batch: Any) -> torch.Tensor | None: ...


@runtime_checkable
class Network(Protocol):
    """A problem whose parameters are a torch module's: inits, activation statistics and
    model-changing regularizers apply to it."""
    model: torch.nn.Module
    activation: str

    def activation_layers(self) -> list[torch.nn.Module]: ...
    def probe_inputs(self, count: int = 1000) -> torch.Tensor: ...


class BaseProblem:
    """Defaults of the Problem interface: full batch, one step per epoch, autograd Hessians."""
    accepts_batch_size = False
    steps_per_epoch = 1
    samples_per_step = 1
    train_size: int | None = None
    cheap_metrics: frozenset = frozenset()

    def parameters(self) -> list[torch.Tensor]:
        raise NotImplementedError

    def sample_batch(self, generator: torch.Generator) -> Any:
        return None

    def inputs(self, batch: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def forward(self, inputs: Any) -> torch.Tensor:
        raise NotImplementedError

    def criterion(self, outputs: torch.Tensor, targets: Any) -> torch.Tensor:
        raise NotImplementedError

    def samples_seen(self, steps: int) -> int:
        """Training examples the first `steps` steps used; minibatch problems (those with
        `batches`, an EpochBatches) count an epoch's short last batch as it is."""
        batches = getattr(self, "batches", None)
        return batches.seen(steps) if batches is not None else steps * self.samples_per_step

    def loss(self, batch: Any) -> torch.Tensor:
        """The training loss on a batch (the three parts composed)."""
        inputs, targets = self.inputs(batch)
        return self.criterion(self.forward(inputs), targets)

    def evaluate(self) -> dict[str, float]:
        raise NotImplementedError

    def metric_names(self) -> list[str]:
        raise NotImplementedError

    def hessian(self, batch: Any) -> torch.Tensor | None:
        """The training loss's Hessian in closed form, where the problem knows it (far faster
        than autograd for dense Newton steps); None means "use autograd"."""
        return None


class AnalyticProblem(BaseProblem):
    """f: R^d → R given in closed form; the iterate is a single parameter vector `x`.

    Its "inputs" are the batch itself (None, or a problem's gradient noise), its "forward"
    is f at the iterate, and its criterion is the identity."""
    x_star: torch.Tensor | None = None   # a minimiser, when known
    f_star: float | None = None          # the minimum value, when known

    def __init__(self, x0: torch.Tensor):
        self.x = torch.nn.Parameter(x0.clone())

    @property
    def cheap_metrics(self) -> frozenset:
        return frozenset(self.metric_names())   # closed form: every metric is cheap

    @property
    def dim(self) -> int:
        return self.x.numel()

    def parameters(self) -> list[torch.Tensor]:
        return [self.x]

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """f at points `x` of shape [..., d] (batched)."""
        raise NotImplementedError

    def landscape(self) -> dict | None:
        """f as a formula of problems/formulas.py and its arguments (plain lists), so the
        report can draw contours without torch; None when f has no such formula."""
        return None

    def inputs(self, batch: Any) -> tuple[Any, None]:
        return batch, None

    def forward(self, batch: Any) -> torch.Tensor:
        return self.value(self.x)

    def criterion(self, outputs: torch.Tensor, targets: None) -> torch.Tensor:
        return outputs

    def metric_names(self) -> list[str]:
        names = ["train_loss", "grad_norm"]
        names += ["suboptimality"] if self.f_star is not None else []
        names += ["dist_to_opt"] if self.x_star is not None else []
        return names

    def evaluate(self) -> dict[str, float]:
        x = self.x.detach().requires_grad_(True)
        with torch.enable_grad():
            f = self.value(x)
            (grad,) = torch.autograd.grad(f, x)
        out = {"train_loss": f.item(), "grad_norm": grad.norm().item()}
        if self.f_star is not None:
            out["suboptimality"] = out["train_loss"] - self.f_star
        if self.x_star is not None:
            out["dist_to_opt"] = (x.detach() - self.x_star).norm().item()
        return out


def start_point(x0: list[float] | None, dim: int, ctx: Context, dtype: str,
                radius: float = 1.0) -> torch.Tensor:
    """The explicit `x0`, else a point drawn uniformly on the sphere of `radius` from the seed."""
    if x0 is not None:
        if len(x0) != dim:
            raise ValueError(f"x0 has {len(x0)} entries but the problem has dim {dim}")
        return torch.tensor(x0, dtype=DTYPES[dtype], device=ctx.device)
    z = torch.randn(dim, generator=ctx.generator, dtype=torch.float64)
    return (radius * z / z.norm()).to(DTYPES[dtype]).to(ctx.device)


def check_positive(**values: float) -> None:
    for name, v in values.items():
        if not (v > 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be a positive number, got {v}")
