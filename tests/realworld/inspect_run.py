"""Read a corpus run's files with plain json/csv and TensorBoard's own EventAccumulator (not
tunetop) and print, per series, the point count, step range and a coarse profile.

This is the labeller's instrument: the point counts in labels.json come from it, and the
profiles are what the problems were judged on (LABELLING.md). Usage:
    python -m tests.realworld.inspect_run tests/realworld/runs/<slug> [--series NAME] [--all]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from collections import defaultdict
from pathlib import Path

Series = dict[str, list[tuple[float, float]]]


def _num(v: object) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _from_rows(rows: list[dict], step_keys: tuple[str, ...], out: Series, prefix: str = "") -> None:
    for i, row in enumerate(rows):
        step = None
        for k in step_keys:
            if k in row and _num(row[k]) is not None:
                step = _num(row[k])
                break
        if step is None:
            step = float(i)
        for k, v in row.items():
            if k in step_keys:
                continue
            x = _num(v)
            if x is not None:
                out[prefix + k].append((step, x))


def read_trainer_state(p: Path) -> Series:
    out: Series = defaultdict(list)
    d = json.loads(p.read_text())
    hist = [e for e in d.get("log_history", []) if "train_runtime" not in e]
    _from_rows(hist, ("step",), out)
    return out


def read_jsonl(p: Path) -> Series:
    out: Series = defaultdict(list)
    rows = []
    for line in p.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(r, dict):
            rows.append(r)
    _from_rows(
        rows,
        ("step", "current_steps", "iteration", "iter", "global_step", "training_iteration"),
        out,
    )
    return out


def read_csv(p: Path) -> Series:
    out: Series = defaultdict(list)
    with p.open(newline="") as f:
        rows = [dict(r) for r in csv.DictReader(f)]
    rows = [{k: v for k, v in r.items() if v not in ("", None)} for r in rows]
    _from_rows(rows, ("step", "training_iteration", "timesteps_total", "iteration"), out)
    return out


def read_tfevents(paths: list[Path]) -> Series:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: Series = defaultdict(list)
    by_dir: dict[Path, list[Path]] = defaultdict(list)
    for p in paths:
        by_dir[p.parent].append(p)
    for d in by_dir:
        ea = EventAccumulator(str(d), size_guidance={"scalars": 0, "tensors": 0})
        ea.Reload()
        tags = ea.Tags()
        rel = "" if d == paths[0].parent else str(d.relative_to(paths[0].parent)) + ":"
        for t in tags.get("scalars", []):
            out[rel + t] = [(float(e.step), float(e.value)) for e in ea.Scalars(t)]
        for t in tags.get("tensors", []):
            from tensorboard.util import tensor_util

            vals = []
            for e in ea.Tensors(t):
                arr = tensor_util.make_ndarray(e.tensor_proto)
                # text summaries (HF writes its TrainingArguments as one) are not scalars
                if arr.size == 1 and arr.dtype.kind in "fiu":
                    vals.append((float(e.step), float(arr.reshape(-1)[0])))
            if vals:
                out[rel + t] = vals
    return out


def read_any(p: Path) -> Series:
    name = p.name
    head = p.read_bytes()[:200]
    if head.startswith(b"version https://git-lfs"):
        print(f"  {p}: git LFS pointer")
        return {}
    if name == "trainer_state.json":
        return read_trainer_state(p)
    if name.endswith(".jsonl"):
        return read_jsonl(p)
    if name.endswith(".json"):
        # one JSON document (a config, a results summary) is not a series; JSON lines are
        # (detectron2 metrics.json, mmengine scalars.json, Ray Tune result.json)
        try:
            json.loads(p.read_text())
            return {}
        except ValueError:
            return read_jsonl(p)
    if name.endswith(".csv"):
        return read_csv(p)
    if "tfevents" in name:
        return read_tfevents([p])
    return {}


def profile(pts: list[tuple[float, float]], n: int = 12) -> str:
    if not pts:
        return ""
    idx = (
        sorted({round(i * (len(pts) - 1) / (n - 1)) for i in range(n)})
        if len(pts) > n
        else range(len(pts))
    )
    return " ".join(f"{int(pts[i][0])}:{pts[i][1]:.4g}" for i in idx)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--series", action="append", default=[])
    ap.add_argument(
        "--all", action="store_true", help="every series, not only loss/lr/grad-like ones"
    )
    a = ap.parse_args(argv)
    for dirpath, _dirs, files in sorted(os.walk(a.root)):
        for fn in sorted(files):
            p = Path(dirpath) / fn
            if not (fn.endswith((".json", ".jsonl", ".csv")) or "tfevents" in fn):
                continue
            try:
                s = read_any(p)
            except Exception as e:
                print(f"  {p}: unreadable ({e})")
                continue
            if not s:
                continue
            print(f"== {p.relative_to(a.root)}")
            for k, pts in s.items():
                kl = k.lower()
                if not (
                    a.all
                    or k in a.series
                    or any(
                        w in kl for w in ("loss", "lr", "learning_rate", "grad", "reward", "norm")
                    )
                ):
                    continue
                vals = [v for _, v in pts]
                fin = [v for v in vals if math.isfinite(v)]
                mn = min(fin) if fin else float("nan")
                span = f"steps {int(pts[0][0])}..{int(pts[-1][0])}"
                print(f"  {k}: n={len(pts)} {span} min={mn:.4g} nonfinite={len(vals) - len(fin)}")
                if k in a.series or not a.series:
                    print("     " + profile(pts, 40 if k in a.series else 12))


if __name__ == "__main__":
    sys.exit(main())


# Names as the corpus's trainers write them, for the labeller's point counts (DESIGN.md's table
# plus the framework names issue 15 lists). Not tunetop's alias table: an independent reading.
CANONICAL = {
    "loss": (
        "loss",
        "train_loss",
        "train/loss",
        "total_loss",
        "loss/train",
        "training_loss",
        "train_loss_step",
        "train/nll_loss",
    ),
    "val_loss": ("eval_loss", "val_loss", "val/loss", "valid_loss", "validation_loss", "eval/loss"),
    "grad_norm": ("grad_norm", "train/grad_norm", "gradient_norm"),
    "lr": (
        "lr",
        "learning_rate",
        "train/lr",
        "train/learning_rate",
        "lr-Adam",
        "lr-AdamW",
        "lr-SGD",
    ),
}


def dedup(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """One point per step, the latest written winning (a restart rewrites its steps)."""
    last: dict[float, float] = {}
    for s, v in pts:
        last[s] = v
    return sorted(last.items())


def canonical_counts(series: Series) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for canon, names in CANONICAL.items():
        for n in names:
            if series.get(n):
                pts = dedup(series[n])
                out[canon] = {
                    "source": n,
                    "count": len(pts),
                    "first_step": int(pts[0][0]),
                    "last_step": int(pts[-1][0]),
                }
                break
    return out
