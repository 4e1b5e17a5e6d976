#!/usr/bin/env python
"""Regenerate tunetop's sample_logs/: real CPU training runs, nothing drawn by hand.

    python sample_logs/make_samples.py [--out sample_logs] [--force] [--only SECTION ...]

Every curve in sample_logs/ comes from an actual training loop run by this script: studies made
by tunetop's own runner (`python -m runner SPEC.toml --out DIR`, and the warmup remedy launched
with `python -m tui plan warmup STUDY --launch`), and runs written by other tools (a plain
PyTorch loop through torch.utils.tensorboard, a PyTorch Lightning CSVLogger run, a Hugging Face
`transformers.Trainer` run, a plain loop writing metrics.jsonl with json.dumps). README.md
beside this file says which folder shows which finding.

Safety: the script writes only into the top-level folders named in SECTIONS (runner/,
tensorboard/, lightning/, hf_trainer/, jsonl/). It refuses to write into one that exists and is
not empty, unless --force is given; --force deletes only the paths a previous run of this
script recorded in MANIFEST.json, and still refuses when something else is left there. The
manifest is rewritten after every section, so an interrupted run can be cleaned up with --force.

Runtime: about 2-5 minutes on 2 CPU cores; no network (HF_HUB_OFFLINE=1: the Hugging Face
model is built from a config, not downloaded).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MANIFEST = "MANIFEST.json"
PACKAGES = ("torch", "lightning", "transformers", "tensorboard", "scikit-learn", "numpy")
# the heavy checkpoint and weight files that tools write; none of them is a log, and together
# they would blow the 20 MB budget (DESIGN.md: sample_logs is small enough to commit)
WEIGHT_FILES = (
    "*.safetensors",
    "optimizer.pt",
    "scheduler.pt",
    "rng_state.pth",
    "training_args.bin",
    "*.ckpt",
    "pytorch_model.bin",
)


def say(msg: str) -> None:
    print(f"[make_samples] {msg}", flush=True)


# ------------------------------------------------------------------------------------------
# manifest and the refuse-unless---force rule
# ------------------------------------------------------------------------------------------


def read_manifest(out: Path) -> list[str]:
    path = out / MANIFEST
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [p for p in data.get("made", []) if isinstance(p, str)]


def safe_child(out: Path, rel: str) -> Path | None:
    """`out / rel` when rel is a plain relative path inside out (a manifest is data: never
    let it point the deletion anywhere else)."""
    if not rel or rel.startswith(("/", "\\")) or ".." in Path(rel).parts:
        return None
    path = (out / rel).resolve()
    try:
        path.relative_to(out.resolve())
    except ValueError:
        return None
    return path if path != out.resolve() else None


def non_empty(path: Path) -> bool:
    return (path.is_dir() and any(path.iterdir())) or (path.exists() and not path.is_dir())


def prepare(out: Path, folders: list[str], force: bool) -> None:
    """Refuse to write into a non-empty output folder; with --force remove only what the
    manifest says this script made, then check again."""
    busy = [f for f in folders if non_empty(out / f)]
    if not busy:
        return
    if not force:
        names = ", ".join(str(out / f) for f in busy)
        raise SystemExit(
            f"make_samples: refusing to write into non-empty {names}"
            f"; pass --force to delete what an earlier run of this script made (listed in "
            f"{out / MANIFEST})"
        )
    made = read_manifest(out)
    for rel in made:
        path = safe_child(out, rel)
        if path is None or rel.split("/")[0] not in folders:
            continue  # a section not being remade keeps its runs
        if path.is_dir():
            shutil.rmtree(path)
            say(f"deleted {path} (made by an earlier run, per {MANIFEST})")
        elif path.exists():
            path.unlink()
    for f in folders:  # a folder emptied above goes too; one still holding files stays
        if (out / f).is_dir() and not any((out / f).iterdir()):
            (out / f).rmdir()
    still = [f for f in folders if non_empty(out / f)]
    if still:
        raise SystemExit(
            f"make_samples: {', '.join(str(out / f) for f in still)} still hold files this "
            f"script did not make (not in {MANIFEST}); move them away first"
        )


def write_manifest(out: Path, made: list[str], timings: dict[str, float]) -> None:
    """Record `made` (paths relative to out) as everything this script made there."""
    data = {
        "made_by": "sample_logs/make_samples.py",
        "note": "paths (relative to this folder) that make_samples.py created; "
        "--force deletes exactly these before remaking them",
        "made": sorted(set(made)),
        "versions": versions(),
        "python": sys.version.split()[0],
        "seconds": timings,
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, out / MANIFEST)


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def strip_weights(root: Path) -> None:
    """Delete model weights, optimizer states and checkpoints under root (logs stay)."""
    for pattern in WEIGHT_FILES:
        for path in root.rglob(pattern):
            path.unlink()
    for ckpt_dir in root.rglob("checkpoints"):
        if ckpt_dir.is_dir():
            for pt in ckpt_dir.glob("*.pt"):
                pt.unlink()
            if not any(ckpt_dir.iterdir()):
                ckpt_dir.rmdir()


def anonymize_event_files(root: Path) -> None:
    """Event files are named events.out.tfevents.<time>.<hostname>.<pid>.<n>: put `host` in
    place of this machine's name, which has no business in committed files. Readers find
    event files by the `tfevents` part, so the rename changes nothing they read."""
    host = socket.gethostname()
    for path in root.rglob("*tfevents*"):
        if f".{host}." in path.name:
            path.rename(path.with_name(path.name.replace(f".{host}.", ".host.", 1)))


# ------------------------------------------------------------------------------------------
# runner studies (python -m runner SPEC.toml --out DIR)
# ------------------------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    # two trials at once on two cores: one thread each, so they do not fight over the cores
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def folder_of(output: str) -> Path | None:
    """The runner prints its output folder first and last, progress lines between: echo the
    progress and return the folder (None when the last line names none)."""
    lines = [ln for ln in output.splitlines() if ln.strip()]
    for line in lines[1:-1]:
        say(f"  {line}")
    return Path(lines[-1]) if lines and Path(lines[-1]).is_dir() else None


def run_runner(spec: dict[str, Any], out_dir: Path, tmp: Path) -> Path:
    """Write the spec as TOML (validated by runner.spec) and run it; returns the folder."""
    from runner import spec as rspec  # no torch import: cheap

    parsed = rspec.from_dict(spec)
    path = tmp / f"{spec['name']}.toml"
    path.write_text(rspec.to_toml(parsed))
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "runner", str(path), "--out", str(out_dir)],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    folder = folder_of(proc.stdout)
    # exit 3 is "diverged", the point of some of these samples; a study's own exit code says
    # whether the study ran, so anything but a folder on the last line is a real failure
    if folder is None:
        raise RuntimeError(
            f"runner failed on {path} (exit {proc.returncode}):\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return folder


def base_spec(
    name: str,
    workload: str,
    steps: int,
    optimizer: dict[str, Any],
    schedule: str = "cosine",
    **extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "workload": workload,
        "name": name,
        "max_train_steps": steps,
        "batch_size": 64,
        "seed": 0,
        "device": "cpu",  # samples must not depend on the machine that makes them
        "eval_every": 25,
        "checkpoint_every": 0,  # no periodic checkpoints: they are megabytes, not logs
        "optimizer": optimizer,
        "schedule": {"kind": schedule},
    }
    spec.update(extra)
    return spec


def grid(name: str, values: list[float]) -> dict[str, Any]:
    return {"name": name, "search": "grid", "grid": {"optimizer.lr": values}, "parallel": 2}


def section_runner(out: Path, tmp: Path) -> list[str]:
    rdir = out / "runner"
    made: list[str] = []

    def done(folder: Path, what: str) -> None:
        rel = folder.relative_to(out).as_posix()
        made.append(rel)
        say(f"made {rel}: {what}")

    # (a) an interior best: Adam on the digits MLP, one decade apart. 1e-2 wins; 1e-1 is
    #     feasible but worse, 1e-4 far too slow for 400 steps.
    spec = base_spec("lr_interior", "digits_mlp", 400, {"name": "adam", "lr": 1e-3})
    spec["study"] = grid("lr_interior", [1e-4, 1e-3, 1e-2, 1e-1])
    done(run_runner(spec, rdir, tmp), "LR sweep, best interior (no R5)")

    # (b) every rate too small: the best is the highest one searched (R5, side high)
    spec = base_spec("lr_too_small", "digits_mlp", 400, {"name": "adam", "lr": 1e-5})
    spec["study"] = grid("lr_too_small", [3e-6, 1e-5, 3e-5])
    done(run_runner(spec, rdir, tmp), "LR sweep, all rates too small: best at the edge (R5)")

    # (c) SGD with momentum 0.9 for 200 steps: faster is better until the loss blows up.
    #     1.0 and 3.0 blow up (>5x the first loss), 0.3 is the best and the largest feasible
    #     rate (R16 best_at_feasibility_edge); 0.3 is not the edge of the searched range.
    spec = base_spec(
        "lr_feasibility_edge", "digits_mlp", 200, {"name": "momentum", "lr": 0.1, "momentum": 0.9}
    )
    spec["study"] = grid("lr_feasibility_edge", [0.01, 0.03, 0.1, 0.3, 1.0, 3.0])
    done(
        run_runner(spec, rdir, tmp),
        "LR sweep, largest rates diverge: best at the feasibility edge (R16)",
    )

    # (d) the residual CNN whose data has an outlier batch (inputs x30) every 40 steps, Adam
    #     2e-3 with no clipping: gradient-norm outliers (R14) and the loss spikes (R13) of
    #     those batches. Every 40 rather than the workload's default 25: the trailing window
    #     of the spike detector then holds fewer earlier outliers, and each spike stands out.
    #     A higher rate is no better: at 3e-3 (every 25) one outlier batch's loss exceeded 5x
    #     the first loss, and the run read as diverged (R16) instead.
    spec = base_spec(
        "resnet_outliers",
        "tiny_resnet",
        250,
        {"name": "adam", "lr": 2e-3},
        workload_options={"outlier_every": 40, "outlier_scale": 30.0},
    )
    done(run_runner(spec, rdir, tmp), "one run with loss spikes and gradient-norm outliers")

    # (e) the post-LN transformer with SGD + momentum at constant rates: 1.0 diverges to NaN,
    #     the source of the warmup remedy below (R12: instability at the top of a sweep).
    spec = base_spec(
        "transformer_lr",
        "tiny_transformer",
        1000,
        {"name": "momentum", "lr": 0.1, "momentum": 0.9},
        schedule="constant",
        batch_size=32,
        eval_every=50,
    )
    spec["study"] = grid("transformer_lr", [0.03, 0.1, 0.3, 1.0])
    study = run_runner(spec, rdir, tmp)
    done(study, "transformer LR sweep whose top rate diverges (source of the warmup study)")

    # the warmup study the dashboard's `w` key would launch for that sweep (R18, R19): the
    # lead's remedy code picks the unstable rate and the warmup lengths; we only wait for it
    warm = launch_plan("warmup", study, rdir)
    if warm is not None:
        relativize_remedy(warm, out)
        done(warm, "warmup study launched by `python -m tui plan warmup ... --launch`")

    # (f) the same post-LN transformer with Adam at constant rates, no warmup: 0.001-0.01
    #     train; at 0.03 and 0.1 the first updates push the loss above its start and the run
    #     stalls near chance (early instability, R13). Then `w` on the 0.03 run at factor 1
    #     (its own rate): warmup 100 rescues it, warmup 10 does not.
    #     Measured first: 10x (0.3) collapses with either warmup, and so does 0.1 with warmup
    #     100, so R18's 10x is out of this model's reach; 1x is R17's "warmup fixes it".
    spec = base_spec(
        "transformer_adam",
        "tiny_transformer",
        1000,
        {"name": "adam", "lr": 0.001},
        schedule="constant",
        eval_every=50,
    )
    spec["study"] = grid("transformer_adam", [0.001, 0.003, 0.01, 0.03, 0.1])
    adam = run_runner(spec, rdir, tmp)
    done(adam, "Adam sweep whose top rates are unstable from the first steps (R13)")
    # w on the stalled run itself (0.03): on the whole sweep the plan would take the lowest
    # unstable rate, 0.01, whose late wobble (R12, mid) is no stall for warmup to rescue
    stalled = next(
        t
        for t in sorted(adam.glob("t*"))
        if json.loads((t / "run.json").read_text())["hparams"]["optimizer.lr"] == 0.03
    )
    rescue = launch_plan("warmup", stalled, rdir, extra=["--factor", "1"])
    if rescue is not None:
        # a name of its own beside the 10x study above (the plan names both "warmup-...")
        named = rescue.with_name(rescue.name.replace("warmup-", "warmup_rescue-", 1))
        rescue.rename(named)
        relativize_remedy(named, out)
        done(named, "warmup study at the unstable rate (--factor 1) that rescues the run")
    strip_weights(rdir)
    return made


def relativize_remedy(study: Path, out: Path) -> None:
    """The plan records the remedied run by its absolute path (run.json's `remedy.source`,
    study.json). In a committed sample that is this machine's path: write it relative to the
    repository root instead (`sample_logs/runner/...`, valid from a checkout's root). Only
    these path strings change; nothing a detector reads."""
    prefix = str(REPO) + os.sep if out.resolve().is_relative_to(REPO) else str(out) + os.sep
    for path in [study / "study.json", *study.glob("t*/run.json")]:
        if path.exists():
            text = path.read_text()
            if prefix in text:
                path.write_text(text.replace(prefix, ""))


def launch_plan(
    kind: str, target: Path, out_dir: Path, timeout: float = 600, extra: list[str] | None = None
) -> Path | None:
    """`python -m tui plan KIND TARGET --launch --out DIR`, then wait for the study it
    started (the supervisor detaches it into its own session). Returns its folder: the one
    its output names, else the newest folder the launch added to out_dir (None if none)."""
    from tui.remedy.supervise import pid_alive  # the supervisor's own liveness test

    before = {p.name for p in out_dir.iterdir()}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tui",
            "plan",
            kind,
            str(target),
            "--launch",
            "--out",
            str(out_dir),
            *(extra or []),
        ],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    for line in proc.stdout.splitlines():
        say(f"  {line}")
    if proc.returncode != 0:
        raise RuntimeError(
            f"tui plan {kind} failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    m = re.search(r"\(pid (\d+)\) into .*; output: (.+)$", proc.stderr.strip(), re.M)
    if m is None:
        raise RuntimeError(f"tui plan {kind}: no launch line in {proc.stderr!r}")
    pid, log = int(m.group(1)), Path(m.group(2).strip())
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {kind} study (pid {pid}) did not end in {timeout:.0f} s")
        time.sleep(0.5)
    folder = folder_of(log.read_text()) if log.exists() else None
    if folder is None:  # a study that ended early without its closing line left its folder
        new = sorted(p for p in out_dir.iterdir() if p.name not in before)
        folder = new[-1] if new else None
    return folder


# ------------------------------------------------------------------------------------------
# runs written by other tools
# ------------------------------------------------------------------------------------------


def digits_tensors() -> tuple[Any, Any, Any, Any]:
    """scikit-learn's bundled 8x8 digits (no download), a fixed 80/20 split."""
    import torch
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(1234))
    n_val = len(y) // 5
    return x[order[n_val:]], y[order[n_val:]], x[order[:n_val]], y[order[:n_val]]


def mlp() -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)
    )


def section_tensorboard(out: Path, tmp: Path) -> list[str]:
    """A plain PyTorch loop logging through torch.utils.tensorboard.SummaryWriter: loss, the
    unclipped grad norm (R14) and the rate every step, validation loss every 25 steps, and
    one add_scalars call (train and val accuracy), which writes the subfolders
    accuracy_train/ and accuracy_val/ beside the main event file (still one run)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.tensorboard import SummaryWriter

    run = out / "tensorboard" / "torch_loop"
    torch.manual_seed(0)
    xt, yt, xv, yv = digits_tensors()
    model = mlp()
    steps, lr = 300, 0.05
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    gen = torch.Generator().manual_seed(0)
    writer = SummaryWriter(log_dir=str(run))
    for step in range(steps):
        idx = torch.randint(len(yt), (64,), generator=gen)
        logits = model(xt[idx])
        loss = F.cross_entropy(logits, yt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), math.inf)  # measure only
        writer.add_scalar("Loss/train", loss.item(), step)
        writer.add_scalar("grad_norm", norm.item(), step)
        writer.add_scalar("learning_rate", opt.param_groups[0]["lr"], step)
        opt.step()
        sched.step()
        if (step + 1) % 25 == 0:
            with torch.no_grad():
                model.eval()
                vlogits = model(xv)
                model.train()
            writer.add_scalar("Loss/val", F.cross_entropy(vlogits, yv).item(), step)
            writer.add_scalars(
                "accuracy",
                {
                    "train": (logits.argmax(1) == yt[idx]).float().mean().item(),
                    "val": (vlogits.argmax(1) == yv).float().mean().item(),
                },
                step,
            )
    writer.close()
    anonymize_event_files(run)
    (run / "hparams.json").write_text(
        json.dumps(
            {"lr": lr, "momentum": 0.9, "batch_size": 64, "max_train_steps": steps}, indent=1
        )
    )
    say(f"made tensorboard/torch_loop: {steps} steps of SGD+momentum on digits, tfevents")
    return ["tensorboard"]


def section_lightning(out: Path, tmp: Path) -> list[str]:
    """A tiny LightningModule trained by a real Trainer.fit on CPU, logged by CSVLogger:
    lightning/lightning_logs/version_0/metrics.csv and hparams.yaml."""
    import lightning as L
    import torch
    import torch.nn.functional as F
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.utilities import grad_norm
    from torch.utils.data import DataLoader, TensorDataset

    class DigitsModule(L.LightningModule):
        def __init__(self, lr: float = 0.2, max_steps: int = 300) -> None:
            super().__init__()
            self.save_hyperparameters()  # -> hparams.yaml: lr, max_steps
            self.net = mlp()

        def training_step(self, batch: Any, _idx: int) -> Any:
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            self.log("train_loss", loss, on_step=True, on_epoch=False)
            return loss

        def on_before_optimizer_step(self, optimizer: Any) -> None:
            # R14: the total unclipped L2 norm only (not one column per parameter)
            total = grad_norm(self.net, norm_type=2)["grad_2.0_norm_total"]
            self.log("grad_2.0_norm_total", total, on_step=True, on_epoch=False)

        def validation_step(self, batch: Any, _idx: int) -> None:
            x, y = batch
            logits = self.net(x)
            self.log("val_loss", F.cross_entropy(logits, y), on_epoch=True)
            self.log("val_acc", (logits.argmax(1) == y).float().mean(), on_epoch=True)

        def configure_optimizers(self) -> Any:
            opt = torch.optim.SGD(self.parameters(), lr=self.hparams["lr"])
            sched = torch.optim.lr_scheduler.LinearLR(
                opt, 1.0, 0.0, total_iters=self.hparams["max_steps"]
            )
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    L.seed_everything(0, verbose=False)
    xt, yt, xv, yv = digits_tensors()
    train = DataLoader(
        TensorDataset(xt, yt),
        batch_size=64,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    val = DataLoader(TensorDataset(xv, yv), batch_size=512)
    root = out / "lightning"
    trainer = L.Trainer(
        max_steps=300,
        accelerator="cpu",
        devices=1,
        logger=CSVLogger(str(root)),
        callbacks=[LearningRateMonitor(logging_interval="step")],
        log_every_n_steps=1,
        val_check_interval=25,
        check_val_every_n_epoch=None,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(DigitsModule(), train, val)
    strip_weights(root)
    say("made lightning/lightning_logs/version_0: Trainer.fit, 300 steps, CSVLogger metrics.csv")
    return ["lightning"]


def section_hf(out: Path, tmp: Path) -> list[str]:
    cwd = Path.cwd()
    os.chdir(out)  # relative paths only: Trainer writes its arguments into the event file
    try:
        return _section_hf(Path("."))
    finally:
        os.chdir(cwd)


def _section_hf(out: Path) -> list[str]:
    """A real transformers.Trainer run on a tiny GPT-2 built from a config (no download) on
    generated sequence reversal. Trainer writes checkpoint-N/trainer_state.json, the final
    trainer_state.json and runs/*/events (report_to tensorboard); the weights, optimizer and
    RNG states are deleted afterwards (megabytes that are not logs)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run = out / "hf_trainer" / "tiny_gpt2"
    # a fixed event-file folder name: the default one (runs/<date>_<hostname>) would put the
    # machine's name into the committed files
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run / "runs" / "sample")
    import torch
    from torch.utils.data import Dataset
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    length, vocab = 8, 16

    class Reversal(Dataset[dict[str, torch.Tensor]]):
        """n random tokens, a separator (0), the tokens reversed; only the reversal is
        scored (labels -100 elsewhere; GPT-2 shifts labels itself)."""

        def __init__(self, n: int, seed: int) -> None:
            g = torch.Generator().manual_seed(seed)
            tokens = torch.randint(1, vocab, (n, length), generator=g)
            self.ids = torch.cat([tokens, torch.zeros(n, 1, dtype=torch.long), tokens.flip(1)], 1)
            self.labels = self.ids.clone()
            self.labels[:, : length + 1] = -100

        def __len__(self) -> int:
            return len(self.ids)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"input_ids": self.ids[i], "labels": self.labels[i]}

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=vocab,
        n_positions=2 * length + 1,
        n_embd=64,
        n_layer=2,
        n_head=4,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = GPT2LMHeadModel(config)
    args = TrainingArguments(
        output_dir=str(run),
        max_steps=160,
        per_device_train_batch_size=32,
        per_device_eval_batch_size=256,
        learning_rate=3e-3,
        lr_scheduler_type="cosine",
        warmup_steps=16,
        weight_decay=0.0,
        logging_steps=4,
        eval_strategy="steps",
        eval_steps=20,
        save_strategy="steps",
        save_steps=40,
        report_to=["tensorboard"],
        use_cpu=True,
        seed=0,
        data_seed=0,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Reversal(160 * 32, 0),
        eval_dataset=Reversal(256, 10_000),
    )
    trainer.train()
    trainer.save_state()  # the top-level trainer_state.json, as after a finished run
    strip_weights(run)
    anonymize_event_files(run)
    say(
        "made hf_trainer/tiny_gpt2: transformers.Trainer, 160 steps, trainer_state.json, "
        "checkpoint-40..160 and runs/sample events"
    )
    return ["hf_trainer"]


def section_jsonl(out: Path, tmp: Path) -> list[str]:
    """'The user's own code': a plain PyTorch loop that writes one JSON object per line with
    json.dumps (its own key names: train_loss, learning_rate; tunetop's aliases map them)."""
    import torch
    import torch.nn.functional as F

    run = out / "jsonl" / "plain_loop"
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    xt, yt, xv, yv = digits_tensors()
    model = mlp()
    steps, lr = 300, 3e-3
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LinearLR(opt, 1.0, 0.0, total_iters=steps)
    gen = torch.Generator().manual_seed(0)
    with open(run / "metrics.jsonl", "w") as f:
        for step in range(steps):
            idx = torch.randint(len(yt), (64,), generator=gen)
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), math.inf)
            row = {
                "step": step,
                "time": time.time(),
                "train_loss": loss.item(),
                "grad_norm": norm.item(),
                "learning_rate": opt.param_groups[0]["lr"],
            }
            f.write(json.dumps(row) + "\n")
            opt.step()
            sched.step()
            if (step + 1) % 25 == 0:
                with torch.no_grad():
                    val = F.cross_entropy(model(xv), yv).item()
                f.write(json.dumps({"step": step, "time": time.time(), "val_loss": val}) + "\n")
            f.flush()
    (run / "hparams.json").write_text(
        json.dumps(
            {
                "learning_rate": lr,
                "weight_decay": 0.01,
                "batch_size": 64,
                "max_steps": steps,
                "optimizer": "adamw",
            },
            indent=1,
        )
    )
    say("made jsonl/plain_loop: AdamW on digits, 300 steps, metrics.jsonl by json.dumps")
    return ["jsonl"]


@dataclass(frozen=True)
class Section:
    folder: str
    make: Callable[[Path, Path], list[str]]


SECTIONS: dict[str, Section] = {
    "runner": Section("runner", section_runner),
    "tensorboard": Section("tensorboard", section_tensorboard),
    "lightning": Section("lightning", section_lightning),
    "hf": Section("hf_trainer", section_hf),
    "jsonl": Section("jsonl", section_jsonl),
}


def sizes(root: Path) -> Iterator[tuple[str, int]]:
    for child in sorted(root.iterdir()):
        if child.is_dir():
            yield child.name, sum(p.stat().st_size for p in child.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(HERE), help="where to write (default: this folder)")
    ap.add_argument(
        "--force",
        action="store_true",
        help="delete what an earlier run of this script made (MANIFEST.json) first",
    )
    ap.add_argument(
        "--only",
        nargs="+",
        choices=list(SECTIONS),
        metavar="SECTION",
        help=f"remake only these sections ({', '.join(SECTIONS)})",
    )
    ns = ap.parse_args(argv)
    out = Path(ns.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    chosen = ns.only or list(SECTIONS)
    folders = [SECTIONS[s].folder for s in chosen]
    prepare(out, folders, ns.force)
    # entries of sections not remade now stay in the manifest (their runs stay on disk)
    made = [p for p in read_manifest(out) if p.split("/")[0] not in folders]
    timings: dict[str, float] = {}
    t_all = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="make_samples-") as tmpname:
        tmp = Path(tmpname)
        for name in chosen:
            section = SECTIONS[name]
            say(f"section {name} -> {out / section.folder}")
            t0 = time.monotonic()
            # while the section runs its whole folder is recorded (prepare() found it empty,
            # so all of it is ours): a crash mid-way leaves it deletable by --force
            made.append(section.folder)
            write_manifest(out, made, timings)
            section.make(out, tmp)
            # then only what it made, so that --force spares anything put there later
            made.remove(section.folder)
            made += [f"{section.folder}/{c.name}" for c in sorted((out / section.folder).iterdir())]
            timings[name] = round(time.monotonic() - t0, 1)
            write_manifest(out, made, timings)
            say(f"section {name} done in {timings[name]:.0f} s")
    listing = list(sizes(out))  # one walk of the tree for the lines and the total
    for folder, size in listing:
        say(f"{folder}/: {size / 1e6:.2f} MB")
    total = sum(size for _, size in listing)
    say(f"all of {out}: {total / 1e6:.2f} MB; {time.monotonic() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
