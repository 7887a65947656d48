"""Image classification problems: `logreg`, `mlp` and `cnn` on MNIST, Fashion-MNIST, CIFAR-10."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from problems import models
from problems.base import BaseProblem, Context
from problems.imagedata import EpochBatches, ImageData, Split, prepare

Data = Literal["mnist", "fashion-mnist", "cifar10"]
Loss = Literal["cross_entropy", "hinge", "mse"]
Activation = models.ActivationName
TRAIN_EVAL = 10_000   # training loss and accuracy are measured on this many training images


def classification_loss(kind: str, logits: torch.Tensor, y: torch.Tensor,
                        margin: float = 1.0) -> torch.Tensor:
    if kind == "cross_entropy":
        return F.cross_entropy(logits, y)
    if kind == "hinge":   # the notes' multiclass SVM: Σ_j≠y max(0, s_j − s_y + Δ), averaged
        return F.multi_margin_loss(logits, y, margin=margin) * (logits.shape[1])
    return F.mse_loss(logits, F.one_hot(y, logits.shape[1]).to(logits.dtype))


class ImageClassifier(BaseProblem):
    """A network, its data on the device, minibatches by seeded permutation."""
    accepts_batch_size = True
    cheap_metrics = frozenset()   # evaluating means a pass over data: only at eval points

    def __init__(self, model: nn.Module, data: ImageData, batch_size: int | None, loss: str,
                 margin: float, activation: str):
        self.model, self.data = model, data
        self.loss_kind, self.margin, self.activation = loss, margin, activation
        self.batches = EpochBatches(len(data.train.y), batch_size)
        self.train_size = len(data.train.y)
        self.steps_per_epoch = self.batches.steps_per_epoch
        self.samples_per_step = self.batches.batch_size
        n = min(TRAIN_EVAL, len(data.train.y))
        self.train_eval = Split(data.train.x[:n], data.train.y[:n])

    def parameters(self) -> list[torch.Tensor]:
        return list(self.model.parameters())

    def sample_batch(self, generator: torch.Generator):
        return self.batches.next(generator, self.data.train.x.device)

    def inputs(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's images and labels; None is the training set the metrics use."""
        if batch is None:
            return self.train_eval.x, self.train_eval.y
        return self.data.train.x[batch], self.data.train.y[batch]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The training forward pass (train mode: dropout active, batch statistics)."""
        self.model.train()
        return self.model(x)

    def criterion(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return classification_loss(self.loss_kind, logits, y, self.margin)

    def metric_names(self) -> list[str]:
        names = ["train_loss", "train_accuracy", "test_loss", "test_accuracy"]
        names += ["val_loss", "val_accuracy"] if self.data.val is not None else []
        return names + ["gap_accuracy", "gap_loss", "sparsity"]

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        out = {}
        splits = {"train": self.train_eval, "test": self.data.test, "val": self.data.val}
        for name, split in splits.items():
            if split is not None:
                out[f"{name}_loss"], out[f"{name}_accuracy"] = self._measure(split)
        # the generalization gap, on clean training images in eval mode (no dropout, no
        # augmentation: the training loss the optimizer sees is not this one)
        out["gap_accuracy"] = out["train_accuracy"] - out["test_accuracy"]
        out["gap_loss"] = out["test_loss"] - out["train_loss"]
        out["sparsity"] = models.sparsity(self.model)
        return out

    def _measure(self, split: Split, chunk: int = 5000) -> tuple[float, float]:
        total, correct = 0.0, 0
        for i in range(0, len(split.y), chunk):
            logits = self.model(split.x[i:i + chunk])
            y = split.y[i:i + chunk]
            total += float(classification_loss(self.loss_kind, logits, y, self.margin)) * len(y)
            correct += int((logits.argmax(1) == y).sum())
        return total / len(split.y), correct / len(split.y)

    def activation_layers(self) -> list[nn.Module]:
        """The modules whose outputs are a layer's activations (for activation statistics)."""
        kind = type(models.ACTIVATIONS[self.activation]())
        return [m for m in self.model.modules() if isinstance(m, kind)]

    def probe_inputs(self, count: int = 1000) -> torch.Tensor:
        """A fixed batch of training images to look at activations with."""
        return self.data.train.x[:count]


def _build(ctx: Context, data: str, subset, validation, test_subset, make_model, loss, margin,
           activation) -> ImageClassifier:
    images = prepare(data, ctx.seed, ctx.device, subset, validation, test_subset, ctx.data_dir)
    channels, size = images.train.x.shape[1], images.train.x.shape[2]
    with torch.random.fork_rng(devices=[]):   # torch's default layer init, seeded per cell
        torch.manual_seed(ctx.seed)
        model = make_model(channels, size, images.classes).to(ctx.device)
    return ImageClassifier(model, images, ctx.batch_size, loss, margin, activation)


def logreg(ctx: Context, data: Data = "mnist", subset: int | None = None, validation: int = 0,
           test_subset: int | None = None, loss: Loss = "cross_entropy",
           margin: float = 1.0) -> ImageClassifier:
    """Softmax (or SVM, with hinge loss) regression on the pixels.

    One linear layer from the flattened, normalised pixels to the 10 class scores.

    Args:
        data: the data set, 10 classes each: mnist (digits), fashion-mnist (clothing, 28×28
            greyscale like MNIST), cifar10 (32×32 colour images). Looked for in the spec's
            data_dir first, then the usual places (`bench data fetch`); never downloaded in a run.
        subset: the number of training images to train on, ≥ 1, drawn per seed with the
            class proportions kept, from the images not held out by `validation`; none: all of
            them. Pixels are normalised by this subset's per-channel mean and std (the notes'
            zero-centering and normalization), on every split. train_loss and train_accuracy
            are measured on at most 10,000 of these images.
        validation: the number of training images held out, ≥ 0, drawn per seed with the class
            proportions kept: never trained on, they give the val_loss and val_accuracy metrics
            (for early stopping on validation loss). 0: no validation split. subset + validation
            must fit in the training set.
        test_subset: the number of test images the test metrics use, ≥ 1, drawn per seed with
            the class proportions kept; none: the whole test set.
        loss: cross_entropy: softmax cross-entropy on the logits (the notes' softmax
            classifier); hinge: the notes' multiclass SVM loss Σ_{j≠y} max(0, s_j − s_y + Δ),
            averaged over examples; mse: the squared error between the logits and the one-hot
            label, averaged over examples and classes.
        margin: Δ > 0, the hinge loss's margin: a wrong class costs until the true class's
            score exceeds it by Δ. Used only with `loss: hinge`.
    """
    return _build(ctx, data, subset, validation, test_subset,
                  lambda c, s, k: models.mlp(c * s * s, [], k, "relu"), loss, margin, "relu")


def mlp(ctx: Context, data: Data = "mnist", hidden: list[int] = (256, 256),
        activation: Activation = "relu", batch_norm: bool = False, subset: int | None = None,
        validation: int = 0, test_subset: int | None = None, loss: Loss = "cross_entropy",
        margin: float = 1.0) -> ImageClassifier:
    """A multilayer perceptron on the flattened pixels.

    Linear → (BatchNorm) → activation per hidden layer, then a linear layer to the class scores.

    Args:
        data: the data set, 10 classes each: mnist (digits), fashion-mnist (clothing, 28×28
            greyscale like MNIST), cifar10 (32×32 colour images). Looked for in the spec's
            data_dir first, then the usual places (`bench data fetch`); never downloaded in a run.
        hidden: the widths of the hidden layers, one positive integer per layer; [] is softmax
            regression (the same network as `logreg`).
        activation: the nonlinearity after each hidden layer: sigmoid, tanh, relu, leaky_relu
            (slope 0.01), elu, maxout (each unit the max of 2 linear pieces).
        batch_norm: insert batch normalization between each hidden layer's Linear and its
            activation (the notes' batch normalization).
        subset: the number of training images to train on, ≥ 1, drawn per seed with the
            class proportions kept, from the images not held out by `validation`; none: all of
            them. Pixels are normalised by this subset's per-channel mean and std (the notes'
            zero-centering and normalization), on every split. train_loss and train_accuracy
            are measured on at most 10,000 of these images.
        validation: the number of training images held out, ≥ 0, drawn per seed with the class
            proportions kept: never trained on, they give the val_loss and val_accuracy metrics
            (for early stopping on validation loss). 0: no validation split. subset + validation
            must fit in the training set.
        test_subset: the number of test images the test metrics use, ≥ 1, drawn per seed with
            the class proportions kept; none: the whole test set.
        loss: cross_entropy: softmax cross-entropy on the logits (the notes' softmax
            classifier); hinge: the notes' multiclass SVM loss Σ_{j≠y} max(0, s_j − s_y + Δ),
            averaged over examples; mse: the squared error between the logits and the one-hot
            label, averaged over examples and classes.
        margin: Δ > 0, the hinge loss's margin: a wrong class costs until the true class's
            score exceeds it by Δ. Used only with `loss: hinge`.
    """
    return _build(ctx, data, subset, validation, test_subset,
                  lambda c, s, k: models.mlp(c * s * s, list(hidden), k, activation, batch_norm),
                  loss, margin, activation)


def cnn(ctx: Context, data: Data = "mnist", arch: Literal["lenet", "3c3d"] = "lenet",
        activation: Activation = "relu", subset: int | None = None, validation: int = 0,
        test_subset: int | None = None, loss: Loss = "cross_entropy",
        margin: float = 1.0) -> ImageClassifier:
    """A convolutional network: LeNet-style, or DeepOBS's 3c3d (made for CIFAR-10).

    Args:
        data: the data set, 10 classes each: mnist (digits), fashion-mnist (clothing, 28×28
            greyscale like MNIST), cifar10 (32×32 colour images). Looked for in the spec's
            data_dir first, then the usual places (`bench data fetch`); never downloaded in a run.
        arch: lenet: conv5×5(32) → pool → conv5×5(64) → pool → FC 512 → FC 10; 3c3d:
            DeepOBS's three convolutions (5×5 64, 3×3 96, 3×3 128, each max-pooled) and three
            fully connected layers (512, 256, 10).
        activation: the nonlinearity after each convolution and hidden fully connected layer:
            sigmoid, tanh, relu, leaky_relu (slope 0.01) or elu; maxout is not built for
            convolutions: it gives relu.
        subset: the number of training images to train on, ≥ 1, drawn per seed with the
            class proportions kept, from the images not held out by `validation`; none: all of
            them. Pixels are normalised by this subset's per-channel mean and std (the notes'
            zero-centering and normalization), on every split. train_loss and train_accuracy
            are measured on at most 10,000 of these images.
        validation: the number of training images held out, ≥ 0, drawn per seed with the class
            proportions kept: never trained on, they give the val_loss and val_accuracy metrics
            (for early stopping on validation loss). 0: no validation split. subset + validation
            must fit in the training set.
        test_subset: the number of test images the test metrics use, ≥ 1, drawn per seed with
            the class proportions kept; none: the whole test set.
        loss: cross_entropy: softmax cross-entropy on the logits (the notes' softmax
            classifier); hinge: the notes' multiclass SVM loss Σ_{j≠y} max(0, s_j − s_y + Δ),
            averaged over examples; mse: the squared error between the logits and the one-hot
            label, averaged over examples and classes.
        margin: Δ > 0, the hinge loss's margin: a wrong class costs until the true class's
            score exceeds it by Δ. Used only with `loss: hinge`.
    """
    build = models.ARCHITECTURES[arch]
    return _build(ctx, data, subset, validation, test_subset,
                  lambda c, s, k: build(c, s, k, activation), loss, margin, activation)
