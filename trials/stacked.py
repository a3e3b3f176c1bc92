"""K landmark transformers of one architecture as one model: every weight gets a leading member dimension.

The forward pass is :class:`trials.model.LandmarkTransformer`'s, written out with batched matmuls
(``baddbmm`` over the member dimension), so a step of K members costs about as many kernel launches as a step
of one. All weights live as views into one ``[K, P]`` buffer and :meth:`flat_grad` gathers their gradients into
another, so the optimizer and gradient clipping are a handful of ops on two tensors whatever K is.

Parameter names are the single model's (``encoder.layers.0.linear1.weight``), so member ``k``'s weights are a
plain ``LandmarkTransformer`` state dict (:meth:`member_state`).

Dropout is the one place the members' random numbers are drawn inside the model; the caller passes a
:data:`Dropout` that draws each member's mask (see ``trials.fused``). Whatever it draws for member ``k`` at a site
must equal what ``nn.Dropout`` would draw in the single model: ``bernoulli_(1 - p)`` on a tensor of the
single model's shape, then ``/ (1 - p)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from trials.model import LandmarkTransformer
from trials.random_stream import dropout_draws_in_memory_order

# (site input [K, batch, ...], frames_first) -> the input with each member's dropout applied (the identity when
# evaluating). ``frames_first``: the single model draws its mask at this site in [frames, batch, ...] order: there
# its tensor is nn.MultiheadAttention's output, laid out so in memory, which F.dropout fills in order from torch 2.7.
Dropout = Callable[[torch.Tensor, bool], torch.Tensor]
LAYER_NORM_EPS = 1e-5  # nn.LayerNorm's and nn.TransformerEncoderLayer's default


def no_dropout(x: torch.Tensor, frames_first: bool = False) -> torch.Tensor:
    return x


class StackedTransformer:
    """The weights of K models and the batched forward over them; not an ``nn.Module`` (no hooks, no modules)."""

    def __init__(self, models: Sequence[LandmarkTransformer], device: torch.device) -> None:
        first = models[0]
        self.names = [name for name, _ in first.named_parameters()]
        self.shapes = [p.shape for _, p in first.named_parameters()]
        self.layers = len(first.encoder.layers)
        self.heads = first.encoder.layers[0].self_attn.num_heads
        self.head_layers = sum(isinstance(m, nn.Linear) for m in first.head)
        self.positions = first.positions.pe.to(device)
        flat = torch.stack([torch.cat([p.detach().reshape(-1) for p in m.parameters()]) for m in models])
        self._bind(flat.to(device))

    def _bind(self, flat: torch.Tensor) -> None:
        """Make ``flat`` [K, P] the weights and lay the named views (and their gradients) over it."""
        self.flat = flat
        self.params: dict[str, torch.Tensor] = {}
        offset = 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            n = math.prod(shape)
            self.params[name] = flat[:, offset:offset + n].view(len(flat), *shape).requires_grad_()
            offset += n

    def flat_grad(self) -> torch.Tensor:
        """The gradients of the last backward pass as one [K, P] tensor (laid out like :attr:`flat`); clears them."""
        grads = [p.grad.reshape(self.members, -1) for p in self.params.values()]
        for p in self.params.values():
            p.grad = None
        return torch.cat(grads, dim=1)

    @property
    def members(self) -> int:
        return len(self.flat)

    def keep(self, indices: Sequence[int]) -> None:
        """Keep only these members (in this order): a member that failed or was stopped leaves the group."""
        index = torch.tensor(list(indices), device=self.flat.device, dtype=torch.long)
        self._bind(self.flat.detach().index_select(0, index))

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        """Member ``k``'s weights as a ``LandmarkTransformer`` state dict (copies, on the CPU)."""
        return {name: p[k].detach().cpu().clone() for name, p in self.params.items()}

    # ---------------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, dropout: Dropout = no_dropout) -> torch.Tensor:
        """``x`` [K, batch, frames, features] (one batch per member) or [batch, frames, features] (shared)
        -> [K, batch, classes] logits."""
        p = self.params
        if x.dim() == 3:  # the same batch for every member (evaluation): one matmul against all K weights
            w, b = p["input_proj.weight"], p["input_proj.bias"]
            h = torch.einsum("btf,khf->kbth", x, w) + b[:, None, None, :]
        else:
            h = linear(x, p["input_proj.weight"], p["input_proj.bias"])
        h = dropout(h + self.positions[: h.shape[2]], False)
        for i in range(self.layers):
            h = self._encoder_layer(h, f"encoder.layers.{i}.", dropout)
        h = layer_norm(h, p["norm.weight"], p["norm.bias"]).mean(dim=2)
        for j in range(self.head_layers):
            h = linear(h, p[f"head.{3 * j}.weight"], p[f"head.{3 * j}.bias"])
            if j < self.head_layers - 1:
                h = dropout(F.gelu(h), False)
        return h

    def _encoder_layer(self, x: torch.Tensor, prefix: str, dropout: Dropout) -> torch.Tensor:
        """``nn.TransformerEncoderLayer`` with ``norm_first=True``, GELU, batch first."""
        p = self.params
        y = self._attention(layer_norm(x, p[prefix + "norm1.weight"], p[prefix + "norm1.bias"]), prefix, dropout)
        y = linear(y, p[prefix + "self_attn.out_proj.weight"], p[prefix + "self_attn.out_proj.bias"])
        x = x + dropout(y, dropout_draws_in_memory_order())
        y = layer_norm(x, p[prefix + "norm2.weight"], p[prefix + "norm2.bias"])
        y = dropout(F.gelu(linear(y, p[prefix + "linear1.weight"], p[prefix + "linear1.bias"])), False)
        return x + dropout(linear(y, p[prefix + "linear2.weight"], p[prefix + "linear2.bias"]), False)

    def _attention(self, x: torch.Tensor, prefix: str, dropout: Dropout) -> torch.Tensor:
        """Multi-head self-attention up to (not including) the output projection, as SDPA's math backend
        computes it (the backend PyTorch uses on CPU whenever attention dropout is on)."""
        members, b, t, hidden = x.shape
        p = self.params
        qkv = linear(x, p[prefix + "self_attn.in_proj_weight"], p[prefix + "self_attn.in_proj_bias"])
        q, k, v = (part.reshape(members, b, t, self.heads, hidden // self.heads).transpose(2, 3)
                   for part in qkv.chunk(3, dim=-1))
        scale = math.sqrt(1.0 / math.sqrt(hidden // self.heads))
        weights = dropout(torch.softmax((q * scale) @ (k.transpose(-2, -1) * scale), dim=-1), False)
        return (weights @ v).transpose(2, 3).reshape(members, b, t, hidden)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x`` [K, ..., in] with ``weight`` [K, out, in] and ``bias`` [K, out] -> [K, ..., out]."""
    shape = x.shape
    y = torch.baddbmm(bias.unsqueeze(1), x.reshape(shape[0], -1, shape[-1]), weight.transpose(1, 2))
    return y.view(*shape[:-1], weight.shape[1])


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Per-member affine LayerNorm over the last dimension; ``x`` [K, ..., hidden]."""
    shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    return torch.addcmul(bias.view(shape), F.layer_norm(x, x.shape[-1:], eps=LAYER_NORM_EPS), weight.view(shape))
