"""The committed sample_logs/ keep to DESIGN.md's "Figures the project is held to".

`tunetop check sample_logs` reports no errors; its runs cover the formats jsonl, csv, tfevents
and hf_trainer_state; its findings include loss_spike, grad_norm_outlier,
best_at_search_boundary (R5) and best_at_feasibility_edge (R16). Also: the whole folder stays
under 20 MB with no weight files, and make_samples.py's refuse/--force rule deletes only what
its manifest lists (checked on a scratch folder, without training anything).
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from runner.rundir import read_metrics
from tui import check
from tui.logs.discovery import find_runs

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"

# the dashboard's own discovery decides whether there are runs to check
needs_samples = pytest.mark.skipif(
    not find_runs(SAMPLES),
    reason="sample_logs/ holds no runs: regenerate them with "
    "`python sample_logs/make_samples.py` (about 5 minutes on 2 CPU cores)",
)


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """`tunetop check sample_logs --json`, through the CLI's own entry point."""
    buf = io.StringIO()
    check.main(str(SAMPLES), as_json=True, fail_on="error", out=buf)
    return json.loads(buf.getvalue())


def _kinds(data: dict[str, Any]) -> set[str]:
    kinds = {f["kind"] for r in data["runs"] for f in r["findings"]}
    return kinds | {f["kind"] for s in data["studies"] for f in s["findings"]}


def _study(data: dict[str, Any], stem: str) -> dict[str, Any]:
    """The study whose folder is runner/<stem>-<timestamp>."""
    found = [s for s in data["studies"] if Path(s["id"]).name.startswith(stem + "-")]
    assert len(found) == 1, f"expected one study {stem}-*, got {[s['id'] for s in found]}"
    return found[0]


@needs_samples
def test_no_errors(report: dict[str, Any]) -> None:
    assert report["errors"] == []


@needs_samples
def test_formats_covered(report: dict[str, Any]) -> None:
    formats = {r["format"] for r in report["runs"]}
    assert {"jsonl", "csv", "tfevents", "hf_trainer_state"} <= formats


@needs_samples
def test_required_findings(report: dict[str, Any]) -> None:
    required = {
        "loss_spike",
        "grad_norm_outlier",
        "best_at_search_boundary",
        "best_at_feasibility_edge",
    }
    found = _kinds(report)
    assert required <= found, sorted(required - found)


@needs_samples
def test_sweeps_show_what_the_readme_says(report: dict[str, Any]) -> None:
    """Each LR sweep shows its own phenomenon and not the others' (README.md's table)."""
    kinds = {s["id"]: {f["kind"] for f in s["findings"]} for s in report["studies"]}
    interior = _study(report, "lr_interior")
    assert interior["param"] == "lr"
    assert not kinds[interior["id"]] & {"best_at_search_boundary", "best_at_feasibility_edge"}

    small = _study(report, "lr_too_small")
    edge = [f for f in small["findings"] if f["kind"] == "best_at_search_boundary"]
    assert edge and edge[0]["evidence"]["side"] == "high"

    feas = _study(report, "lr_feasibility_edge")
    assert "best_at_feasibility_edge" in kinds[feas["id"]]
    assert feas["infeasible_runs"], "the largest rates must really diverge"
    best_value = feas["values"][feas["runs"].index(feas["best_run"])]
    assert best_value < max(feas["values"])  # interior: R5 is not what fires here


def _run(data: dict[str, Any], run_id: str) -> dict[str, Any]:
    (run,) = [r for r in data["runs"] if r["id"] == run_id]
    return run


def _best_val_accuracy(folder: Path) -> float:
    return max(r["val_accuracy"] for r in read_metrics(folder) if "val_accuracy" in r)


@needs_samples
def test_warmup_study_rescues_the_early_unstable_run(report: dict[str, Any]) -> None:
    """Issue 7: a warmup study that fixes an unstable run. The Adam sweep's 0.03 trial is
    flagged as early instability (R13) and stalls near chance; the warmup study launched on it
    (factor 1) holds the same rate after a 100-step ramp and solves the task."""
    sweep = _study(report, "transformer_adam")
    rescue = _study(report, "warmup_rescue")
    stalled_id = f"{sweep['id']}/t003"
    assert sweep["values"][sweep["runs"].index(stalled_id)] == pytest.approx(0.03)
    early = [
        f
        for f in _run(report, stalled_id)["findings"]
        if f["kind"] == "unstable_training" and f["evidence"].get("phase") == "early"
    ]
    assert early, "the stalled run must be flagged as early instability"
    stalled = SAMPLES / stalled_id
    trials = sorted((SAMPLES / rescue["id"]).glob("t*"))
    records = [json.loads((t / "run.json").read_text()) for t in trials]
    assert all(r["remedy"]["kind"] == "warmup" for r in records)
    assert all(r["remedy"]["source"].endswith(stalled_id) for r in records)
    assert all(r["spec"]["optimizer"]["lr"] == pytest.approx(0.03) for r in records)
    warm = {r["spec"]["schedule"]["warmup_steps"]: t for r, t in zip(records, trials, strict=True)}
    assert _best_val_accuracy(stalled) < 0.3  # no warmup: near chance (1/15)
    assert _best_val_accuracy(warm[100]) > 0.9  # warmup 100 at the same rate: solved
    assert rescue["best_run"].endswith("/t001")


@needs_samples
def test_cli_text_form_runs() -> None:
    buf = io.StringIO()
    code = check.main(str(SAMPLES), as_json=False, fail_on="error", out=buf)
    assert code in (0, 1)
    assert " 0 errors" in buf.getvalue().splitlines()[0]


@needs_samples
def test_small_and_weightless() -> None:
    files = [p for p in SAMPLES.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    assert total < 20_000_000, f"sample_logs/ is {total / 1e6:.1f} MB"
    heavy = [p for p in files if p.suffix in (".pt", ".pth", ".safetensors", ".ckpt", ".bin")]
    assert heavy == []


# -- make_samples.py's safety rule, on a scratch folder --------------------------------------


@pytest.fixture(scope="module")
def ms() -> Iterator[ModuleType]:
    """sample_logs/make_samples.py loaded once as a module (it is a script, not a package)."""
    path = SAMPLES / "make_samples.py"
    spec = importlib.util.spec_from_file_location("make_samples", path)
    if spec is None or spec.loader is None or not path.exists():
        pytest.skip("sample_logs/make_samples.py is absent")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_samples"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("make_samples", None)


def test_refuses_non_empty_folder_without_force(ms: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "runner").mkdir()
    (tmp_path / "runner" / "mine.txt").write_text("a user's file")
    with pytest.raises(SystemExit, match="refusing"):
        ms.prepare(tmp_path, ["runner"], force=False)
    # --force does not touch what the manifest does not list
    with pytest.raises(SystemExit, match="did not make"):
        ms.prepare(tmp_path, ["runner"], force=True)
    assert (tmp_path / "runner" / "mine.txt").exists()


def test_force_deletes_only_manifest_paths(ms: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "runner" / "old-study").mkdir(parents=True)
    (tmp_path / "runner" / "old-study" / "metrics.jsonl").write_text("{}\n")
    (tmp_path / "jsonl" / "plain_loop").mkdir(parents=True)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    made = ["runner/old-study", "jsonl/plain_loop", "../" + outside.name, "/etc"]
    ms.write_manifest(tmp_path, made, {})
    ms.prepare(tmp_path, ["runner"], force=True)
    assert not (tmp_path / "runner").exists()
    assert (tmp_path / "jsonl" / "plain_loop").exists()  # a section not being remade
    assert outside.exists()  # a manifest never points the deletion outside the folder


def test_force_spares_files_added_later(ms: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "runner" / "old-study").mkdir(parents=True)
    (tmp_path / "runner" / "notes.txt").write_text("a user's file, put there afterwards")
    ms.write_manifest(tmp_path, ["runner/old-study"], {})
    with pytest.raises(SystemExit, match="did not make"):
        ms.prepare(tmp_path, ["runner"], force=True)
    assert not (tmp_path / "runner" / "old-study").exists()
    assert (tmp_path / "runner" / "notes.txt").exists()
