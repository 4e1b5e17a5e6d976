"""Static plots (tui/static_plot.py): `tunetop check --plot`, `tunetop show RUN` (issue 19 item 3).

Runs are real metrics.jsonl files read by tunetop's own reader; the plots are plotext's output.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tui.check import run_check
from tui.cli import main
from tui.plotting import minmax_downsample
from tui.static_plot import GUTTER, PlotOptions, plot_run

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_logs"
SPIKE_STEP = 123_457
SPIKE = 50.0


def write_run(folder: Path, steps: int = 200_000) -> Path:
    """A long run with a one-step loss spike (and a grad-norm spike with it)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    s = np.arange(steps)
    loss = 2.3 / (1 + s * 1e-4) + rng.normal(0, 0.01, steps)
    grad = 0.5 + rng.gamma(2.0, 0.05, steps)
    at = SPIKE_STEP if steps > SPIKE_STEP else steps * 6 // 10
    loss[at] = SPIKE
    grad[at] = 40.0
    loss, grad = loss.tolist(), grad.tolist()  # Python floats: their repr is JSON
    with open(folder / "metrics.jsonl", "w") as f:
        for i in range(steps):
            f.write(f'{{"step": {i}, "loss": {loss[i]!r}, "grad_norm": {grad[i]!r}}}\n')
            if i % 10_000 == 9_999:
                f.write(json.dumps({"step": i, "val_loss": loss[i] + 0.1}) + "\n")
    return folder


@pytest.fixture(scope="module")
def spiky(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(tmp_path_factory.mktemp("plots") / "spiky")


def _plot_area(text: str) -> list[str]:
    """The rows inside the frame, y tick labels cut off."""
    return [line.split("┤", 1)[1] for line in text.splitlines() if "┤" in line]


def test_a_one_step_spike_among_200k_points_is_drawn(spiky: Path) -> None:
    report = run_check(str(spiky))
    (rep,) = report.runs
    spikes = [f for f in rep.findings if f.kind == "loss_spike"]
    assert spikes and spikes[0].step == SPIKE_STEP
    text = plot_run(rep.run, rep.findings, PlotOptions(width=80))
    loss_panel = text.split("gradient norm")[0]
    # the y axis reaches the spike (a strided or averaged decimation would top out near 2.3)
    ticks = [float(m) for m in re.findall(r"^\s*([0-9.]+)┤", loss_panel, re.M)]
    assert max(ticks) == pytest.approx(SPIKE, rel=0.01)
    # ... and the top row of the plot has ink at the spike's column: the spike itself
    top = _plot_area(loss_panel)[0]
    col = round((SPIKE_STEP / 199_999) * (80 - GUTTER))
    assert any(ch not in " │" for ch in top[max(col - 3, 0) : col + 3]), top


def test_static_and_dashboard_downsampling_keep_the_same_spike(spiky: Path) -> None:
    """Both use minmax_downsample with one bucket per braille column: the spike survives it."""
    (rep,) = run_check(str(spiky)).runs
    s = rep.run.store.series("loss")
    _xs, ys = minmax_downsample(s.steps, s.values.astype(np.float64), 2 * (80 - GUTTER))
    assert ys.max() == pytest.approx(SPIKE)
    stride = s.values[:: len(s) // (2 * (80 - GUTTER))]
    assert stride.max() < 3  # what a plain decimation would draw: no spike


def test_finding_steps_are_marked_and_listed(spiky: Path) -> None:
    (rep,) = run_check(str(spiky)).runs
    out = io.StringIO()
    from tui.static_plot import write_run as write

    write(rep.run, rep.findings, PlotOptions(width=90), out)
    text = out.getvalue()
    assert "finding x" in text  # the legend, in the title
    assert f"x marks: step {SPIKE_STEP} grad_norm_outlier R14, loss_spike R13" in text
    assert any("x" in row for row in _plot_area(text))


def test_plain_text_without_a_tty_colour_on_one(spiky: Path) -> None:
    (rep,) = run_check(str(spiky)).runs
    plain = plot_run(rep.run, rep.findings, PlotOptions(width=80, color=False))
    colour = plot_run(rep.run, rep.findings, PlotOptions(width=80, color=True))
    assert "\x1b" not in plain
    assert "\x1b[" in colour


@pytest.mark.parametrize("width", [60, 120])
def test_sized_to_width(spiky: Path, width: int) -> None:
    (rep,) = run_check(str(spiky)).runs
    text = plot_run(rep.run, rep.findings, PlotOptions(width=width))
    frame = [line for line in text.splitlines() if "┐" in line]
    assert frame and all(len(line.rstrip()) == width for line in frame)


def tunetop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", *args], capture_output=True, text=True, timeout=300
    )


def test_check_plot_on_the_samples() -> None:
    done = tunetop("check", str(SAMPLES), "--plot", "--width", "80")
    out = done.stdout
    assert done.returncode == 1, done.stderr  # the samples have warnings
    assert out.startswith("tunetop check ")
    assert "\x1b" not in out  # captured stdout is no TTY
    # the flagged runs (a warning or worse) are plotted, the info-only ones are not
    assert "runner/resnet_outliers-20261126-000432: loss  (" in out
    assert "runner/resnet_outliers-20261126-000432: gradient norm  (" in out
    assert "jsonl/plain_loop: loss  (" not in out


def test_show_plots_the_run_named() -> None:
    run = SAMPLES / "tensorboard" / "torch_loop"  # a SummaryWriter run with one R14 finding
    done = tunetop("show", str(run), "--width", "120")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"{run}: loss  (loss" in out
    assert f"{run}: gradient norm  (grad_norm" in out
    assert "x marks: step 46 grad_norm_outlier R14" in out


def test_show_a_missing_run_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["show", str(tmp_path / "nope")]) == 2


def test_a_hostile_run_name_reaches_the_plot_inert(tmp_path: Path) -> None:
    name = "evil\x1b]0;owned\x07\x1b[2J"
    write_run(tmp_path / name, steps=300)
    out = io.StringIO()
    from tui.static_plot import options_for, write_report_plots

    write_report_plots(run_check(str(tmp_path)), out, options_for(out, 80), None)
    text = out.getvalue()
    assert "\x1b" not in text and "\x07" not in text
    assert "evil\\x1b]0;owned\\x07" in text
