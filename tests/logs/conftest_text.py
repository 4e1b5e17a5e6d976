"""Helpers for the text-reader tests (imported explicitly; not a conftest plugin)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tui.logs.batch import ColumnBatch
from tui.logs.reader import ReadResult

Row = tuple[int, dict[str, str]]  # (step, {name: repr(value)}): NaN compares equal to NaN


def rows_of(batch: ColumnBatch) -> list[Row]:
    """A batch as comparable rows: step and the present values, as repr strings."""
    out: list[Row] = []
    for i in range(len(batch)):
        values: dict[str, str] = {}
        for name, col in batch.columns.items():
            if col.present is None or bool(col.present[i]):
                values[name] = repr(float(col.values[i]))
        out.append((int(batch.steps[i]), values))
    return out


def expected_row(step: int, record: dict[str, Any], skip: tuple[str, ...] = ()) -> Row:
    """What a reader should make of one written record (numbers and bools, not the step)."""
    values: dict[str, str] = {}
    for k, v in record.items():
        if k in skip or v is None or isinstance(v, str | list | dict):
            continue
        values[k] = repr(float(v))
    return step, values


class Collector:
    """Accumulates a reader's results the way the run store would: a reset drops what came
    before (the re-read supersedes it)."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.rows: list[Row] = []
        self.errors: list[str] = []
        self.resets = 0

    def read(self) -> ReadResult:
        res = self.reader.read()
        if res.reset:
            self.resets += 1
            self.rows = []
        self.rows.extend(rows_of(res.batch))
        self.errors.extend(res.errors)
        assert len(res.batch.steps) == len(res.batch.times)
        for col in res.batch.columns.values():
            assert col.values.shape == res.batch.steps.shape
            assert col.present is None or col.present.shape == res.batch.steps.shape
        return res


def isnan_repr(text: str) -> bool:
    return math.isnan(float(text))


def run_unprivileged(fn: Callable[[], Any]) -> Any:
    """fn() in a forked child running as `nobody` (uid 65534) when we are root, so that file
    permissions apply; its result (JSON-able) comes back through a pipe. Without root, fn()
    runs here (permissions apply to us already)."""
    if os.geteuid() != 0:
        return fn()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(r)
            os.setgid(65534)
            os.setuid(65534)
            payload = json.dumps(["ok", fn()]).encode()
        except BaseException as exc:
            payload = json.dumps(["error", repr(exc)]).encode()
            code = 1
        os.write(w, payload)
        os._exit(code)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    status, value = json.loads(data)
    if status != "ok":
        raise RuntimeError(value)
    return value


def read_locked(folder: Path, make_reader: Callable[[], Any]) -> tuple[int, list[str]]:
    """(rows, errors) of one read by make_reader()'s reader while `folder` has no permissions
    at all (read as `nobody` when we are root, see run_unprivileged)."""
    folder.chmod(0o000)
    try:

        def attempt() -> list[object]:
            res = make_reader().read()
            return [len(res.batch), res.errors]

        n, errors = run_unprivileged(attempt)
    finally:
        folder.chmod(0o755)
    return n, errors


def tiny_hf_trainer(out: Path, report_to: list[str]) -> Any:
    """A Hugging Face Trainer of a tiny GPT-2 on CPU writing to `out`: 12 steps, a log entry
    every step, evaluation and a checkpoint every 4. Skips the test where it cannot run."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    pytest.importorskip("accelerate", reason="the Trainer needs accelerate (transformers[torch])")
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=32, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    )
    gen = torch.Generator().manual_seed(0)
    data = [
        {"input_ids": ids, "labels": ids} for ids in torch.randint(0, 32, (16, 8), generator=gen)
    ]
    args = TrainingArguments(
        output_dir=str(out),
        max_steps=12,
        per_device_train_batch_size=4,
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=4,
        save_steps=4,
        report_to=report_to,
        use_cpu=True,
        disable_tqdm=True,
        learning_rate=1e-3,
    )
    return Trainer(model=model, args=args, train_dataset=data, eval_dataset=data[:4])


def write(path: Path, data: bytes | str, mode: str = "ab") -> None:
    """Append (or write) and close: each call is one visible write."""
    if isinstance(data, str):
        data = data.encode()
    with open(path, mode) as fh:
        fh.write(data)
