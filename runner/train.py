"""The training loop of one trial. Read it top to bottom, like nanoGPT's train.py.

    set up:  device, precision, seed, workload, optimizer; resume from checkpoints/last.pt
    loop:    set the LR -> forward/backward -> unclipped gradient norm (R14) -> clip (R22)
             -> optimizer step -> keep the step's values on the device
             -> every FLUSH_EVERY steps: one transfer to the host, rows to metrics.jsonl,
                NaN/Inf check -> evaluate -> checkpoint
    end:     a status for run.json: finished, diverged, stopped

No per-step host sync: loss and gradient norm stay on the device as tensors and are stacked and
copied to the host once per flush (issue 4 item 4); the learning rate and the step's wall time
are host values anyway. The CPU takes the same path. Whether a step was clipped is computed from
the flushed norms (`norm > clip_norm`, exactly R22's condition), not on the device every step.
What does sync: evaluation (it reports numbers), checkpoints, and fp16's GradScaler, which must
read the inf check every step to skip overflowing steps.

A NaN or Inf loss is noticed at the next flush: the rows up to and including the first bad step
are written (the dashboard's divergence finding needs that point, R16) and the trial ends as
`diverged`, not with a traceback.

Under torchrun (WORLD_SIZE > 1) every process trains on its own batches (batch_size / world
size each), DDP averages the gradients, the logged loss is averaged over the processes at each
flush, and only rank 0 writes metrics, checkpoints and run.json.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from runner import checkpoint, workloads
from runner.optim import build_optimizer
from runner.rundir import EXIT_DIVERGED, EXIT_FINISHED, MetricsWriter
from runner.schedule import lr_at
from runner.spec import RunSpec, to_dict

FLUSH_EVERY = 50  # steps between device->host transfers of the logged values
FLUSH_SECONDS = 2.0  # ... and at least this often (single process), so the dashboard is live
PROGRESS_EVERY = 100  # steps between progress lines on stdout


# ------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------


@dataclass
class Stop:
    """Set by the SIGTERM / SIGINT handler; the loop stops at the next flush."""

    signum: int = 0

    def request(self, signum: int, _frame: object = None) -> None:
        self.signum = signum

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self.request)
        signal.signal(signal.SIGINT, self.request)


@dataclass
class Result:
    status: str  # finished | diverged | stopped
    exit_code: int
    last_step: int  # the last step trained (-1: none)
    best_val_loss: float = math.inf
    best_step: int | None = None


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    return torch.device(name)


def autocast_for(device: torch.device, precision: str) -> AbstractContextManager[Any]:
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def batch_seed(seed: int, rank: int, step: int) -> int:
    """The batch generator's seed at `step`: the data order needs no state to resume."""
    return ((seed * 1_000_003 + rank) << 32) + step


def to_device(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, (tuple, list)):
        return type(x)(to_device(v, device) for v in x)
    if isinstance(x, dict):
        return {k: to_device(v, device) for k, v in x.items()}
    return x


def forward(model: nn.Module, x: Any) -> Any:
    if isinstance(x, dict):
        return model(**x)
    if isinstance(x, (tuple, list)):
        return model(*x)
    return model(x)


def total_grad_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """R14: the L2 norm of the whole gradient, before any clipping; stays on the device."""
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def clip_(grads: list[torch.Tensor], norm: torch.Tensor, clip_norm: float) -> None:
    """R22: g' = lambda * g / ||g|| where ||g|| > lambda, in place, without a host sync."""
    if grads:
        torch._foreach_mul_(grads, torch.clamp(clip_norm / norm, max=1.0))


@torch.no_grad()
def evaluate(
    model: nn.Module, work: workloads.Workload, device: torch.device, precision: str
) -> tuple[float, float | None]:
    """Mean validation loss (and accuracy, when the workload has it) over eval_batches()."""
    model.eval()
    loss_sum, acc_sum, n = 0.0, 0.0, 0
    batches: Iterable[workloads.Batch] = work.eval_batches()
    for x, y in batches:
        x, y = to_device(x, device), to_device(y, device)
        with autocast_for(device, precision):
            out = forward(model, x)
            loss = work.loss_fn(out, y)
        k = int(y.shape[0]) if isinstance(y, torch.Tensor) and y.dim() else 1
        loss_sum += float(loss) * k
        if work.accuracy is not None:
            acc_sum += float(work.accuracy(out, y)) * k
        n += k
    model.train()
    if n == 0:
        return math.nan, None
    return loss_sum / n, (acc_sum / n if work.accuracy is not None else None)


@dataclass
class StepLog:
    """The steps since the last flush: host values as lists, device values as tensors."""

    steps: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    losses: list[torch.Tensor] = field(default_factory=list)
    norms: list[torch.Tensor] = field(default_factory=list)
    last_flush: float = field(default_factory=time.monotonic)

    def add(self, step: int, lr: float, loss: torch.Tensor, norm: torch.Tensor) -> None:
        self.steps.append(step)
        self.times.append(time.time())
        self.lrs.append(lr)
        self.losses.append(loss)
        self.norms.append(norm)

    def take(self, world: int, stop_flag: bool) -> tuple[list[dict[str, Any]], bool]:
        """Rows of the buffered steps (one device->host copy) and whether any process asked
        to stop. Under DDP this is a collective: every rank calls it at the same steps."""
        self.last_flush = time.monotonic()
        n = len(self.steps)
        dev = self.losses[0].device if self.losses else torch.device("cpu")
        values = (
            torch.stack(
                [torch.stack(self.losses).float().reshape(n), torch.stack(self.norms).float()]
            )
            if n
            else torch.zeros(2, 0, device=dev)
        )
        stop = stop_flag
        if world > 1:
            flag = torch.full((2, 1), float(stop_flag), device=values.device)
            values = torch.cat([values, flag], 1)
            dist.all_reduce(values)  # any stop stops all
            # the loss averaged over processes; the norm, the same on every rank after DDP's
            # all-reduce, back to that value
            values /= world
            stop = bool(values[0, -1] > 0)
            values = values[:, :-1]
        losses, norms = values.cpu().tolist()  # the one host sync of the flush
        rows = [
            {"step": s, "time": t, "loss": loss, "grad_norm": norm, "lr": lr}
            for s, t, loss, norm, lr in zip(
                self.steps, self.times, losses, norms, self.lrs, strict=True
            )
        ]
        self.steps, self.times, self.lrs, self.losses, self.norms = [], [], [], [], []
        return rows, stop


# ------------------------------------------------------------------------------------------
# the trial
# ------------------------------------------------------------------------------------------


def train(
    spec: RunSpec,
    run_dir: Path,
    *,
    resume: bool = False,
    stop: Stop | None = None,
    print_fn: Any = print,
) -> Result:
    """Train `spec` into `run_dir` (which holds run.json already); returns how it ended."""
    stop = stop or Stop()
    run_dir = Path(run_dir)

    # ---- processes and device ----
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(spec.device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    master = rank == 0
    log = print_fn if master else (lambda *a, **k: None)
    if spec.batch_size % world:
        raise ValueError(f"batch_size {spec.batch_size} is not divisible by {world} processes")

    # ---- model, data, optimizer ----
    torch.manual_seed(spec.seed)  # the model's initialization follows the seed
    work = workloads.build(
        spec.workload or "",
        batch_size=spec.batch_size // world,
        seed=spec.seed,
        device=device,
        options=spec.workload_options,
    )
    raw_model = work.model.to(device)
    optimizer = build_optimizer(raw_model.parameters(), spec.optimizer)
    scaler = torch.amp.GradScaler(device.type) if spec.precision == "fp16" else None
    model: nn.Module = torch.compile(raw_model) if spec.compile else raw_model  # type: ignore[assignment]
    eval_model = model
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    params = [p for p in raw_model.parameters() if p.requires_grad]
    generator = torch.Generator()

    # ---- resume: the state after the checkpoint's step ----
    start, best_val, best_step = 0, math.inf, None
    last = checkpoint.latest(run_dir) if resume else None
    if last is not None:
        state = checkpoint.load(last, map_location=device)
        raw_model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        checkpoint.set_rng_state(state["rng"])
        start = state["step"] + 1
        best_val, best_step = state["best_val_loss"], state["best_step"]
        log(f"resuming from {last} at step {start}")
    elif resume:
        log("no checkpoint to resume from: starting at step 0")

    total = spec.total_steps
    metrics = MetricsWriter(run_dir) if master else None

    def state_at(step: int) -> dict[str, Any]:
        return {
            "step": step,
            "model": raw_model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "best_val_loss": best_val,
            "best_step": best_step,
            "rng": checkpoint.rng_state(),
            "spec": to_dict(spec),
            "world_size": world,
        }

    def save(which: str, step: int) -> None:
        if master and spec.checkpoint_every > 0:  # checkpoint_every = 0: none at all
            assert metrics is not None
            metrics.sync()  # the rows this checkpoint vouches for are on disk first
            checkpoint.save(run_dir, which, state_at(step))

    log(
        f"training {spec.workload} for {total} steps on {device} ({spec.precision}"
        f"{', compiled' if spec.compile else ''}{f', {world} processes' if world > 1 else ''})"
    )
    steplog = StepLog()
    t0, step0 = time.monotonic(), start
    result = Result("finished", EXIT_FINISHED, start - 1, best_val, best_step)
    model.train()
    try:
        for step in range(start, total):
            # 1. the learning rate of this step (R18 warmup, R7 decay)
            lr = lr_at(step, spec)
            for group in optimizer.param_groups:
                group["lr"] = lr

            # 2. forward and backward on this step's batch
            generator.manual_seed(batch_seed(spec.seed, rank, step))
            x, y = work.train_batch(step, generator)
            x, y = to_device(x, device), to_device(y, device)
            with autocast_for(device, spec.precision):
                loss = work.loss_fn(forward(model, x), y)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)  # the norm and clipping see the true gradient
            else:
                loss.backward()

            # 3. the unclipped gradient norm (R14), then clipping (R22)
            grads = [p.grad for p in params if p.grad is not None]
            norm = total_grad_norm(grads)
            if spec.clip_norm is not None:
                clip_(grads, norm, spec.clip_norm)

            # 4. the update
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            steplog.add(step, lr, loss.detach(), norm.detach())

            # 5. flush, evaluate, checkpoint; all decided by the step alone, so that every
            #    DDP process takes part in the same collectives
            is_last = step == total - 1
            is_eval = (step + 1) % spec.eval_every == 0 or is_last
            is_ckpt = spec.checkpoint_every > 0 and (
                (step + 1) % spec.checkpoint_every == 0 or is_last
            )
            due = (step + 1) % FLUSH_EVERY == 0 or (
                world == 1
                and (stop.signum or time.monotonic() - steplog.last_flush > FLUSH_SECONDS)
            )
            if not (due or is_eval or is_ckpt or is_last):
                continue
            rows, stopping = steplog.take(world, bool(stop.signum))
            bad = next((i for i, r in enumerate(rows) if not math.isfinite(r["loss"])), None)
            if bad is not None:
                rows = rows[: bad + 1]  # the first bad step is logged, nothing after it
            for r in rows:  # R22's condition, on the unclipped norm
                r["clipped"] = int(spec.clip_norm is not None and r["grad_norm"] > spec.clip_norm)
            if metrics is not None:
                metrics.write(rows)
            if rows and any(
                (r["step"] + 1) % PROGRESS_EVERY == 0 or r["step"] == total - 1 for r in rows
            ):
                r = rows[-1]
                rate = (r["step"] + 1 - step0) / max(time.monotonic() - t0, 1e-9)
                log(
                    f"step {r['step']}/{total} | loss {r['loss']:.4f} | "
                    f"grad_norm {r['grad_norm']:.4f} | lr {r['lr']:.3e} | {rate:.1f} steps/s"
                )
            if bad is not None:
                step_bad = rows[-1]["step"]
                log(f"diverged: loss {rows[-1]['loss']} at step {step_bad}")
                result = Result("diverged", EXIT_DIVERGED, step_bad, best_val, best_step)
                break
            result.last_step = step

            if is_eval and master:
                val_loss, val_acc = evaluate(eval_model, work, device, spec.precision)
                row: dict[str, Any] = {"step": step, "time": time.time(), "val_loss": val_loss}
                if val_acc is not None:
                    row["val_accuracy"] = val_acc
                assert metrics is not None
                metrics.write([row])
                acc = f" | val_accuracy {val_acc:.4f}" if val_acc is not None else ""
                log(f"eval step {step} | val_loss {val_loss:.4f}{acc}")
                if val_loss < best_val:  # R1: the best checkpoint, kept apart from the last
                    best_val, best_step = val_loss, step
                    save(checkpoint.BEST, step)
            if is_ckpt:
                save(checkpoint.LAST, step)
            if stopping:
                save(checkpoint.LAST, step)  # so that --resume continues from here
                signum = stop.signum or signal.SIGTERM
                log(f"stopped by {signal.Signals(signum).name} after step {step}")
                result = Result("stopped", 128 + signum, step, best_val, best_step)
                break
    finally:
        if metrics is not None:
            metrics.close()
    if world > 1:
        dist.barrier()  # rank 0 may still be evaluating; leaving early aborts the others
        dist.destroy_process_group()
    result.best_val_loss, result.best_step = best_val, best_step
    if result.status == "finished" and best_step is not None:
        log(f"best val_loss {best_val:.4f} at step {best_step} (R1)")
    return result
