"""The runner's step time against a bare loop of the same workload (issue 4 item 4).

    python tests/bench/bench_runner.py                                   # CPU, fp32
    python tests/bench/bench_runner.py --device cuda --precision bf16    # on a GPU

The bare loop does forward, backward, the total gradient norm and the optimizer step, nothing
else. The runner is runner.train.train itself, in this process, writing metrics.jsonl to a temp
folder. Each is timed over W+N and over W steps from start to end (setup included) and the
difference divided by N is its step time, so setup, the first steps and the final evaluation
cancel out. Repeats are interleaved and the median taken. Target: overhead <= 3%.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch

from runner import spec as specmod
from runner import workloads
from runner.optim import build_optimizer
from runner.train import autocast_for, pick_device, train


def make_spec(args: argparse.Namespace, steps: int) -> specmod.RunSpec:
    spec = specmod.from_dict(
        {
            "workload": args.workload,
            "max_train_steps": steps,
            "batch_size": args.batch_size,
            "device": args.device,
            "precision": args.precision,
            "eval_every": steps,
            "checkpoint_every": 0,
            "optimizer": {"name": args.optimizer, "lr": args.lr},
            "schedule": {"kind": "cosine"},
        }
    )
    assert isinstance(spec, specmod.RunSpec)
    return spec


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare(spec: specmod.RunSpec) -> float:
    """Seconds for the whole bare run: setup, then forward/backward/norm/step per step."""
    t0 = time.perf_counter()
    device = pick_device(spec.device)
    torch.manual_seed(spec.seed)
    work = workloads.build(
        spec.workload or "", batch_size=spec.batch_size, seed=spec.seed, device=device, options={}
    )
    model = work.model.to(device)
    opt = build_optimizer(model.parameters(), spec.optimizer)
    gen = torch.Generator().manual_seed(spec.seed)
    for step in range(spec.total_steps):
        x, y = work.train_batch(step, gen)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast_for(device, spec.precision):
            loss = work.loss_fn(model(x), y)
        loss.backward()
        torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync(device)
    return time.perf_counter() - t0


def runner(spec: specmod.RunSpec) -> float:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        train(spec, Path(d), print_fn=lambda *a: None)
        sync(pick_device(spec.device))
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workload", default="tiny_transformer")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--warm", type=int, default=30, help="W: steps both runs share")
    p.add_argument("--steps", type=int, default=300, help="N: steps that are timed")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)

    times: dict[str, list[float]] = {"bare": [], "runner": []}
    fns: dict[str, Callable[[specmod.RunSpec], float]] = {"bare": bare, "runner": runner}
    short, long = make_spec(args, args.warm), make_spec(args, args.warm + args.steps)
    fns["bare"](short)  # imports, allocator, kernel caches
    for _ in range(args.repeats):
        for name, fn in fns.items():
            times[name].append((fn(long) - fn(short)) / args.steps)
    b, r = statistics.median(times["bare"]), statistics.median(times["runner"])
    device = pick_device(args.device)
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"workload {args.workload} | {what} {args.precision} | batch {args.batch_size} | "
        f"{args.steps} steps x {args.repeats}"
    )
    print(f"bare loop   {b * 1e3:8.3f} ms/step")
    print(f"runner      {r * 1e3:8.3f} ms/step")
    print(f"overhead    {100 * (r - b) / b:+8.2f} %  (target <= 3%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
