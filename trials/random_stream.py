"""One fused-group member's own random numbers, so it draws exactly what it would draw alone."""

from __future__ import annotations

import torch


class RandomStream:
    """One member's own random numbers: the global generators' states, swapped in while the member draws.

    Swapping the global state (rather than passing ``torch.Generator`` objects) lets the member's draws go through
    the very calls its own run makes (``torch.randperm``, ``losses.mixup``, ``bernoulli_``), so they cannot drift.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def __enter__(self) -> RandomStream:
        self._outside = (torch.get_rng_state(), torch.cuda.get_rng_state(self.device) if self.cuda is not None
                         else None)
        self._set(self.cpu, self.cuda)
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state(self.device) if self.cuda is not None else None
        self._set(*self._outside)

    def _set(self, cpu: torch.Tensor, cuda: torch.Tensor | None) -> None:
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, self.device)
