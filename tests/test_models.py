"""Loss functions and layers of the networks against the notes' formulas computed by hand."""
from __future__ import annotations

import torch

from problems.models import Maxout, mlp
from problems.vision import classification_loss


def test_hinge_is_the_notes_multiclass_svm():
    scores = torch.tensor([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
    labels = torch.tensor([0, 1, 2])
    # the notes' cat/car/frog example: losses 2.9, 0, 12.9 with Δ = 1; mean 5.27
    expected = sum(max(0.0, float(s[j] - s[y] + 1)) for s, y in zip(scores, labels)
                   for j in range(3) if j != y) / 3
    assert abs(expected - 5.2667) < 1e-3
    assert torch.isclose(classification_loss("hinge", scores, labels), torch.tensor(expected))


def test_cross_entropy_and_mse():
    scores = torch.tensor([[2.0, 1.0, 0.1]])
    y = torch.tensor([0])
    p = torch.softmax(scores, 1)[0, 0]
    assert torch.isclose(classification_loss("cross_entropy", scores, y), -torch.log(p))
    assert torch.isclose(classification_loss("mse", scores, y),
                         ((scores - torch.tensor([[1.0, 0, 0]])) ** 2).mean())


def test_maxout_takes_the_max_of_each_group():
    x = torch.tensor([[1.0, 5.0, -2.0, -3.0]])
    assert torch.equal(Maxout(2)(x), torch.tensor([[5.0, -2.0]]))
    net = mlp(4, [3], 2, "maxout")
    assert net[1].out_features == 6 and net(torch.zeros(5, 4)).shape == (5, 2)


def test_batch_norm_layers_are_placed_before_activations():
    net = mlp(4, [8, 8], 3, "relu", batch_norm=True)
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Flatten", "Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d",
                     "ReLU", "Linear"]
