"""A fused group's random numbers, drawn one of two ways.

Exact (the CPU default): each member draws from its own :class:`RandomStream`, exactly what it would draw alone.
Shared (the CUDA default): one draw for the whole group (:func:`shared_dropout`, :func:`shared_mixup`), as random
for each member as its own stream, in a few kernel launches instead of a few per member.
"""

from __future__ import annotations

import functools

import torch

from trials.losses import symmetric_beta


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


@functools.cache
def dropout_draws_in_memory_order() -> bool:
    """Whether ``F.dropout`` on the CPU draws a non-contiguous input's mask in memory order, as torch 2.7 and later
    do (``bernoulli_`` on an ``empty_like`` of it); earlier releases draw it in logical order. An exact member's
    mask at a site whose single-model tensor is a transposed view (``frames_first``) follows suit. Asked of torch
    once, on a 40-entry tensor, with the global generator's state put back."""
    outside = torch.get_rng_state()
    try:
        x = torch.ones(5, 8).t()  # [8, 5], laid out as [5, 8]
        torch.manual_seed(0)
        got = torch.nn.functional.dropout(x, 0.5)
        torch.manual_seed(0)
        return torch.equal(got, torch.empty(5, 8).bernoulli_(0.5).div_(0.5).t())
    finally:
        torch.set_rng_state(outside)


def shared_dropout(x: torch.Tensor, keep_prob: torch.Tensor) -> torch.Tensor:
    """``nn.Dropout`` for every member of ``x`` [K, ...] at once; ``keep_prob`` [K, 1] is each member's 1 - p.
    The scale is computed in float32, as ``F.dropout``'s."""
    keep = keep_prob.view(-1, *[1] * (x.dim() - 1))
    return x * ((torch.rand(x.shape, device=x.device) < keep) / keep).to(x.dtype)


def shared_mixup(inputs: torch.Tensor, targets: torch.Tensor, alpha: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``losses.mixup`` for every member at once: member k mixes its batch with its own partner order and its own
    ``lam ~ Beta(alpha_k, alpha_k)``; a member with ``alpha_k == 0`` keeps its batch as it is (lam 1).

    ``inputs`` [K, batch, ...], ``targets`` [K, batch, classes], ``alpha`` [K, 1].
    """
    k, b = targets.shape[:2]
    drawn = symmetric_beta(torch.where(alpha > 0, alpha, 1.0))  # alpha 0: a draw the next line drops
    lam = torch.where(alpha > 0, drawn, torch.ones_like(drawn)).view(k, 1, 1)
    partner = torch.rand(k, b, device=inputs.device).argsort(dim=1)
    rows = torch.arange(k, device=inputs.device).unsqueeze(1)
    lam_inputs = lam.view(k, *[1] * (inputs.dim() - 1))
    return (lam_inputs * inputs + (1 - lam_inputs) * inputs[rows, partner],
            lam * targets + (1 - lam) * targets[rows, partner])
