"""An MLP on a handful of examples written in the spec: XOR, the notes' worked 2-2-2
backpropagation example, the notes' sanity check of overfitting ~20 examples."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from problems import models
from problems.base import BaseProblem, Context


class ToyMLP(BaseProblem):
    """Full batch over the given examples; `squared_error` is the notes' ½Σ(target − out)²
    summed over outputs and averaged over examples ("total error" for one example)."""

    def __init__(self, model, inputs, targets, loss: str, activation: str):
        self.model, self.examples, self.targets = model, inputs, targets
        self.loss_kind, self.activation = loss, activation
        self.cheap_metrics = frozenset(self.metric_names())

    def parameters(self):
        return list(self.model.parameters())

    def inputs(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        return self.examples, self.targets

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def criterion(self, out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.loss_kind == "squared_error":
            return 0.5 * ((targets - out) ** 2).sum(1).mean()
        return F.cross_entropy(out, targets.argmax(1))

    def metric_names(self) -> list[str]:
        return ["train_loss", "train_accuracy", "sparsity"]

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        out = self.model(self.examples)
        hit = (out.argmax(1) == self.targets.argmax(1)).float().mean()
        return {"train_loss": float(self.loss(None)), "train_accuracy": float(hit),
                "sparsity": models.sparsity(self.model)}

    def activation_layers(self):
        kind = type(models.ACTIVATIONS[self.activation]())
        return [m for m in self.model.modules() if isinstance(m, kind)]

    def probe_inputs(self, count: int = 1000):
        return self.examples[:count]


def toy_mlp(ctx: Context, inputs: list[list[float]] = ((0, 0), (0, 1), (1, 0), (1, 1)),
            targets: list[list[float]] = ((1, 0), (0, 1), (0, 1), (1, 0)),
            hidden: list[int] = (4,), activation: models.ActivationName = "tanh",
            output: Literal["none", "sigmoid"] = "none",
            loss: Literal["cross_entropy", "squared_error"] = "cross_entropy") -> ToyMLP:
    """Examples as rows of `inputs`, one-hot or real-valued rows of `targets` (default: XOR).

    Trained full batch on every example (a cell's batch_size does not apply). The notes' 2-2-2
    backpropagation example is inputs [[0.05, 0.10]], targets [[0.01, 0.99]], hidden [2],
    activation sigmoid, output sigmoid, loss squared_error (its weights w₁ = 0.15 … are not
    set here). train_accuracy counts the examples whose largest output is at the target
    row's largest entry.

    Args:
        inputs: the examples, one row of numbers per example, all rows the same length (the
            number of input units).
        targets: one row per example, in the order of `inputs`, all rows the same length (the
            number of output units): one-hot rows for classes, or real values to fit with
            `loss: squared_error`.
        hidden: the widths of the hidden layers, one positive integer per layer; [] is a
            single linear layer.
        activation: the nonlinearity after each hidden layer: sigmoid, tanh, relu, leaky_relu
            (slope 0.01), elu, maxout (each unit the max of 2 linear pieces).
        output: none: the last layer's outputs are used as they are (logits); sigmoid: they go
            through a sigmoid, as the notes' worked example's out_o = σ(net_o) (meant for
            `loss: squared_error`).
        loss: cross_entropy: softmax cross-entropy against the index of each target row's
            largest entry (real-valued targets count only as that class); squared_error: the
            notes' ½Σ(target − out)², summed over outputs and averaged over examples (their
            "total error" E_total for one example).
    """
    x = torch.tensor(inputs, dtype=torch.float32, device=ctx.device)
    y = torch.tensor(targets, dtype=torch.float32, device=ctx.device)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError("inputs and targets must be lists of rows, one row per example")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.seed)
        model = models.mlp(x.shape[1], list(hidden), y.shape[1], activation, output=output)
    return ToyMLP(model.to(ctx.device), x, y, loss, activation)
