"""The INITS registry. `default` keeps each problem's own initialisation (a seeded draw for
analytic problems, torch's layer defaults for networks)."""
from __future__ import annotations

from dataclasses import dataclass

from bench.registry import Registry

INITS = Registry("init")


@INITS.register("default")
@dataclass(frozen=True)
class Default:
    """Keep the problem's own initialisation."""

    def __call__(self, problem, generator) -> None:
        return None
