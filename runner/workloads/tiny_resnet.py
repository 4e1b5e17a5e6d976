"""A small residual CNN on generated 1x16x16 shape images, with rare outlier batches.

Four classes (square, cross, ring, diagonal bar) drawn at random positions and sizes with pixel
noise. One training batch in `outlier_every` is an outlier: its images are scaled by
`outlier_scale` (a sensor glitch, a badly normalized shard). Those steps have gradient norms
far above the typical one (R14): unclipped, at a high learning rate, each one knocks the loss
up; clipping at about the 90th percentile of the norms (R23) tames them. Measured on a CPU
(batch 64, 300 steps, Adam at lr 0.01, constant, about 25 s each): unclipped the model stalls
near chance (val_accuracy 0.36); with clip_norm = 5 (18% of steps clipped, R24 is not
triggered) it reaches 0.98.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from runner.workloads import Batch, Workload, classification_accuracy

SIZE = 16
CLASSES = 4


def make_images(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.randint(CLASSES, (n,), generator=generator)
    size = torch.randint(4, 9, (n,), generator=generator)
    top = (torch.rand(n, generator=generator) * (SIZE - size)).long()
    left = (torch.rand(n, generator=generator) * (SIZE - size)).long()
    r = torch.arange(SIZE).view(1, SIZE, 1)
    c = torch.arange(SIZE).view(1, 1, SIZE)
    # coordinates inside each shape's box, in [0, 1]
    u = (r - top.view(-1, 1, 1)).float() / (size.view(-1, 1, 1) - 1)
    v = (c - left.view(-1, 1, 1)).float() / (size.view(-1, 1, 1) - 1)
    inside = (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)
    edge = inside & ((u == 0) | (u == 1) | (v == 0) | (v == 1))
    square = inside
    cross = inside & (((u - 0.5).abs() < 0.2) | ((v - 0.5).abs() < 0.2))
    ring = edge
    diag = inside & ((u - v).abs() < 0.25)
    shapes = torch.stack([square, cross, ring, diag], 1)  # n, 4, H, W
    img = shapes[torch.arange(n), y].float()
    img = img + 0.3 * torch.randn(n, SIZE, SIZE, generator=generator)
    return img.unsqueeze(1), y


class Block(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class TinyResNet(nn.Module):
    def __init__(self, ch: int = 16, blocks: int = 2) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, ch, 3, padding=1)
        self.blocks = nn.Sequential(*[Block(ch) for _ in range(blocks)])
        self.head = nn.Linear(ch, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(F.relu(self.stem(x)))
        h = F.max_pool2d(h, 2)
        return self.head(h.mean((2, 3)))


def tiny_resnet(
    *,
    batch_size: int,
    seed: int,
    device: torch.device,
    channels: int = 16,
    blocks: int = 2,
    outlier_every: int = 25,
    outlier_scale: float = 8.0,
    data_seed: int = 0,
    **_: Any,
) -> Workload:
    val_x, val_y = make_images(512, torch.Generator().manual_seed(10_000 + data_seed))
    val_x, val_y = val_x.to(device), val_y.to(device)
    model = TinyResNet(channels, blocks)

    def train_batch(step: int, generator: torch.Generator) -> Batch:
        x, y = make_images(batch_size, generator)
        # R14: the rare outlier batch, at fixed steps so that every trial sees the same ones
        if outlier_every > 0 and step % outlier_every == outlier_every - 1:
            x = x * outlier_scale
        return x.to(device), y.to(device)

    def eval_batches() -> list[Batch]:
        return [(val_x, val_y)]

    return Workload(model, train_batch, eval_batches, F.cross_entropy, classification_accuracy)
