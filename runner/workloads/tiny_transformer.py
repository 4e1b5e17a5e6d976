"""A tiny decoder-only transformer, post-LN, on generated sequence reversal.

Each sequence is `n` random tokens, a separator, then the same tokens reversed; the loss and
accuracy count only the reversed half (the first half is unpredictable). The blocks are post-LN
(x = LN(x + f(x))), the arrangement that is known to need warmup: with Adam at a high learning
rate and no warmup the first updates blow the loss up and training stalls or diverges (an early
instability, R13); ramping the rate up (R18) lets the same peak rate train. Measured on a CPU
(batch 64, 600 steps, cosine decay, about 15 s each): Adam at lr 0.03 without warmup stalls at
chance (val_accuracy 0.14), with warmup_steps = 100 it solves the task (val_accuracy 1.0); at lr
0.01 both train. `pre_ln = true` gives the stable arrangement instead (R17's architecture
remedy).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from runner.workloads import Batch, Workload, classification_accuracy

SEP = 0


def make_sequences(
    n: int, length: int, vocab: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.randint(1, vocab, (n, length), generator=generator)
    seq = torch.cat([tokens, torch.full((n, 1), SEP), tokens.flip(1)], 1)
    x, y = seq[:, :-1], seq[:, 1:].clone()
    y[:, :length] = -100  # the first half and the separator are not predictable
    return x, y


class Block(nn.Module):
    def __init__(self, d: int, heads: int, pre_ln: bool) -> None:
        super().__init__()
        self.heads, self.pre_ln = heads, pre_ln
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)

    def attn(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        return self.proj(y.transpose(1, 2).reshape(b, t, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_ln:  # x + f(LN(x))
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))
        x = self.ln1(x + self.attn(x))  # post-LN: LN(x + f(x))
        return self.ln2(x + self.mlp(x))


class TinyTransformer(nn.Module):
    def __init__(
        self, vocab: int, context: int, d: int, layers: int, heads: int, pre_ln: bool
    ) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(context, d) / math.sqrt(d))
        self.blocks = nn.Sequential(*[Block(d, heads, pre_ln) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d) if pre_ln else nn.Identity()
        self.head = nn.Linear(d, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.tok(x) + self.pos[: x.shape[1]]
        return self.head(self.ln_f(self.blocks(h)))


def _loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=-100)


def tiny_transformer(
    *,
    batch_size: int,
    seed: int,
    device: torch.device,
    length: int = 8,
    vocab: int = 16,
    d_model: int = 64,
    layers: int = 2,
    heads: int = 4,
    pre_ln: bool = False,
    data_seed: int = 0,
    **_: Any,
) -> Workload:
    model = TinyTransformer(vocab, 2 * length + 1, d_model, layers, heads, pre_ln)
    val_x, val_y = make_sequences(
        512, length, vocab, torch.Generator().manual_seed(10_000 + data_seed)
    )
    val_x, val_y = val_x.to(device), val_y.to(device)

    def train_batch(step: int, generator: torch.Generator) -> Batch:
        x, y = make_sequences(batch_size, length, vocab, generator)
        return x.to(device), y.to(device)

    def eval_batches() -> list[Batch]:
        return [(val_x, val_y)]

    return Workload(model, train_batch, eval_batches, _loss, classification_accuracy)
