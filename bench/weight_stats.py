"""The `weight_histogram` measure: how the magnitudes of a network's weights are spread.

A histogram of log10|w| over every weight (tensors of rank ≥ 2, as the penalties and the
`sparsity` metric count them: no biases, no norm scales) at initialisation and at the end.
Bins are a fixed number per decade from 10^min_log10 up, so every run's bins line up (with
each other and with the 1e-3 of `sparsity`): an L1 penalty's pile of tiny weights shows
against L2's shrunken but never-zero ones. Registered into `bench.measures.MEASURES`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from bench.measures import MEASURES, Measure, Probe


def network_weights(problem) -> list[torch.Tensor]:
    """The rank ≥ 2 parameters of the problem's model (a parametrized layer's `original`)."""
    return [p for p in problem.model.parameters() if p.dim() >= 2]


@MEASURES.register("weight_histogram")
@dataclass
class WeightHistogram(Measure):
    """A histogram of log10|w| over all of a network's weights, at initialisation and at the end.

    Weights are the tensors of rank ≥ 2 (no biases, no norm scales). Bins are
    `bins_per_decade` per decade from 10^min_log10 to the largest |w|, so bins line up
    between runs and 1e-3 (where `sparsity` counts) is an edge. Each record holds `edges`
    (log10|w|), `counts`, `below` (|w| < 10^min_log10, exact zeros included), `zeros`
    (exactly 0), `nonfinite` (NaN or ±inf) and `total`, the number of weights:
    sum(counts) + below + nonfinite = total.

    Args:
        bins_per_decade: bins per factor of ten in |w| (≥ 1).
        min_log10: the smallest binned magnitude is 10^min_log10 (an integer); smaller
            ones, exact zeros included, are counted in `below`.
    """
    bins_per_decade: int = 10
    min_log10: int = -8
    start: dict | None = field(default=None, init=False, repr=False)
    end: dict | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        if isinstance(self.bins_per_decade, bool) or not isinstance(self.bins_per_decade, int) \
                or self.bins_per_decade < 1:
            raise ValueError(f"bins_per_decade must be an integer of at least 1, "
                             f"got {self.bins_per_decade!r}")
        if isinstance(self.min_log10, bool) or not isinstance(self.min_log10, int) \
                or not -30 <= self.min_log10 <= 5:
            raise ValueError(f"min_log10 must be an integer in [-30, 5], got {self.min_log10!r}")

    def unsuitable(self, problem) -> str | None:
        model = getattr(problem, "model", None)
        if not isinstance(model, torch.nn.Module) or not network_weights(problem):
            return "weight_histogram needs a network with weight matrices (tensors of rank ≥ 2)"
        return None

    def observe(self, problem, step: int) -> None:
        if step == 0:
            self.start = self.histogram(network_weights(problem))

    def finish(self, probe: Probe) -> None:
        self.end = self.histogram(network_weights(probe.problem))

    def result(self) -> dict:
        return {"init": self.start, "end": self.end}

    @torch.no_grad()
    def histogram(self, weights: list[torch.Tensor]) -> dict:
        magnitude = torch.cat([w.detach().flatten() for w in weights]).double().abs()
        total = int(magnitude.numel())
        finite = torch.isfinite(magnitude)
        nonfinite = total - int(finite.sum())
        magnitude = magnitude[finite]
        low = 10.0 ** self.min_log10
        zeros = int((magnitude == 0).sum())
        binned = magnitude[magnitude >= low]
        below = int(magnitude.numel() - binned.numel())
        top = float(binned.max()) if binned.numel() else low
        # from 10^min_log10 up to the bin edge at or above the largest |w|
        bins = max(1, math.ceil((math.log10(top) - self.min_log10) * self.bins_per_decade
                                - 1e-9))
        index = torch.floor((torch.log10(binned) - self.min_log10) * self.bins_per_decade)
        index = index.long().clamp_(0, bins - 1)
        counts = torch.bincount(index, minlength=bins).cpu().tolist()
        edges = [round(self.min_log10 + i / self.bins_per_decade, 12) for i in range(bins + 1)]
        return {"edges": edges, "counts": [int(c) for c in counts], "below": below,
                "zeros": zeros, "nonfinite": nonfinite, "total": total,
                "max_abs": float(binned.max()) if binned.numel() else None}
