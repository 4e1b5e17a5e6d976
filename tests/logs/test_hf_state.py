"""HFTrainerStateReader: a real Hugging Face Trainer run, and the in-place rewrite's hazards."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from conftest_text import Collector, Row, read_locked, rows_of, tiny_hf_trainer

from tui.logs.hf_state import HFTrainerStateReader, checkpoint_states, newest_trainer_state


def expected_hf(log_history: list[dict[str, Any]]) -> list[Row]:
    """Every numeric field of every entry but the final summary, keyed by `step`."""
    out: list[Row] = []
    for e in log_history:
        if "train_runtime" in e:
            continue
        values = {
            k: repr(float(v))
            for k, v in e.items()
            if k != "step" and isinstance(v, int | float) and v is not None
        }
        out.append((int(e["step"]), values))
    return out


def state(history: list[dict[str, Any]], **meta: Any) -> str:
    # what TrainerState.save_to_json writes (Python's json: NaN tokens included)
    doc = {"global_step": history[-1]["step"] if history else 0, "max_steps": 100, **meta}
    doc["log_history"] = history
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def train_entries(a: int, b: int) -> list[dict[str, Any]]:
    return [
        {"epoch": s / 10, "grad_norm": 1.0, "learning_rate": 1e-3, "loss": 2.0 / s, "step": s}
        for s in range(a, b)
    ]


SUMMARY = {
    "epoch": 1.0,
    "step": 9,
    "total_flos": 1.0,
    "train_loss": 0.7,
    "train_runtime": 3.2,
    "train_samples_per_second": 10.0,
    "train_steps_per_second": 3.0,
}


# -- a real Trainer -----------------------------------------------------------------------------


def test_real_trainer_checkpoints_followed_live(tmp_path: Path) -> None:
    out = tmp_path / "out"
    trainer = tiny_hf_trainer(out, report_to=[])
    from transformers import TrainerCallback

    reader = HFTrainerStateReader(out)  # follows the newest checkpoint-N/ of the folder
    c = Collector(reader)
    seen_files: list[Path | None] = []

    class Poll(TrainerCallback):
        def on_save(self, *args: Any, **kwargs: Any) -> None:
            c.read()  # called after checkpoint-N/ is written
            seen_files.append(reader.current_file)

    trainer.add_callback(Poll())
    trainer.train()
    c.read()

    assert [n for n, _ in checkpoint_states(out)] == [4, 8, 12]
    newest = out / "checkpoint-12" / "trainer_state.json"
    assert newest_trainer_state(out) == newest
    assert seen_files == [out / f"checkpoint-{n}" / "trainer_state.json" for n in (4, 8, 12)]
    history = json.loads(newest.read_text())["log_history"]
    assert c.errors == [] and c.resets == 0  # each checkpoint's history extends the last
    assert c.rows == expected_hf(history)
    assert sum("loss" in v for _, v in c.rows) == 12
    assert sum("eval_loss" in v for _, v in c.rows) == 3
    assert reader.max_steps == 12 and reader.state_meta["max_steps"] == 12
    assert "log_history" not in reader.state_meta
    # the end-of-training summary (train_runtime, mean train_loss) is no point
    trainer.state.save_to_json(str(out / "trainer_state.json"))
    final = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert "train_runtime" in final[-1]
    assert newest_trainer_state(out) == out / "trainer_state.json"  # newer than checkpoint-12
    res = c.read()
    assert not res.reset and len(res.batch) == 0  # only the summary was new
    assert rows_of(HFTrainerStateReader(out / "trainer_state.json").read().batch) == c.rows


# -- the in-place rewrite -----------------------------------------------------------------------


def test_only_new_entries_and_summary_skipped(tmp_path: Path) -> None:
    path = tmp_path / "trainer_state.json"
    reader = HFTrainerStateReader(path)
    h1 = train_entries(1, 4)
    path.write_text(state(h1))
    res = reader.read()
    assert rows_of(res.batch) == expected_hf(h1) and not res.reset
    assert len(reader.read().batch) == 0  # unchanged file: nothing new, not even parsed
    h2 = [*h1, *train_entries(4, 9), {"epoch": 0.9, "eval_loss": 1.5, "step": 8}, SUMMARY]
    path.write_text(state(h2))
    res = reader.read()
    assert not res.reset
    assert rows_of(res.batch) == expected_hf(h2[3:])
    assert "train_runtime" not in res.batch.columns and res.batch.steps.tolist()[-1] == 8


def test_nonfinite_values_are_points(tmp_path: Path) -> None:
    path = tmp_path / "trainer_state.json"
    h = [
        {"step": 1, "loss": float("nan"), "grad_norm": float("inf")},
        {"step": 2, "loss": 1.0, "grad_norm": None},
    ]
    text = state(h)
    assert "NaN" in text and "Infinity" in text
    path.write_text(text)
    b = HFTrainerStateReader(path).read().batch
    assert math.isnan(b.columns["loss"].values[0]) and b.columns["grad_norm"].values[0] > 1e308
    gn = b.columns["grad_norm"]
    assert gn.present is not None and gn.present.tolist() == [True, False]


def test_half_written_keeps_last_good_copy(tmp_path: Path) -> None:
    path = tmp_path / "trainer_state.json"
    c = Collector(HFTrainerStateReader(path))
    h1 = train_entries(1, 5)
    path.write_text(state(h1))
    c.read()
    h2 = train_entries(1, 9)
    full = state(h2)
    for cut in (0, 1, len(full) // 3, len(full) - 3):  # empty, then ever more of the rewrite
        path.write_text(full[:cut])
        res = c.read()
        assert len(res.batch) == 0 and res.errors == [] and not res.reset
        assert c.reader.stale
    path.write_text(full)
    res = c.read()
    assert not res.reset and res.errors == [] and not c.reader.stale
    assert c.rows == expected_hf(h2)


def test_empty_at_start_then_written(tmp_path: Path) -> None:
    path = tmp_path / "trainer_state.json"
    path.write_text("")
    reader = HFTrainerStateReader(path)
    assert reader.read().errors == []
    path.write_text(state(train_entries(1, 3)))
    assert len(reader.read().batch) == 2


def test_not_a_prefix_resets(tmp_path: Path) -> None:
    path = tmp_path / "trainer_state.json"
    c = Collector(HFTrainerStateReader(path))
    path.write_text(state(train_entries(1, 9)))
    c.read()
    # resumed from checkpoint-4: a history that forks from what was returned
    resumed = [*train_entries(1, 5), {"step": 5, "loss": 9.0}]
    path.write_text(state(resumed))
    res = c.read()
    assert res.reset and c.rows == expected_hf(resumed)
    shorter = train_entries(1, 3)  # an older copy: also no prefix extension
    path.write_text(state(shorter))
    assert c.read().reset and c.rows == expected_hf(shorter)


def test_broken_file_never_good_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "trainer_state.json"
    path.write_text('{"log_history": [{"step": 1, "lo')
    reader = HFTrainerStateReader(path)
    assert len(reader.read().errors) == 1
    assert reader.read().errors == []  # not repeated
    path.write_text('{"best_metric": null}')
    res = reader.read()
    assert len(res.errors) == 1 and "log_history" in res.errors[0]


def test_missing_directory_and_unreadable(tmp_path: Path) -> None:
    res = HFTrainerStateReader(tmp_path / "nope.json").read()
    assert len(res.errors) == 1
    assert len(HFTrainerStateReader(tmp_path).read().errors) == 1  # a folder without a state
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "trainer_state.json").write_text(state(train_entries(1, 3)))
    n, errors = read_locked(folder, lambda: HFTrainerStateReader(folder / "trainer_state.json"))
    assert n == 0 and len(errors) == 1


def test_newest_trainer_state(tmp_path: Path) -> None:
    assert newest_trainer_state(tmp_path) is None
    for n in (500, 1000, 50):
        d = tmp_path / f"checkpoint-{n}"
        d.mkdir()
        (d / "trainer_state.json").write_text(state(train_entries(1, 2)))
    (tmp_path / "checkpoint-2000").mkdir()  # no state file yet (being written)
    (tmp_path / "checkpoint-x").mkdir()
    assert newest_trainer_state(tmp_path) == tmp_path / "checkpoint-1000" / "trainer_state.json"
    top = tmp_path / "trainer_state.json"
    top.write_text(state(train_entries(1, 900)))  # global_step 899: behind checkpoint-1000
    old = (tmp_path / "checkpoint-1000" / "trainer_state.json").stat().st_mtime
    os.utime(top, (old + 100, old + 100))  # touched later: file times decide nothing
    assert newest_trainer_state(tmp_path) == tmp_path / "checkpoint-1000" / "trainer_state.json"
    top.write_text(state(train_entries(1, 1001)))  # global_step 1000: a tie, the top wins
    os.utime(top, (old - 100, old - 100))
    assert newest_trainer_state(tmp_path) == top


def test_newest_state_is_the_highest_global_step_last_checkpoint_included(tmp_path: Path) -> None:
    """issue 15: a touched older checkpoint made the last steps vanish; last-checkpoint/ (the
    hub strategy's copy) is a checkpoint like the others."""
    (tmp_path / "checkpoint-10").mkdir()
    (tmp_path / "checkpoint-10" / "trainer_state.json").write_text(state(train_entries(1, 11)))
    (tmp_path / "last-checkpoint").mkdir()
    last = tmp_path / "last-checkpoint" / "trainer_state.json"
    last.write_text(state(train_entries(1, 21)))
    os.utime(last, (1, 1))
    assert newest_trainer_state(tmp_path) == last
    reader = HFTrainerStateReader(tmp_path)
    got = reader.read()
    assert int(got.batch.steps[-1]) == 20


def test_trial_params_in_state_meta(tmp_path: Path) -> None:
    path = tmp_path / "trainer_state.json"
    path.write_text(state(train_entries(1, 2), trial_params={"learning_rate": 0.01}))
    reader = HFTrainerStateReader(path)
    reader.read()
    assert reader.state_meta["trial_params"] == {"learning_rate": 0.01}
    assert reader.max_steps == 100
