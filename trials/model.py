"""The landmark transformer of the seed pipelines (000/001/002).

Frames of flattened landmarks are projected to ``hidden``, given sinusoidal positions (seed 002: random
positions carried no temporal information), passed through a pre-norm transformer encoder with a 4x
feed-forward, mean-pooled over time and classified by a 2-layer head, or a 3-layer head with a ``hidden*2``
intermediate for more than 500 classes (seed 002), whose last layer starts small (Xavier gain 0.1).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trials.config import MAX_SEQ_LEN

LARGE_HEAD_CLASSES = 500  # seed 002: above this many classes the head gets a third layer


class SinusoidalPositionalEncoding(nn.Module):
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...): a buffer, not a parameter."""

    def __init__(self, hidden: int, max_len: int = MAX_SEQ_LEN) -> None:
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, hidden, 2, dtype=torch.float32) * (-math.log(10000.0) / hidden))
        pe = torch.zeros(max_len, hidden)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term[: hidden // 2])
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[: x.shape[1]]


def classifier_head(hidden: int, num_classes: int, dropout: float) -> nn.Sequential:
    """Two linear layers, or three with a ``hidden*2`` intermediate for many classes (seed 002)."""
    if num_classes > LARGE_HEAD_CLASSES:
        wide = hidden * 2
        layers: list[nn.Module] = [
            nn.Linear(hidden, wide), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(wide, wide), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(wide, num_classes),
        ]
    else:
        layers = [nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes)]
    head = nn.Sequential(*layers)
    nn.init.xavier_uniform_(head[-1].weight, gain=0.1)
    nn.init.zeros_(head[-1].bias)
    return head


class LandmarkTransformer(nn.Module):
    """[batch, frames, features] -> [batch, classes] logits."""

    def __init__(
        self, feature_dim: int, num_classes: int, hidden: int, layers: int, heads: int, dropout: float
    ) -> None:
        super().__init__()
        self.input_proj = nn.Linear(feature_dim, hidden)
        self.positions = SinusoidalPositionalEncoding(hidden)
        self.input_dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            d_model=hidden, nhead=heads, dim_feedforward=4 * hidden, dropout=dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        self.head = classifier_head(hidden, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input_dropout(self.positions(self.input_proj(x)))
        h = self.norm(self.encoder(h))
        return self.head(h.mean(dim=1))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
