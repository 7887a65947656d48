"""Image datasets as tensors on the cell's device: stratified subsets, a validation split,
normalisation from training statistics, and seeded per-epoch permutations for minibatches."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bench import data


@dataclass
class Split:
    x: torch.Tensor      # float, normalised, [N, C, H, W]
    y: torch.Tensor      # int64 labels


@dataclass
class ImageData:
    train: Split
    val: Split | None
    test: Split
    classes: int
    source: str


def stratified(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` indices with the class proportions of `labels` (largest-remainder rounding)."""
    classes, sizes = np.unique(labels, return_counts=True)
    quota = sizes * count / len(labels)
    take = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - take))[:count - take.sum()]:
        take[i] += 1
    picks = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    return np.sort(np.concatenate(picks))


def prepare(name: str, seed: int, device: torch.device, subset: int | None = None,
            validation: int = 0, test_subset: int | None = None,
            data_dir: str | None = None) -> ImageData:
    arrays = data.load(name, data_dir)
    rng = np.random.default_rng(seed)
    n = len(arrays.train_y)
    if validation < 0 or subset is not None and subset < 1 or validation + (subset or 0) > n:
        raise ValueError(f"subset ({subset}) + validation ({validation}) must fit in the "
                         f"{n} training images")
    pool = np.arange(n)
    val_idx = stratified(arrays.train_y, validation, rng) if validation else np.array([], int)
    pool = np.setdiff1d(pool, val_idx)
    train_idx = pool[stratified(arrays.train_y[pool], subset, rng)] if subset else pool
    test_idx = (stratified(arrays.test_y, test_subset, rng) if test_subset
                else np.arange(len(arrays.test_y)))
    train_x = torch.from_numpy(arrays.train_x[train_idx]).to(device, torch.float32) / 255
    mean = train_x.mean(dim=(0, 2, 3), keepdim=True)
    std = train_x.std(dim=(0, 2, 3), keepdim=True)

    def split(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> Split:
        xs = torch.from_numpy(x[idx]).to(device, torch.float32) / 255
        return Split((xs - mean) / std, torch.from_numpy(y[idx]).to(device))
    return ImageData(Split((train_x - mean) / std, torch.from_numpy(arrays.train_y[train_idx]).to(device)),
                     split(arrays.train_x, arrays.train_y, val_idx) if validation else None,
                     split(arrays.test_x, arrays.test_y, test_idx),
                     data.dataset(name).classes, arrays.source)


class EpochBatches:
    """A seeded permutation of the training set per epoch, sliced into minibatches (the last
    one may be short); no DataLoader, no per-sample Python work."""

    def __init__(self, size: int, batch_size: int | None):
        self.size = size
        self.batch_size = min(batch_size or size, size)   # larger than the data: full batch
        self.steps_per_epoch = -(-size // self.batch_size)
        self._order: torch.Tensor | None = None
        self._cursor = 0

    def seen(self, steps: int) -> int:
        """Examples the first `steps` batches held: whole epochs, then full batches (the
        short batch is only ever an epoch's last)."""
        epochs, rest = divmod(steps, self.steps_per_epoch)
        return epochs * self.size + rest * self.batch_size

    def next(self, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        if self._order is None or self._cursor >= self.size:
            self._order = torch.randperm(self.size, generator=generator).to(device)
            self._cursor = 0
        batch = self._order[self._cursor:self._cursor + self.batch_size]
        self._cursor += self.batch_size
        return batch
