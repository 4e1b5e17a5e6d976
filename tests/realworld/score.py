"""Score `tunetop check --json` against the hand labels of the real-world corpus.

Runs tunetop's check in-process (tui.check: the same JSON the CLI prints) on each labelled
folder `runs/<slug>` and compares it with labels.json (rules in LABELLING.md):

- discovery: labelled runs found; phantom runs (reported, neither labelled nor optional, e.g.
  a checkpoint-N/ or runs/<date_host>/ folder reported as a run of its own);
- reading: for every labelled metric of a found run, the canonical name present with exactly
  the labelled point count; a canonical loss/val_loss/grad_norm/lr reported that the label does
  not have is a reading error too (something read as what it is not);
- findings: a run finding matches a labelled problem of the same kind whose step window,
  widened by 10% of the run's span on each side (2% for a spike or a divergence), holds the
  finding's step. Precision = matched /
  (matched + false alarms); a finding of a kind the label lists as `acceptable` (`kind`, or
  `kind:severity` for that severity only) is neither; a
  second finding on an already matched problem is neither. Recall = problems matched / problems;
- noise: warning and error findings on runs labelled healthy;
- studies: study-level findings on folders labelled as not a study;
- hyperparameters: keys of a run's model config.json (`vocab_size`, `architectures`, token ids:
  the label's `not_hparams`) reported among its hparams;
- errors: expected error words (`lfs`) present in some `errors` entry.

    python -m tests.realworld.score [--json] [--verbose]
    python tests/realworld/score.py
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

HERE = Path(__file__).resolve().parent
LABELS = HERE / "labels.json"
RUNS = HERE / "runs"
CANONICAL = ("loss", "val_loss", "grad_norm", "lr")
SEVERE = ("warning", "error")
# A finding may sit this share of the run's span outside a labelled window: trends (overfitting,
# not learning, warmup) have soft edges; a spike or a divergence is a point event.
WIDEN = 0.10
WIDEN_POINT = 0.02
POINT_KINDS = ("loss_spike", "divergence")


@dataclass
class SlugResult:
    slug: str
    crashed: str | None = None
    runs_expected: int = 0
    runs_found: int = 0
    missing_runs: list[str] = field(default_factory=list)
    phantom_runs: list[str] = field(default_factory=list)
    metrics_total: int = 0
    metrics_right: int = 0
    reading_errors: list[str] = field(default_factory=list)
    problems: int = 0
    problems_matched: int = 0
    missed_problems: list[str] = field(default_factory=list)
    true_findings: int = 0
    false_alarms: list[str] = field(default_factory=list)
    healthy_runs: int = 0
    noisy_runs: int = 0
    noise: list[str] = field(default_factory=list)
    non_study_folders: int = 0
    study_false_alarms: list[str] = field(default_factory=list)
    config_leaks: list[str] = field(default_factory=list)
    errors_expected: int = 0
    errors_met: int = 0
    format_total: int = 0
    format_right: int = 0


@dataclass
class Score:
    slugs: list[SlugResult]
    figures: dict[str, Any]


def _norm(run_id: str) -> str:
    run_id = run_id.strip("/")
    while run_id.startswith("./"):
        run_id = run_id[2:]
    return run_id or "."


def _check_json(path: Path) -> dict[str, Any]:
    from tui.check import report_json, run_check

    return report_json(run_check(str(path)))


def _span(rep: dict[str, Any]) -> float:
    firsts = [m["first_step"] for m in rep.get("metrics", {}).values()]
    lasts = [m["last_step"] for m in rep.get("metrics", {}).values()]
    if not firsts:
        return 0.0
    return float(max(lasts) - min(firsts))


def _describe(f: dict[str, Any]) -> str:
    return f"{f.get('kind')}@{f.get('step')} [{f.get('severity')}] {str(f.get('message'))[:120]}"


def _judge_findings(res: SlugResult, run_id: str, label: dict, rep: dict) -> None:
    problems = label.get("problems", [])
    acceptable = set(label.get("acceptable", []))
    matched = [False] * len(problems)
    span = _span(rep)
    for f in rep.get("findings", []):
        kind, step = f.get("kind"), f.get("step")
        hit = None
        for i, p in enumerate(problems):
            if p["kind"] != kind:
                continue
            share = WIDEN_POINT if kind in POINT_KINDS else WIDEN
            pad = share * max(span, float(p["end"] - p["start"]))
            if step is None or p["start"] - pad <= step <= p["end"] + pad:
                hit = i
                if not matched[i]:
                    break
        if hit is not None:
            if not matched[hit]:
                matched[hit] = True
                res.true_findings += 1
        elif not ({"*", kind, f"{kind}:{f.get('severity')}"} & acceptable):
            res.false_alarms.append(f"{run_id}: {_describe(f)}")
        if label.get("healthy") and f.get("severity") in SEVERE:
            res.noise.append(f"{run_id}: {_describe(f)}")
    res.problems += len(problems)
    res.problems_matched += sum(matched)
    for p, m in zip(problems, matched, strict=True):
        if not m:
            res.missed_problems.append(f"{run_id}: {p['kind']} {p['start']}..{p['end']}")
    if label.get("healthy"):
        res.healthy_runs += 1
        if any(n.startswith(f"{run_id}: ") for n in res.noise):
            res.noisy_runs += 1


def _judge_reading(res: SlugResult, run_id: str, label: dict, rep: dict, fmt: str | None) -> None:
    if label.get("metrics_unjudged"):
        return
    got = rep.get("metrics", {})
    want = label.get("metrics", {})
    for name, count in want.items():
        res.metrics_total += 1
        if name in got and got[name]["count"] == count:
            res.metrics_right += 1
        elif name in got:
            res.reading_errors.append(f"{run_id}: {name} has {got[name]['count']}, not {count}")
        else:
            res.reading_errors.append(f"{run_id}: {name} ({count} points) not read")
    optional = label.get("optional_metrics", {})
    for name, count in optional.items():
        if name in got and got[name]["count"] != count:
            res.reading_errors.append(f"{run_id}: {name} has {got[name]['count']}, not {count}")
    for name in CANONICAL:
        if name in got and name not in want and name not in optional:
            res.reading_errors.append(
                f"{run_id}: {name} ({got[name]['count']} points) read where the label has none"
            )
    hp = rep.get("hparams", {})
    not_hp = set(label.get("not_hparams", []))
    leaked = sorted(k for k in hp if k in not_hp or k.rsplit(".", 1)[-1] in not_hp)
    if leaked:
        res.config_leaks.append(f"{run_id}: {', '.join(leaked)} (from the model's config)")
    if fmt is not None:
        res.format_total += 1
        if rep.get("format") == fmt:
            res.format_right += 1


def score_slug(slug: str, label: dict, runs_dir: Path = RUNS) -> SlugResult:
    res = SlugResult(slug)
    expected = {_norm(k): v for k, v in label.get("runs", {}).items()}
    optional = {_norm(k) for k in label.get("optional_runs", [])}
    res.runs_expected = len(expected)
    res.errors_expected = len(label.get("expect_errors", []))
    # a folder labelled null is not judged either way (nothing tells whether it is a study)
    non_studies = {_norm(k) for k, v in label.get("studies", {}).items() if v is False}
    unjudged = {_norm(k) for k, v in label.get("studies", {}).items() if v is None}
    res.non_study_folders = len(non_studies)
    try:
        out = _check_json(runs_dir / slug)
    except Exception:  # a crash is a result to report, not a reason to stop scoring
        res.crashed = traceback.format_exc(limit=3).strip().splitlines()[-1]
        res.missing_runs = sorted(expected)
        return res
    # a label may name a run by its folder and by the folder a person calls the run
    # (mmengine's <timestamp>/ around the vis_data/ that holds the log)
    alias = {_norm(a): rid for rid, rl in expected.items() for a in rl.get("aliases", [])}
    reported = {alias.get(_norm(r["id"]), _norm(r["id"])): r for r in out.get("runs", [])}
    for run_id, rl in expected.items():
        rep = reported.get(run_id)
        if rep is None:
            res.missing_runs.append(run_id)
            res.problems += len(rl.get("problems", []))
            res.missed_problems += [
                f"{run_id}: {p['kind']} {p['start']}..{p['end']} (run not found)"
                for p in rl.get("problems", [])
            ]
            res.metrics_total += len(rl.get("metrics", {}))
            if rl.get("healthy"):
                res.healthy_runs += 1
            continue
        res.runs_found += 1
        fmt = label.get("format") if len(expected) == 1 else None
        _judge_reading(res, run_id, rl, rep, fmt)
        _judge_findings(res, run_id, rl, rep)
    for run_id, rep in reported.items():
        if run_id in expected or run_id in optional:
            continue
        res.phantom_runs.append(run_id)
        res.false_alarms += [f"{run_id} (phantom): {_describe(f)}" for f in rep.get("findings", [])]
    for st in out.get("studies", []):
        sid = _norm(st["id"])
        if sid in unjudged:
            continue
        if sid in non_studies or sid not in {_norm(k) for k in label.get("studies", {})}:
            res.study_false_alarms += [f"study {sid}: {_describe(f)}" for f in st["findings"]]
    messages = " ".join(
        str(e.get("message", "")) + " " + str(e.get("path", "")) for e in out.get("errors", [])
    )
    for word in label.get("expect_errors", []):
        if word.lower() in messages.lower():
            res.errors_met += 1
    return res


def _ratio(a: int, b: int) -> float:
    return round(a / b, 3) if b else 1.0


def figures(results: list[SlugResult]) -> dict[str, Any]:
    s = lambda attr: sum(getattr(r, attr) for r in results)  # noqa: E731
    n = lambda attr: sum(len(getattr(r, attr)) for r in results)  # noqa: E731
    tp, fp = s("true_findings"), n("false_alarms")
    return {
        "slugs": len(results),
        "crashes": sum(1 for r in results if r.crashed),
        "runs_labelled": s("runs_expected"),
        "runs_found": s("runs_found"),
        "discovery": _ratio(s("runs_found"), s("runs_expected")),
        "phantom_runs": n("phantom_runs"),
        "metrics_labelled": s("metrics_total"),
        "metrics_right": s("metrics_right"),
        "reading": _ratio(s("metrics_right"), s("metrics_total")),
        "reading_errors": n("reading_errors"),
        "format_right": f"{s('format_right')}/{s('format_total')}",
        "problems": s("problems"),
        "problems_found": s("problems_matched"),
        "recall": _ratio(s("problems_matched"), s("problems")),
        "true_findings": tp,
        "false_alarms": fp,
        "precision": _ratio(tp, tp + fp),
        "healthy_runs": s("healthy_runs"),
        "noisy_healthy_runs": s("noisy_runs"),
        "noise_findings": n("noise"),
        "non_study_folders": s("non_study_folders"),
        "study_false_alarms": n("study_false_alarms"),
        "model_config_leaks": n("config_leaks"),
        "errors_expected": s("errors_expected"),
        "errors_met": s("errors_met"),
    }


def load_labels(path: Path = LABELS) -> dict[str, dict]:
    return json.loads(path.read_text())["runs"]


def available(runs_dir: Path = RUNS, labels: dict[str, dict] | None = None) -> list[str]:
    labels = load_labels() if labels is None else labels
    return [slug for slug in labels if (runs_dir / slug).is_dir()]


def score(runs_dir: Path = RUNS, labels: dict[str, dict] | None = None) -> Score:
    labels = load_labels() if labels is None else labels
    results = [score_slug(slug, labels[slug], runs_dir) for slug in available(runs_dir, labels)]
    return Score(results, figures(results))


def summary_line(fig: dict[str, Any]) -> str:
    return (
        f"realworld: runs {fig['runs_found']}/{fig['runs_labelled']} found, "
        f"{fig['phantom_runs']} phantom; metrics {fig['metrics_right']}/{fig['metrics_labelled']} "
        f"read right; findings precision {fig['precision']} ({fig['true_findings']} true, "
        f"{fig['false_alarms']} false), recall {fig['recall']} "
        f"({fig['problems_found']}/{fig['problems']}); noise {fig['noise_findings']} warnings on "
        f"{fig['noisy_healthy_runs']}/{fig['healthy_runs']} healthy runs; "
        f"{fig['study_false_alarms']} study findings on non-studies; "
        f"{fig['model_config_leaks']} runs with model-config keys as hyperparameters; "
        f"errors {fig['errors_met']}/{fig['errors_expected']} expected; crashes {fig['crashes']}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="per-slug results and figures as JSON")
    ap.add_argument("--verbose", "-v", action="store_true", help="every mismatch, per slug")
    a = ap.parse_args(argv)
    if not available():
        print("no corpus under tests/realworld/runs: run python -m tests.realworld.materialize")
        return 2
    sc = score()
    if a.json:
        print(json.dumps({"figures": sc.figures, "slugs": [asdict(r) for r in sc.slugs]}, indent=1))
        return 0
    if a.verbose:
        for r in sc.slugs:
            lines = []
            if r.crashed:
                lines.append(f"CRASH {r.crashed}")
            lines += [f"missing run {x}" for x in r.missing_runs]
            lines += [f"phantom run {x}" for x in r.phantom_runs]
            lines += [f"reading: {x}" for x in r.reading_errors]
            lines += [f"hparams: {x}" for x in r.config_leaks]
            lines += [f"missed: {x}" for x in r.missed_problems]
            lines += [f"false alarm: {x}" for x in r.false_alarms]
            lines += [f"noise: {x}" for x in r.noise]
            lines += [f"study on non-study: {x}" for x in r.study_false_alarms]
            if r.errors_met < r.errors_expected:
                lines.append(f"expected errors met {r.errors_met}/{r.errors_expected}")
            if lines:
                print(f"== {r.slug}")
                print("\n".join("   " + x for x in lines))
    print(summary_line(sc.figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
