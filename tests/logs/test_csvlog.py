"""CsvReader: Lightning's CSVLogger for real, generic CSV, damage, files changing under it."""

from __future__ import annotations

import csv
import io
import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np
from conftest_text import Collector, Row, read_locked, rows_of, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tui.logs.csvlog import CsvReader


def expected_csv(text: str, step_key: str = "step", skip: tuple[str, ...] = ()) -> list[Row]:
    """The rows Python's csv module sees: empty cells are holes, the rest numbers."""
    out: list[Row] = []
    for rec in csv.DictReader(io.StringIO(text)):
        values = {
            k: repr(float(v)) for k, v in rec.items() if k != step_key and k not in skip and v
        }
        out.append((int(float(rec[step_key])), values))
    return out


# -- PyTorch Lightning's CSVLogger, for real ---------------------------------------------------


def _lightning_fit(root: Path, on_batch: Any) -> Path:
    """A tiny LightningModule trained 3 epochs on CPU: train_loss every step, val_loss per
    epoch, the CSV flushed at every step; on_batch(csv_path) runs before every batch."""
    import lightning as L
    import torch
    from lightning.pytorch.loggers import CSVLogger

    class Tiny(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch: Any, _: int) -> torch.Tensor:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch: Any, _: int) -> None:
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    logger = CSVLogger(str(root), name="tiny", flush_logs_every_n_steps=1)
    csv_path = Path(logger.log_dir) / "metrics.csv"

    class Poll(L.Callback):
        def on_train_batch_start(self, *args: Any) -> None:
            on_batch(csv_path)

    gen = torch.Generator().manual_seed(0)
    ds = torch.utils.data.TensorDataset(torch.randn(32, 4, generator=gen), torch.randn(32, 1))
    dl = torch.utils.data.DataLoader(ds, batch_size=8)
    trainer = L.Trainer(
        max_epochs=3,
        logger=logger,
        log_every_n_steps=1,
        accelerator="cpu",
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[Poll()],
    )
    trainer.fit(Tiny(), dl, dl)
    on_batch(csv_path)
    return csv_path


def test_lightning_csvlogger_live_and_rewritten(tmp_path: Path) -> None:
    state: dict[str, Any] = {}
    early: list[bytes] = []

    def poll(csv_path: Path) -> None:
        if "c" not in state:
            state["c"] = Collector(CsvReader(csv_path))
        c = state["c"]
        if csv_path.exists():
            c.read()
            if not early and csv_path.stat().st_size > 0:
                early.append(csv_path.read_bytes())

    csv_path = _lightning_fit(tmp_path, poll)
    c: Collector = state["c"]
    final = csv_path.read_text()
    header = final.splitlines()[0]
    assert header == "epoch,step,train_loss,val_loss"  # sorted, val_loss added later
    assert b"val_loss" not in early[0].splitlines()[0]
    assert c.errors == []
    # the header rewrite was seen as a reset, and the store-like view is the whole file
    assert c.resets >= 1
    assert c.rows == expected_csv(final)
    assert rows_of(CsvReader(csv_path).read().batch) == c.rows
    train = [r for r in c.rows if "train_loss" in r[1]]
    assert [r[0] for r in train] == list(range(12))
    assert sum("val_loss" in r[1] for r in c.rows) == 3

    # an early copy read first, then the file rewritten in place (same inode, larger)
    copy = tmp_path / "copy.csv"
    copy.write_bytes(early[0])
    c2 = Collector(CsvReader(copy))
    c2.read()
    assert c2.rows == expected_csv(early[0].decode())
    ino = copy.stat().st_ino
    with open(copy, "w") as fh:  # what _rewrite_with_new_header does
        fh.write(final)
    assert copy.stat().st_ino == ino
    res = c2.read()
    assert res.reset and c2.rows == expected_csv(final)


def test_header_rewritten_in_place(tmp_path: Path) -> None:
    """Lightning's rewrite without Lightning: same inode, a larger file, a new header."""
    path = tmp_path / "metrics.csv"
    c = Collector(CsvReader(path))
    write(path, "epoch,step,train_loss\n0,0,1.0\n0,1,2.0\n")
    c.read()
    ino = path.stat().st_ino
    write(path, "epoch,step,train_loss,val_loss\n0,0,1.0,\n0,1,2.0,\n0,1,,0.5\n0,2,3.0,\n", "wb")
    assert path.stat().st_ino == ino
    res = c.read()
    assert res.reset and c.resets == 1
    assert c.rows == [
        (0, {"epoch": "0.0", "train_loss": "1.0"}),
        (1, {"epoch": "0.0", "train_loss": "2.0"}),
        (1, {"epoch": "0.0", "val_loss": "0.5"}),
        (2, {"epoch": "0.0", "train_loss": "3.0"}),
    ]
    write(path, "0,3,4.0,\n")
    res = c.read()
    assert not res.reset and rows_of(res.batch) == [(3, {"epoch": "0.0", "train_loss": "4.0"})]


# -- generic CSV --------------------------------------------------------------------------------


def test_generic_csv_values_holes_nonfinite(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    write(
        path,
        "global_step,time,loss,phase,acc\r\n"
        "0,100.5,1.5,train,\r\n"
        "1,101.5,nan,train,0.5\r\n"
        "2,102.5,inf,train,\r\n"
        "3,103.5,-inf,eval,NaN\r\n"
        "4,,,eval,1\r\n",
    )
    res = CsvReader(path).read()
    assert res.errors == []
    b = res.batch
    assert b.steps.tolist() == [0, 1, 2, 3, 4]
    assert b.times[:4].tolist() == [100.5, 101.5, 102.5, 103.5] and np.isnan(b.times[4])
    assert set(b.columns) == {"loss", "acc"}  # `phase` holds no numbers: not a metric
    loss = b.columns["loss"]
    assert loss.values[0] == 1.5 and np.isnan(loss.values[1])
    assert loss.values[2] == np.inf and loss.values[3] == -np.inf
    assert loss.present is not None and loss.present.tolist() == [True] * 4 + [False]
    acc = b.columns["acc"]
    assert acc.present is not None and acc.present.tolist() == [False, True, False, True, True]


def test_no_step_column_counts_rows(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    reader = CsvReader(path)
    write(path, "loss\n1\n2\n")
    assert reader.read().batch.steps.tolist() == [0, 1]
    write(path, "3\n")
    assert reader.read().batch.steps.tolist() == [2]


def test_header_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    reader = CsvReader(path)
    write(path, "step,lo")
    assert len(reader.read().batch) == 0
    write(path, "ss\n0,1.0\n1,2")
    assert rows_of(reader.read().batch) == [(0, {"loss": "1.0"})]
    write(path, ".5\n")
    assert rows_of(reader.read().batch) == [(1, {"loss": "2.5"})]


def test_bad_rows_skipped_good_rows_kept(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    write(
        path,
        b"step,loss,lr\n"
        b"0,1.0,0.1\n"
        b"1,2.0,0.1,99\n"  # too many fields
        b"@@garbage@@\n"  # too few
        b"2,3.0,0.1\n"
        b"3,abc,0.1\n"  # text in a numeric column
        b"4,\xff\xfe,0.1\n"  # bad UTF-8
        b"\n"  # blank: not an error
        b"5,6.0,0.1\n",
    )
    res = CsvReader(path).read()
    assert rows_of(res.batch) == [
        (0, {"loss": "1.0", "lr": "0.1"}),
        (2, {"loss": "3.0", "lr": "0.1"}),
        (5, {"loss": "6.0", "lr": "0.1"}),
    ]
    assert len(res.errors) == 4 and all(str(path) in e for e in res.errors)


def test_garbage_in_a_later_read_of_a_numeric_column(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    reader = CsvReader(path)
    write(path, "step,loss\n0,1.0\n")
    reader.read()
    write(path, "1,oops\n")  # alone in its read: still damage, the column is known numeric
    res = reader.read()
    assert len(res.batch) == 0 and len(res.errors) == 1


def test_nul_block_then_good_rows(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    write(path, "step,loss\n0,1.0\n")
    write(path, b"\x00" * 4096)
    write(path, "1,2.0\n2,3.0\n")
    res = CsvReader(path).read()
    assert res.batch.steps.tolist() == [0, 1, 2]
    assert len(res.errors) == 1 and "NUL" in res.errors[0]


def test_many_bad_rows_rate_limited(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    write(path, "step,loss\n0,1\n" + "1,2,3\n" * 5000 + "1,2\n")
    res = CsvReader(path).read()
    assert res.batch.steps.tolist() == [0, 1] and len(res.errors) <= 6


def test_empty_and_header_only(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(b"")
    reader = CsvReader(path)
    assert reader.read().errors == []
    write(path, "step,loss\n")
    res = reader.read()
    assert len(res.batch) == 0 and res.errors == [] and reader.header == ["step", "loss"]


def test_shrink_replace_delete(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    c = Collector(CsvReader(path))
    write(path, "step,loss\n0,1\n1,2\n2,3\n")
    c.read()
    with open(path, "r+b") as fh:
        fh.truncate(0)
    write(path, "step,loss\n0,7\n")
    assert c.read().reset and c.rows == [(0, {"loss": "7.0"})]
    tmp = tmp_path / "t.csv"
    write(tmp, "step,acc\n5,0.5\n6,0.6\n7,0.7\n")
    os.replace(tmp, path)
    assert c.read().reset and [r[0] for r in c.rows] == [5, 6, 7]
    path.unlink()
    res = c.read()
    assert len(res.errors) == 1 and [r[0] for r in c.rows] == [5, 6, 7]
    write(path, "step,acc\n9,1\n")
    assert c.read().reset and c.rows == [(9, {"acc": "1.0"})]


def test_unreadable(tmp_path: Path) -> None:
    assert len(CsvReader(tmp_path).read().errors) == 1  # a directory
    folder = tmp_path / "locked"
    folder.mkdir()
    write(folder / "m.csv", "step,loss\n0,1\n")
    n, errors = read_locked(folder, lambda: CsvReader(folder / "m.csv"))
    assert n == 0 and len(errors) == 1


def test_big_read_parsed_in_blocks(tmp_path: Path) -> None:
    # bigger than Arrow's block: type inference and row order across blocks
    path = tmp_path / "metrics.csv"
    lines = ["epoch,loss,step,val_loss"]
    for s in range(300_000):
        lines.append(f"0,{s / 7!r},{s},")
        if s % 1000 == 999:
            lines.append(f"0,,{s},{s / 3!r}")
    write(path, "\n".join(lines) + "\n")
    b = CsvReader(path).read().batch
    assert len(b) == 300_300
    val = b.columns["val_loss"]
    assert val.present is not None and int(val.present.sum()) == 300
    assert b.steps[-1] == 299_999 and b.columns["loss"].values[-2] == 299_999 / 7


_cell = st.one_of(
    st.just(""),
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.tuples(st.integers(0, 10**6), _cell, _cell), max_size=25),
    cuts=st.lists(st.integers(0, 10**6), max_size=12),
)
def test_split_at_random_byte_boundaries(
    tmp_path_factory: Any, rows: list[tuple[int, str, str]], cuts: list[int]
) -> None:
    """A valid CSV appended in random pieces yields exactly the whole file's rows."""
    path = tmp_path_factory.mktemp("split") / "m.csv"
    text = "step,loss,lr\n" + "".join(f"{s},{a},{b}\n" for s, a, b in rows)
    data = text.encode()
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    path.write_bytes(b"")
    c = Collector(CsvReader(path))
    for a, b in itertools.pairwise(points):
        write(path, data[a:b])
        c.read()
    c.read()
    assert c.errors == [] and c.resets == 0
    assert c.rows == expected_csv(text)


def test_zeros_before_the_header_then_rows(tmp_path: Path) -> None:
    """A CSV whose first bytes are zeros (a sparse start): the header after them is found,
    the rows read, and the next read neither restarts nor re-reads (issue 14)."""
    path = tmp_path / "log.csv"
    write(path, b"\x00" * 8192 + b"step,loss\n0,1.0\n1,2.0\n", "wb")
    reader = CsvReader(path)
    res = reader.read()
    assert res.batch.steps.tolist() == [0, 1] and not res.reset
    assert len(res.errors) == 1 and "8192 NUL" in res.errors[0]
    write(path, "2,3.0\n")
    res = reader.read()
    assert res.batch.steps.tolist() == [2] and not res.reset and not res.errors


def test_csv_swapped_for_a_fifo_is_an_error_not_a_hang(tmp_path: Path) -> None:
    import os

    path = tmp_path / "log.csv"
    write(path, "step,loss\n0,1.0\n", "wb")
    reader = CsvReader(path)
    assert len(reader.read().batch) == 1
    path.unlink()
    os.mkfifo(path)  # the header check and the tail both open it: neither may block
    res = reader.read()
    assert len(res.batch) == 0 and len(res.errors) == 1 and "FIFO" in res.errors[0]
