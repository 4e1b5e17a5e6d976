"""An MLP on scikit-learn's bundled 8x8 digits (1,797 images, 10 classes; no download)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from runner.workloads import Batch, Workload, classification_accuracy


def digits_mlp(
    *,
    batch_size: int,
    seed: int,
    device: torch.device,
    hidden: int = 128,
    depth: int = 2,
    dropout: float = 0.0,
    val_fraction: float = 0.2,
    **_: Any,
) -> Workload:
    from sklearn.datasets import load_digits  # deferred: sklearn is slow to import

    data = load_digits()
    x_all = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y_all = torch.tensor(data.target, dtype=torch.long)
    # a fixed split, the same for every seed: seeds are replicates of one experiment
    order = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(1234))
    n_val = int(len(y_all) * val_fraction)
    x_val, y_val = x_all[order[:n_val]].to(device), y_all[order[:n_val]].to(device)
    x_train, y_train = x_all[order[n_val:]].to(device), y_all[order[n_val:]].to(device)

    layers: list[nn.Module] = []
    width = 64
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden
    layers.append(nn.Linear(width, 10))
    model = nn.Sequential(*layers)

    def train_batch(step: int, generator: torch.Generator) -> Batch:
        idx = torch.randint(len(y_train), (batch_size,), generator=generator).to(device)
        return x_train[idx], y_train[idx]

    def eval_batches() -> list[Batch]:
        return [(x_val, y_val)]

    return Workload(model, train_batch, eval_batches, F.cross_entropy, classification_accuracy)
