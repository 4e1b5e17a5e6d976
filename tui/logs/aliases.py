"""Mapping the names a logger writes onto tunetop's canonical metric names (DESIGN.md).

The table is data: `tunetop.toml`'s `[aliases]` extends it. Matching ignores case. Where the
folder, not the tag, says train or validation (Keras' `train/` and `validation/`,
torch.utils.tensorboard's `loss_val/`, tensorboardX's `loss/val/`), the folder decides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

CANONICAL = ("loss", "val_loss", "grad_norm", "lr", "clipped")

DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {
    "loss": (
        "loss",
        "train_loss",
        "train/loss",
        "loss/train",
        "training_loss",
        "batch_loss",
        "train_loss_step",
        "loss_step",
        "train/loss_step",
        "trainer/loss",
        "epoch_loss",
        "losses/train",
        "train.loss",
    ),
    "val_loss": (
        "val_loss",
        "eval_loss",
        "val/loss",
        "valid_loss",
        "validation_loss",
        "loss/val",
        "eval/loss",
        "loss/valid",
        "loss/validation",
        "validation/loss",
        "valid/loss",
        "val_loss_epoch",
        "test_loss",
        "epoch_val_loss",
        "val.loss",
        "eval.loss",
    ),
    "grad_norm": (
        "grad_norm",
        "gradient_norm",
        "train/grad_norm",
        "grad_norm/total",
        "global_norm",
        "grad_2.0_norm_total",
        "grad_norm_total",
        "total_grad_norm",
        "gradient_norm/total",
        "train/gradient_norm",
        "optim/grad_norm",
        "grad-norm",
    ),
    "lr": (
        "lr",
        "learning_rate",
        "train/lr",
        "train/learning_rate",
        "lr-adam",
        "lr-adamw",
        "lr-sgd",
        "lr-rmsprop",
        "lr-nadam",
        "lr_0",
        "epoch_learning_rate",
        "optim/lr",
        "lr-adam/pg1",
        "lr-adamw/pg1",
        "lr-sgd/pg1",
    ),
    "clipped": ("clipped", "grad_clipped", "train/clipped", "clip_fraction"),
}

# Second-tier names (issue 15): a run's training / validation loss under a name that is only
# sometimes THE loss. detectron2 logs `total_loss` beside its parts (loss_cls, loss_box_reg);
# TRL / fairseq-style loops log `train/nll_loss`; Hugging Face names per-dataset evaluation
# losses `eval_<name>_loss`. Each is kept under its own name; where a run logs no first-tier
# name for the metric, the workspace also reads one of them as the metric itself (see
# `fallback_canonical` and workspace._add_fallbacks, which says which one is chosen).
_FALLBACK_LOSS = re.compile(r"^(?:(?P<pre>[\w.\-]+)/)?(?:total_loss|nll_loss|total/loss)$", re.I)
_FALLBACK_VAL = re.compile(
    r"^(?:eval|val|valid|validation|test)(?:_|/)(?P<name>[\w.\-]+?)(?:_|/)loss$", re.I
)

# Folder names that say which split a tag belongs to.
VAL_FOLDERS = frozenset({"val", "valid", "validation", "eval", "evaluation", "test", "dev"})
TRAIN_FOLDERS = frozenset({"train", "training"})


def split_of(folder_parts: Sequence[str]) -> str | None:
    """'val' or 'train' when the last folder between the run and the file says so
    (`validation/`, `loss_val/`, `loss/val/`), else None."""
    for part in reversed(folder_parts):
        low = part.lower()
        tail = low.rsplit("_", 1)[-1] if "_" in low else low
        if low in VAL_FOLDERS or tail in VAL_FOLDERS:
            return "val"
        if low in TRAIN_FOLDERS or tail in TRAIN_FOLDERS:
            return "train"
    return None


def fallback_canonical(name: str) -> str | None:
    """`loss` or `val_loss` when `name` is a second-tier name for it, else None.

    `total_loss`, `nll_loss`, `train/nll_loss`, `<anything>/total_loss` -> loss (a val-ish
    prefix, `eval/nll_loss`, -> val_loss); `eval_<name>_loss`, `eval/<name>_loss`,
    `val_<name>_loss` -> val_loss. Not `eval_loss` itself: that is first-tier.
    """
    m = _FALLBACK_LOSS.match(name)
    if m is not None:
        pre = (m.group("pre") or "").lower()
        return "val_loss" if split_of((pre,)) == "val" else "loss"
    return "val_loss" if _FALLBACK_VAL.match(name) else None


class AliasTable:
    """Case-insensitive name -> canonical name, extensible by the user's `[aliases]`."""

    def __init__(self, extra: Mapping[str, Sequence[str]] | None = None) -> None:
        self._map: dict[str, str] = {}
        for canonical, names in DEFAULT_ALIASES.items():
            for name in names:
                self._map[name.lower()] = canonical
        # the user's names win over the built-in ones
        for canonical, names in (extra or {}).items():
            for name in names:
                self._map[str(name).lower()] = str(canonical)

    def canonical(self, name: str, split: str | None = None) -> str:
        """The canonical name of `name`, or `name` itself. `split` is what the folder says."""
        found = self._map.get(name.lower())
        if found is None and split is not None:
            # a Keras-style tag inside train/ or validation/: epoch_loss, loss
            low = name.lower()
            if low.startswith("epoch_"):
                found = self._map.get(low[len("epoch_") :])
        if split == "val" and found == "loss":
            return "val_loss"
        return found if found is not None else name
