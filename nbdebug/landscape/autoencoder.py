"""The encoder/decoder pair of the time-travelling visualizer, shared by all epochs."""

from __future__ import annotations

import torch
from torch import nn

# The encoder's output is multiplied by this: Adam moves weights by about the learning
# rate per step, so a larger output scale reaches a UMAP-sized layout (spread of a few
# units) in fewer steps: +0.015 NPR@15 at 300 steps against 1.0 (python -m
# benchmarks.visualizer --runs digits --methods nbdebug, with steps=300 and this at 1.0).
OUTPUT_SCALE = 4.0


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_out)
    )


class AutoEncoder(nn.Module):
    """Encoder (representation -> canvas) and decoder (canvas -> representation) shared by
    all epochs, each told the epoch by a learned embedding."""

    def __init__(self, dim: int, n_epochs: int, hidden: int, epoch_dim: int):
        super().__init__()
        self.epoch = nn.Embedding(n_epochs, epoch_dim)
        nn.init.normal_(self.epoch.weight, std=0.1)
        self.encoder = _mlp(dim + epoch_dim, hidden, 2)
        self.decoder = _mlp(2 + epoch_dim, hidden, dim)

    def _with_epoch(self, x: torch.Tensor, index: int) -> torch.Tensor:
        code = self.epoch.weight[index].expand(len(x), -1)
        return torch.cat([x, code], dim=1)

    def encode(self, x: torch.Tensor, index: int) -> torch.Tensor:
        return OUTPUT_SCALE * self.encoder(self._with_epoch(x, index))

    def decode(self, y: torch.Tensor, index: int) -> torch.Tensor:
        return self.decoder(self._with_epoch(y, index))
