"""Readers for what popular trainers write (issue 15), on real files.

detectron2, mmengine and LLaMA-Factory logs are files other people's runs wrote, laid out
from the public repositories' snapshots by realdata.py (skipped where a snapshot is absent);
tests/logs/data/raytune/ is a Ray Tune experiment written here by Ray Tune itself.
tests/logs/data/README.md gives each file's provenance. Files marked SYNTHETIC below are
written by the test and labelled so: they stand for a shape, not for a real run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from realdata import lay_out

from tui.logs.discovery import find_runs
from tui.logs.workspace import Workspace

DATA = Path(__file__).parent / "data"


def copy(name: str, dest: Path) -> Path:
    if (DATA / name).is_dir():
        shutil.copytree(DATA / name, dest / name)
        return dest / name
    return lay_out(name, dest)


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_detectron2_metrics_json_and_event_file_are_one_run(tmp_path: Path) -> None:
    """detectron2's output/: metrics.json (JSON lines in a .json file) and the event file
    beside it hold the same scalars; `iteration` is the step, `total_loss` the loss."""
    root = copy("detectron2", tmp_path)
    ws = Workspace([root])
    ws.refresh()
    assert list(ws.runs) == ["."]
    run = ws.runs["."]
    rows = lines(root / "metrics.json")
    steps = sorted({r["iteration"] for r in rows})
    assert run.store.count("loss") == len(steps)  # each point once, not once per file
    assert [int(s) for s in run.store.series("loss").steps] == steps
    assert run.metric_sources == {"loss": "total_loss"}
    assert run.store.has("total_loss") and run.store.has("loss_cls")
    assert ws.errors == []


def test_detectron2_metrics_json_alone(tmp_path: Path) -> None:
    real = copy("detectron2", tmp_path / "real")
    root = tmp_path / "all" / "output"
    root.mkdir(parents=True)
    shutil.copy(real / "metrics.json", root / "metrics.json")
    tmp_path = tmp_path / "all"
    ws = Workspace([tmp_path])
    ws.refresh()
    run = ws.runs["output"]
    assert run.format == "jsonl"
    rows = lines(root / "metrics.json")
    last = rows[-1]
    s = run.store.series("loss")
    assert int(s.steps[-1]) == last["iteration"]
    assert float(s.values[-1]) == pytest.approx(last["total_loss"], rel=1e-6)  # float32
    # every record is a point (its first two both say iteration 19: the JSONL reader keeps
    # repeated steps; only a step going back is a restart)
    assert run.store.count("loss") == len(rows)


def test_json_summary_folder_is_not_zero_runs_zero_errors(tmp_path: Path) -> None:
    """SYNTHETIC: a pretty-printed metrics.json (one JSON document, a summary) is no log;
    a folder holding only such files says so instead of "0 runs, 0 errors"."""
    folder = tmp_path / "eval_only"
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({"accuracy": 0.91, "f1": 0.88}, indent=2))
    (tmp_path / "one_line").mkdir()
    (tmp_path / "one_line" / "metrics.json").write_text(json.dumps({"accuracy": 0.9}) + "\n")
    ws = Workspace([tmp_path])
    ws.refresh()
    assert ws.runs == {}
    messages = {Path(p).parent.name: m for p, m in ws.errors}
    assert set(messages) == {"eval_only", "one_line"}
    assert all(m.startswith("not a recognised log") for m in messages.values())


def test_mmengine_vis_data_is_its_timestamp_folders_run(tmp_path: Path) -> None:
    """mmengine writes <work_dir>/<timestamp>/vis_data/scalars.json and <timestamp>.json,
    JSON lines both; the run is the timestamp folder, read from scalars.json."""
    work = tmp_path / "work_dir" / "20241205_152037"
    real = copy("mmengine", tmp_path / "real")
    shutil.copytree(real / "vis_data", work / "vis_data")
    tmp_path = tmp_path / "work_dir"
    runs = find_runs(tmp_path)
    assert [r.folder for r in runs] == [work]
    assert [f.path.name for f in runs[0].files] == ["scalars.json"]
    ws = Workspace([tmp_path])
    ws.refresh()
    run = ws.runs["20241205_152037"]
    rows = lines(work / "vis_data" / "scalars.json")
    assert run.store.has("loss") and run.store.has("grad_norm") and run.store.has("lr")
    assert int(run.store.series("loss").steps[-1]) == rows[-1]["step"]


def test_mmengine_timestamp_json_alone_is_sniffed(tmp_path: Path) -> None:
    """A <timestamp>.json without scalars.json: its content, not its name, makes it a log."""
    src = copy("mmengine", tmp_path / "real") / "vis_data" / "20241205_152037.json"
    tmp_path = tmp_path / "root"
    folder = tmp_path / "exp"
    folder.mkdir(parents=True)
    shutil.copy(src, folder / src.name)
    ws = Workspace([tmp_path])
    ws.refresh()
    run = ws.runs["exp"]
    rows = lines(src)
    assert run.store.count("loss") == len({r["step"] for r in rows if "loss" in r})


def test_llamafactory_trainer_log(tmp_path: Path) -> None:
    """LLaMA-Factory's trainer_log.jsonl steps by `current_steps`; its `total_steps` is the
    planned length, not a metric."""
    root = copy("llamafactory", tmp_path)
    ws = Workspace([root.parent])
    ws.refresh()
    run = ws.runs["llamafactory"]
    rows = lines(root / "trainer_log.jsonl")
    s = run.store.series("loss")
    assert int(s.steps[0]) == rows[0]["current_steps"]
    assert int(s.steps[-1]) == rows[-1]["current_steps"]
    assert run.total_steps == rows[0]["total_steps"]
    assert not run.store.has("total_steps")


def test_ray_tune_trials_are_a_study_read_from_result_json(tmp_path: Path) -> None:
    """Ray Tune 2.60 wrote these: each trial folder holds params.json, result.json,
    progress.csv and an event file (the pickles are left out of the copy). One source per
    trial (result.json), params.json as hyperparameters, the lr grid a study."""
    root = copy("raytune", tmp_path)
    runs = find_runs(root)
    assert len(runs) == 3
    assert all([f.path.name for f in r.files] == ["result.json"] for r in runs)
    ws = Workspace([root])
    ws.refresh()
    assert ws.errors == []
    assert list(ws.studies) == ["lr_sweep"]
    study = ws.studies["lr_sweep"]
    assert study.param == "lr"
    assert study.swept["lr"] == [0.001, 0.01, 0.1]
    for run in study.runs:
        rows = lines(run.path / "result.json")
        assert run.store.count("loss") == len(rows)
        assert int(run.store.series("loss").steps[-1]) == rows[-1]["training_iteration"]
        assert set(run.hparams) == {"lr", "seed", "hidden"}
        assert not any(n.startswith("ray/") for n in run.store.names())


def test_iter_is_the_step(tmp_path: Path) -> None:
    """SYNTHETIC nanoGPT-style log: one line every 10 iterations, stepped by `iter`."""
    folder = tmp_path / "nanogpt"
    folder.mkdir()
    with open(folder / "log.jsonl", "w") as fh:
        for i in range(0, 200, 10):
            fh.write(json.dumps({"iter": i, "loss": 4.0 - i / 100, "lr": 6e-4}) + "\n")
    ws = Workspace([tmp_path])
    ws.refresh()
    run = ws.runs["nanogpt"]
    assert [int(s) for s in run.store.series("loss").steps] == list(range(0, 200, 10))
    assert run.total_steps == 191


def test_second_tier_losses_are_kept_and_one_is_chosen(tmp_path: Path) -> None:
    """SYNTHETIC: `train/nll_loss` is the loss where no first-tier name is logged;
    `eval_<name>_loss` series are each kept, the alphabetically first of the first read is
    the validation loss, and stays so."""
    folder = tmp_path / "sft"
    folder.mkdir()
    rows = [
        {"step": 1, "train/nll_loss": 2.0},
        {"step": 2, "train/nll_loss": 1.8, "eval_mmlu_loss": 1.5, "eval_gsm8k_loss": 1.9},
        {"step": 3, "train/nll_loss": 1.6},
    ]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ws = Workspace([tmp_path])
    ws.refresh()
    run = ws.runs["sft"]
    assert run.store.count("loss") == 3
    assert run.metric_sources == {"loss": "train/nll_loss", "val_loss": "eval_gsm8k_loss"}
    assert run.store.count("eval_mmlu_loss") == 1 and run.store.count("eval_gsm8k_loss") == 1
    with open(folder / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"step": 4, "eval_aaa_loss": 1.0, "eval_gsm8k_loss": 1.7}) + "\n")
    ws.poll()
    assert float(run.store.series("val_loss").values[-1]) == pytest.approx(1.7)


def test_first_tier_val_loss_wins(tmp_path: Path) -> None:
    """SYNTHETIC: where `eval_loss` is logged, per-dataset losses stay their own series."""
    folder = tmp_path / "hf"
    folder.mkdir()
    rows = [{"step": 1, "loss": 2.0}, {"step": 2, "eval_loss": 1.2, "eval_mmlu_loss": 1.5}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ws = Workspace([tmp_path])
    ws.refresh()
    run = ws.runs["hf"]
    assert run.metric_sources == {}
    assert float(run.store.series("val_loss").values[0]) == pytest.approx(1.2)


def test_json_log_created_empty_is_found_once_it_has_records(tmp_path: Path) -> None:
    """SYNTHETIC: a live detectron2-style run creates metrics.json before its first record:
    nothing is said while it is empty, and the run appears with its first lines."""
    folder = tmp_path / "output"
    folder.mkdir()
    log = folder / "metrics.json"
    log.write_text("")
    ws = Workspace([tmp_path])
    ws.refresh()
    assert ws.runs == {} and ws.errors == []
    with open(log, "a") as fh:
        fh.write(json.dumps({"iteration": 19, "total_loss": 2.1, "lr": 1e-4}) + "\n")
    ws.refresh()
    assert list(ws.runs) == ["output"]
    assert ws.runs["output"].store.count("loss") == 1
    assert ws.errors == []


def test_other_layouts_seen_in_the_corpus(tmp_path: Path) -> None:
    """SYNTHETIC shapes of real corpus folders: a trainer_state.json that is some other
    program's state (no global_step, no log_history) is no run; renamed mmengine logs
    (`mmdet_scalars.json`) are read; a Trainer output_dir named `checkpoints` is searched;
    a vis_data/ not under a timestamp folder is its own run."""
    (tmp_path / "bot").mkdir()
    (tmp_path / "bot" / "trainer_state.json").write_text(
        json.dumps({"balance": -186.4, "positions": [{"symbol": "X", "score": 95.0}]}, indent=2)
    )
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "mmdet_scalars.json").write_text(
        "".join(json.dumps({"lr": 1e-4, "loss": 1.0 / s, "step": s}) + "\n" for s in (1, 2))
    )
    trial = tmp_path / "optuna" / "checkpoints" / "trial_9"
    trial.mkdir(parents=True)
    (trial / "trainer_state.json").write_text(
        json.dumps({"global_step": 2, "log_history": [{"step": 1, "loss": 1.0}]}, indent=2)
    )
    (tmp_path / "mm" / "vis_data").mkdir(parents=True)
    (tmp_path / "mm" / "vis_data" / "scalars.json").write_text(
        "".join(json.dumps({"loss": 1.0, "step": s}) + "\n" for s in (1, 2))
    )
    ws = Workspace([tmp_path])
    ws.refresh()
    assert sorted(ws.runs) == ["logs", "mm/vis_data", "optuna/checkpoints/trial_9"]
    assert [(Path(p).parent.name, m.split(" (")[0]) for p, m in ws.errors] == [
        ("bot", "not a recognised log")
    ]
