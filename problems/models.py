"""Networks for the image problems: softmax regression, MLPs and CNNs (LeNet, DeepOBS 3c3d)."""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn


class Maxout(nn.Module):
    """max over `pieces` groups of features: Linear(n, h·k) then Maxout(k) gives h units."""

    def __init__(self, pieces: int = 2):
        super().__init__()
        self.pieces = pieces

    def forward(self, x):
        return x.view(*x.shape[:-1], -1, self.pieces).amax(-1)


ActivationName = Literal["sigmoid", "tanh", "relu", "leaky_relu", "elu", "maxout"]
ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU,
               "leaky_relu": lambda: nn.LeakyReLU(0.01), "elu": nn.ELU, "maxout": Maxout}


def mlp(in_features: int, hidden: list[int], classes: int, activation: str,
        batch_norm: bool = False, output: str = "none") -> nn.Sequential:
    """Flatten → [Linear → (BatchNorm) → activation] per hidden layer → Linear (→ output)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    pieces = 2 if activation == "maxout" else 1
    for h in hidden:
        layers.append(nn.Linear(width, h * pieces))
        if batch_norm:
            layers.append(nn.BatchNorm1d(h * pieces))
        layers.append(ACTIVATIONS[activation]())
        width = h
    layers.append(nn.Linear(width, classes))
    if output == "sigmoid":
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


def lenet(channels: int, size: int, classes: int, activation: str) -> nn.Sequential:
    """conv5×5(32) → pool → conv5×5(64) → pool → FC 512 → FC classes."""
    act = ACTIVATIONS["relu" if activation == "maxout" else activation]
    feat = 64 * ((size // 2) // 2) ** 2
    return nn.Sequential(
        nn.Conv2d(channels, 32, 5, padding=2), act(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), act(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(feat, 512), act(), nn.Linear(512, classes))


def three_c_three_d(channels: int, size: int, classes: int, activation: str) -> nn.Sequential:
    """DeepOBS's 3c3d: conv5×5(64) valid, pool 3/2; conv3×3(96) valid, pool 3/2;
    conv3×3(128) same, pool 3/2; FC 512, FC 256, FC classes."""
    act = ACTIVATIONS["relu" if activation == "maxout" else activation]
    body = nn.Sequential(
        nn.Conv2d(channels, 64, 5), act(), nn.MaxPool2d(3, 2, padding=1),
        nn.Conv2d(64, 96, 3), act(), nn.MaxPool2d(3, 2, padding=1),
        nn.Conv2d(96, 128, 3, padding=1), act(), nn.MaxPool2d(3, 2, padding=1), nn.Flatten())
    with torch.no_grad():
        feat = body(torch.zeros(1, channels, size, size)).shape[1]
    return nn.Sequential(*body, nn.Linear(feat, 512), act(), nn.Linear(512, 256), act(),
                         nn.Linear(256, classes))


ARCHITECTURES = {"lenet": lenet, "3c3d": three_c_three_d}


SPARSE_BELOW = 1e-3


@torch.no_grad()
def sparsity(model: nn.Module) -> float:
    """The fraction of weights (tensors of rank ≥ 2: no biases, no norm scales) with
    |w| < 1e-3: what an L1 penalty drives up."""
    weights = [p for p in model.parameters() if p.dim() >= 2]
    small = sum(int((w.abs() < SPARSE_BELOW).sum()) for w in weights)
    return small / max(1, sum(w.numel() for w in weights))

