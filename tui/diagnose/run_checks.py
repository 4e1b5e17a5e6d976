"""Per-run diagnosis: every streaming detector of one run behind one object.

`RunDetectors.update(store)` consumes only the points it has not seen (a per-metric count),
each detector doing O(1) amortized work per point, and returns the findings that are new since
the last call. Its verdicts do not depend on how the points were split into updates: every
detector judges a point only by the points before it on fixed grids (see robust.py).

`.findings` is the current set, and it is the source of truth: a finding whose evidence
changes is replaced (a divergence confirmed absorbs the loss spikes and the rise that were its
start; the grad-norm outlier finding counts its episodes; R24's and R21's shares move), and a
blow-up the loss comes back from is withdrawn. `update` returns what is in `.findings` now and
was not in it before the call (new or replaced findings).

When the store's `restarts` grow or a series got shorter or changed under the points already
seen (a run restarted from a checkpoint), everything is reset and re-consumed.
"""

from __future__ import annotations

import math
from typing import Any

from tui.diagnose.bestpoint import (
    FINISHED_FRACTION,
    MIN_EVALS,
    RunningBest,
    flat_since_late_line,
    log_interval,
    r3_side,
    span_fraction,
    span_origin,
)
from tui.diagnose.divergence import DivergenceDetector
from tui.diagnose.early_rise import EARLY, EarlyRiseDetector
from tui.diagnose.findings import Finding
from tui.diagnose.gradnorm import (
    AGGRESSIVE,
    MIN_UPDATES,
    ClipCounter,
    clip_norm_of,
    clip_stats,
    p90,
)
from tui.diagnose.instability import InstabilityDetector
from tui.diagnose.learning import NotLearning, logs_reward, not_learning, num_classes_of
from tui.diagnose.overfit import Overfit, overfitting
from tui.diagnose.schedule_check import DropTracker, finding_from_drops
from tui.diagnose.spikes import GRAD_OUTLIER, LOSS_SPIKE, Jump, JumpDetector
from tui.diagnose.warmup import RampTracker, warmup_from_hparams, warmup_severity
from tui.logs.model import Run
from tui.logs.store import RunStore, Series

METRICS = ("loss", "val_loss", "grad_norm", "lr", "clipped")
STATS_EXACT = 10_000  # grad_norm + clipped points up to which stats() is exact on every call
STATS_GROWTH = 1.01  # beyond, recomputed when the series grew by 1% since
LINK_POINTS = 3  # a loss spike this many logging intervals after a grad-norm episode is its
MAX_GRAD_P90 = 100  # grad-norm episodes whose p90 is recomputed (O(n) each); later ones reuse


def _g(v: float | None) -> str:
    """A number for a one-line message."""
    if v is None:
        return "?"
    if not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Inf" if v > 0 else "-Inf")
    return f"{v:.4g}"


def _times(ratio: float | None) -> str:
    """2.46 -> "2.5x", 14.2 -> "14x": one decimal where rounding would hide half the ratio."""
    if ratio is None:
        return "far above"
    return f"{ratio:.1f}x" if ratio < 10 else f"{ratio:.0f}x"


def _clean(evidence: dict[str, Any]) -> dict[str, Any]:
    """Evidence with non-finite floats as strings ('nan', 'inf'), as JSON shows them, so that
    findings compare equal (NaN != NaN)."""
    return {
        k: (repr(v) if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in evidence.items()
    }


def _where(ev: Jump) -> str:
    """The step of a jump's value, and where the jump began when that was earlier."""
    if ev.peak_step == ev.step:
        return str(ev.step)
    return f"{ev.peak_step} (rising from step {ev.step})"


def _ordinal(n: int) -> str:
    """2 -> "2nd", 11 -> "11th", 23 -> "23rd"."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _positive(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v > 0


def _height(ev: Jump) -> float:
    """How far a jump stands above its baseline (its ratio; its z where there is none)."""
    return ev.ratio if ev.ratio is not None else ev.z


def _jump_evidence(ev: Jump) -> dict[str, Any]:
    """What a loss spike or grad-norm outlier shows: its highest value and where it was logged,
    the baseline, how far above."""
    return {
        "value": ev.value,
        "peak_step": ev.peak_step,
        "baseline": ev.baseline,
        "ratio": ev.ratio,
        "z": ev.z,
    }


def _finding(
    kind: str, message: str, step: int | None, evidence: dict[str, Any], severity: str = ""
) -> Finding:
    return Finding(kind, message, step, _clean(evidence), severity=severity)


class RunDetectors:
    """All per-run detectors of one run (R3, R7, R12-R14, R16, R21, R23, R24)."""

    def __init__(
        self, total_steps: int, hparams: dict[str, Any] | None = None, blowup_factor: float = 5.0
    ) -> None:
        self.total_steps = int(total_steps) if total_steps and total_steps > 0 else 0
        self.hparams = dict(hparams or {})
        self.clip_norm = clip_norm_of(self.hparams)
        self.spikes = JumpDetector(LOSS_SPIKE)  # R13
        self.grads = JumpDetector(GRAD_OUTLIER)  # R14
        self.divergence = DivergenceDetector(blowup_factor)  # R16
        self.rise = InstabilityDetector(self.total_steps)  # R12
        self.early = EarlyRiseDetector(self.total_steps)  # R13, early
        self.best_val = RunningBest()  # R1, R3
        self.ramp = RampTracker()  # R21
        self.clip = ClipCounter(self.clip_norm)  # R24
        self.drops = DropTracker()  # R7
        self._store: RunStore | None = None
        self._findings: list[Finding] = []
        self._dirty = False
        self._reset()

    # -- feeding -------------------------------------------------------------------------
    def _reset(self) -> None:
        for d in (
            self.spikes,
            self.grads,
            self.divergence,
            self.rise,
            self.early,
            self.best_val,
            self.ramp,
            self.clip,
            self.drops,
        ):
            d.reset()
        self._consumed: dict[str, int] = {}
        self._last_step: dict[str, int] = {}
        self._restarts = 0
        self._spike_events: list[Jump] = []
        self._grad_events: list[Jump] = []
        self._grad_p90: float | None = None
        self._worst_grad: Jump | None = None  # the highest grad-norm episode (R14)
        self._grad_p90_n = 0  # times the worst changed (its p90 recomputed up to a bound)
        self._max_step: int | None = None
        self._stats: dict[str, Any] | None = None  # the last clip statistics, and ...
        self._stats_n = 0  # ... the grad_norm + clipped points they counted
        self._slow: tuple[NotLearning | None, Overfit | None] = (None, None)
        self._slow_n = 0  # loss + val_loss points the whole-series verdicts counted

    def set_total_steps(self, n: int) -> None:
        """The planned length became known (or changed): fractions and phases use it from the
        next `update` on, which re-consumes everything."""
        n = int(n) if n and n > 0 else 0
        if n != self.total_steps:
            self.total_steps = n
            self.rise = InstabilityDetector(n)
            self.early = EarlyRiseDetector(n)
            self._consumed = {}  # forces a full re-consume at the next update
            self._dirty = True

    def update(self, store: RunStore) -> list[Finding]:
        """Consume the points not seen before; return the findings new since the last call."""
        series: dict[str, Series] = {n: store.series(n) for n in METRICS if store.has(n)}
        restart = store is not self._store or len(store.restarts) != self._restarts or self._dirty
        for name, s in series.items():
            c = self._consumed.get(name, 0)
            if len(s) < c or (c and int(s.steps[c - 1]) != self._last_step[name]):
                restart = True
        if restart:
            self._reset()
            self._dirty = False
            self._store = store
            self._restarts = len(store.restarts)
        for name, s in series.items():
            c, n = self._consumed.get(name, 0), len(s)
            if n > c:
                self._feed(name, s, c, n)
                self._consumed[name] = n
                last = self._last_step[name] = int(s.steps[n - 1])
                self._max_step = last if self._max_step is None else max(self._max_step, last)
        before = self._findings
        self._findings = self._compose()
        return [f for f in self._findings if f not in before]

    def _feed(self, name: str, s: Series, start: int, end: int) -> None:
        steps, values = s.steps, s.values
        if name == "loss":
            self._spike_events += self.spikes.consume(steps, values, start, end)
            self.divergence.consume(steps, values, start, end)
            self.rise.consume(steps, values, end)
            self.early.consume(steps, values, end)
        elif name == "val_loss":
            self.best_val.consume(steps, values, start, end)
        elif name == "grad_norm":
            for ev in self.grads.consume(steps, values, start, end):
                self._grad_events.append(ev)
                worst = self._worst_grad
                if worst is None or _height(ev) > _height(worst):
                    self._worst_grad = ev
                    self._grad_p90_n += 1
                    if self._grad_p90_n <= MAX_GRAD_P90:  # p90 of the norms up to the worst
                        self._grad_p90 = p90(values[: ev.index + 1])
            self.clip.consume_grad(values, start, end)
        elif name == "lr":
            self.ramp.consume(steps, values, start, end)
            self.drops.consume(steps, values, start, end)
        elif name == "clipped":
            self.clip.consume_clipped(values, start, end)

    # -- findings ------------------------------------------------------------------------
    @property
    def findings(self) -> list[Finding]:
        return list(self._findings)

    def stats(self) -> dict[str, Any]:
        """R22-R24 clipping statistics: p90 of the unclipped grad norms (the suggested clip
        threshold, R23), the fraction of steps above it, the fraction above the configured
        clip_norm, and the fraction actually clipped where `clipped` is logged (R24).

        They take O(n) over the whole series, and the dashboard asks every round a run grows:
        exact up to STATS_EXACT points; beyond, recomputed once the series grew by
        STATS_GROWTH since the last time (amortized O(1) per point; at most 1% of the points
        not yet counted)."""
        n = self._consumed.get("grad_norm", 0) + self._consumed.get("clipped", 0)
        if self._stats is None or (
            n != self._stats_n and (n <= STATS_EXACT or n >= STATS_GROWTH * self._stats_n)
        ):
            store = self._store if self._store is not None else RunStore()
            self._stats = clip_stats(store, self.clip_norm)
            self._stats_n = n
        return dict(self._stats)

    def _total(self) -> int:
        last = self._max_step
        if not self.total_steps:
            return (last + 1) if last is not None else 0
        # a log past its planned length (max_steps below its last step; HF's steps end at
        # max_steps itself, 1-based): the log's length
        return last + 1 if last is not None and last > self.total_steps else self.total_steps

    def _phase(self, step: int) -> str:
        total = self._total()
        return "early" if total and step < EARLY * total else "mid"

    def _compose(self) -> list[Finding]:
        out: list[Finding] = []
        total = self._total()
        div = self.divergence.current()
        now = self._consumed.get("loss", 0)
        # R16 divergence
        if div is not None:
            if div.kind == "non-finite" and div.nonfinite_step == div.step:
                msg = (
                    f"loss became {_g(div.value)} at step {div.step} (first value "
                    f"{_g(div.first_value)}) — R16: the run diverged; add warmup (w) or "
                    f"clipping (c); lower the LR only as a last resort (R17)"
                )
            else:
                tail = (
                    f", then NaN/Inf at step {div.nonfinite_step}"
                    if div.nonfinite_step is not None
                    else " and stayed up"
                )
                msg = (
                    f"loss blew up to {_g(div.value)} at step {div.step}, over "
                    f"{self.divergence.factor:g}x its first value {_g(div.first_value)}"
                    f"{tail} — R16: the run diverged; add warmup (w) or "
                    f"clipping (c); lower the LR only as a last resort (R17)"
                )
            out.append(
                _finding(
                    "divergence",
                    msg,
                    div.step,
                    {
                        "value": div.value,
                        "first_value": div.first_value,
                        "cause": div.kind,
                        "factor": self.divergence.factor,
                        "nonfinite_step": div.nonfinite_step,
                    },
                )
            )
        # R13 loss spikes (the ones that turned into the divergence are part of it); from
        # the second on, each says how many there have been: recurring spikes call for clipping
        first_spike: Jump | None = None
        count = 0
        for ev in self._spike_events:
            if div is not None:
                end = self.spikes.episode_end(ev.index, now)
                if end is None or end >= div.index:
                    continue
            count += 1
            first_spike = first_spike or ev
            phase = self._phase(ev.step)
            how = f"{ev.ratio:.1f}x" if ev.ratio is not None else "far above"
            if count == 1:
                what = (
                    f"sudden {phase} instability; check grad_norm there, consider clipping at "
                    f"p90 (R23) or warmup (R17)"
                )
            else:
                what = (
                    f"{_ordinal(count)} spike since step {first_spike.step}: recurring, clip at "
                    f"p90 (R23)"
                )
            msg = (
                f"loss jumped to {_g(ev.value)} at step {_where(ev)}, {how} its recent median "
                f"{_g(ev.baseline)} ({ev.z:.0f} robust sd) — R13: {what}"
            )
            evidence = {**_jump_evidence(ev), "phase": phase, "number": count}
            if count > 1:
                evidence["first_step"] = first_spike.step
            out.append(_finding("loss_spike", msg, ev.step, evidence))
        # R12 rise after a decline
        r = self.rise.found
        if r is not None and not (div is not None and r.confirm_step >= div.step):
            phase = self._phase(r.min_step)
            what = (
                "early instability: try warmup (R17-R19)"
                if phase == "early"
                else "mid-training instability: try clipping (R23) or warmup, else a lower LR (R17)"
            )
            msg = (
                f"loss rising since step {r.min_step} (smoothed {_g(r.min_value)} -> "
                f"{_g(r.confirm_value)} by step {r.confirm_step}) after falling from "
                f"{_g(r.first_value)} — R12: {what}"
            )
            out.append(
                _finding(
                    "unstable_training",
                    msg,
                    r.min_step,
                    {
                        "phase": phase,
                        "min_value": r.min_value,
                        "value": r.confirm_value,
                        "confirmed_step": r.confirm_step,
                        "first_value": r.first_value,
                    },
                )
            )
        # R13 early instability: the loss climbs above where it started
        e = self.early.found
        if e is not None and not (div is not None and div.step <= e.last_step):
            msg = (
                f"loss rose above its start in the first steps: {_g(e.start_value)} at step "
                f"{e.start_step} -> {_g(e.peak_value)} ({e.ratio:.2f}x, mean of "
                f"{self.early.width} points) from step {e.peak_step}; {_g(e.last_value)} at step "
                f"{e.last_step} — R13: early instability: try warmup (w, R17-R19)"
            )
            out.append(
                _finding(
                    "unstable_training",
                    msg,
                    e.start_step,
                    {
                        "phase": "early",
                        "cause": "rise_from_start",
                        "first_value": e.start_value,
                        "min_value": e.start_value,
                        "value": e.peak_value,
                        "ratio": e.ratio,
                        "peak_step": e.peak_step,
                        "noise": e.noise,
                        "confirmed_step": e.last_step,
                    },
                )
            )
        # R14 grad-norm outliers: one finding, naming the worst episode, counting them all
        if self._worst_grad is not None:
            out.append(self._grad_finding(self._worst_grad, div))
        # R24 clipping share
        frac = self.clip.fraction()
        if frac is not None and frac[1] >= MIN_UPDATES and frac[0] > AGGRESSIVE:
            pct = round(100 * frac[0])
            cn = f" at clip_norm {_g(self.clip_norm)}" if self.clip_norm is not None else ""
            msg = (
                f"{pct}% of {frac[1]} updates clipped{cn} — R24: extremely aggressive, a "
                f"strange way of lowering the LR; lower the LR instead, or clip near the "
                f"grad-norm p90 (R23)"
            )
            out.append(
                _finding(
                    "clipping_too_aggressive",
                    msg,
                    None,
                    {
                        "fraction": pct / 100,
                        "updates": frac[1],
                        "source": frac[2],
                        "clip_norm": self.clip_norm,
                    },
                )
            )
        # R5/R4 not learning, R1 overfitting: whole-series verdicts
        stuck, over = self._whole_series_verdicts(total)
        if stuck is not None:
            out.append(self._not_learning_finding(stuck))
        if over is not None:
            out.append(self._overfitting_finding(over))
        # R3 best step (validation only: the training loss' best is its end in any healthy run)
        # (a best in the first 10% behind an overfitting finding is that finding's fact)
        r3 = self._r3_findings(total, learned=stuck is None)
        out += [f for f in r3 if not (over is not None and f.kind == "best_step_early")]
        # R21 warmup share. A warmup-study trial (R18/R19: warmup W, constant 2W, no base
        # schedule: max_train_steps 0) is all warmup by design; R19 already bounds its W by the
        # baseline's max_train_steps, so its share says nothing.
        mts = self.hparams.get("max_train_steps")
        warmup_trial = isinstance(mts, int | float) and not isinstance(mts, bool) and mts == 0
        if total and not warmup_trial:
            out += self._warmup_findings(total)
        # R7 hand-made piecewise schedule
        schedule = finding_from_drops(self.drops.drops)
        if schedule is not None:
            out.append(schedule)
        out.sort(key=lambda f: (f.step if f.step is not None else 1 << 62, f.kind))
        return out

    def _grad_finding(self, ev: Jump, div: Any) -> Finding:
        """R14: the worst episode; a link to instability claimed only where the loss spiked,
        rose or diverged at or right after an episode (heavy tails on a stable run, GRPO's,
        explain nothing)."""
        n = len(self._grad_events)
        first = self._grad_events[0]
        linked = self._unstable_at(self._grad_events, div)
        if n == 1:
            where = "1 episode"
        elif first is ev:
            where = f"the first and worst of {n} episodes"
        else:
            where = f"the worst of {n} episodes, the first at step {first.step}"
        if linked:
            at = ", ".join(str(s) for s in linked[:5]) + (" ..." if len(linked) > 5 else "")
            tail = (
                f"the loss was unstable at or right after it (step {at}) — R14: these outliers "
                f"explain the instability; clip near p90 (R23)"
            )
        else:
            tail = (
                "the loss stayed stable at those steps — R14: heavy-tailed norms, not a cause "
                "of instability; clipping near p90 (R23) only if the loss becomes unstable"
            )
        msg = (
            f"grad norm {_g(ev.value)} at step {_where(ev)} ({where}) is {_times(ev.ratio)} the "
            f"typical {_g(ev.baseline)}; p90 {_g(self._grad_p90)}; {tail}"
        )
        steps = [e.step for e in self._grad_events[:20]]
        ev_ = {
            **_jump_evidence(ev),
            "p90": self._grad_p90,
            "episodes": n,
            "steps": steps,
            "first_step": first.step,
            "unstable_steps": linked[:20],
        }
        return _finding("grad_norm_outlier", msg, ev.step, ev_)

    def _unstable_at(self, events: list[Jump], div: Any) -> list[int]:
        """Steps where the loss spiked, began to rise or diverged at or right after a grad-norm
        episode: within one logging interval before it to LINK_POINTS intervals after its
        peak."""
        store = self._store
        if store is None or not store.has("loss"):
            return []
        gap = log_interval(store.series("loss").steps)
        marks = [e.step for e in self._spike_events]
        if self.rise.found is not None:
            marks.append(self.rise.found.min_step)
        if div is not None:
            marks.append(div.step)
        out = set()
        for e in events:
            lo, hi = e.step - gap, e.peak_step + LINK_POINTS * gap
            out.update(m for m in marks if lo <= m <= hi)
        return sorted(out)

    def _whole_series_verdicts(self, total: int) -> tuple[NotLearning | None, Overfit | None]:
        """not_learning (R5) and overfitting (R1) look at whole series (O(n)): exact up to
        STATS_EXACT points, then recomputed once the series grew by STATS_GROWTH (amortized
        O(1) per point), like stats()."""
        n = self._consumed.get("loss", 0) + self._consumed.get("val_loss", 0)
        if n == self._slow_n or (n > STATS_EXACT and n < STATS_GROWTH * self._slow_n):
            return self._slow
        self._slow_n = n
        store = self._store
        stuck = over = None
        if store is not None and store.has("loss"):
            loss = store.series("loss")
            if not logs_reward(store.names()):  # RL: a policy's loss does not measure fit
                w = self._warmup(total)
                stuck = not_learning(
                    loss.steps,
                    loss.values,
                    total,
                    w[0] if w is not None else None,
                    num_classes_of(self.hparams),
                )
            if store.has("val_loss"):
                val = store.series("val_loss")
                over = overfitting(val.steps, val.values, loss.steps, loss.values)
        self._slow = (stuck, over)
        return self._slow

    def _origin(self) -> int:
        """Where the run's own span begins (a resumed run's log starts far from 0)."""
        store = self._store
        for name in ("loss", "val_loss"):
            if store is not None and store.has(name):
                return span_origin(store.series(name).steps)
        return 0

    def _not_learning_finding(self, nl: NotLearning) -> Finding:
        if nl.at_chance:
            seen = (
                f"loss sits at chance: best level {_g(nl.best_value)} (step {nl.best_step}) vs "
                f"ln(classes) {_g(nl.chance)}; started at {_g(nl.start_value)}, "
                f"{_g(nl.last_value)} at step {nl.last_step}"
            )
        else:
            seen = (
                f"loss never fell meaningfully below its start {_g(nl.start_value)} (step "
                f"{nl.start_step}): best level {_g(nl.best_value)} at step {nl.best_step}, "
                f"{_g(nl.last_value)} at step {nl.last_step}, noise sd {_g(nl.noise)}"
            )
        msg = (
            f"{seen} — R5: not learning; try a larger learning rate (widen the search "
            f"upward) or hunt for a bug (labels, loss, frozen weights); training longer will "
            f"not help (R4's caveat)"
        )
        ev = {
            "start_value": nl.start_value,
            "best_value": nl.best_value,
            "best_step": nl.best_step,
            "value": nl.last_value,
            "last_step": nl.last_step,
            "noise": nl.noise,
            "points_per_level": nl.width,
            "chance": nl.chance,
            "at_chance": nl.at_chance,
        }
        return _finding("not_learning", msg, nl.start_step, ev)

    def _overfitting_finding(self, o: Overfit) -> Finding:
        rise = (o.last_value - o.best_value) / abs(o.best_value) if o.best_value else None
        pct = f" (+{rise:.0%})" if rise is not None else ""
        msg = (
            f"val_loss rose from its best {_g(o.best_value)} at step {o.best_step} to "
            f"{_g(o.last_value)} at step {o.last_step}{pct} over {o.evals_after} evaluations "
            f"while the training loss fell {_g(o.train_at_best)} -> {_g(o.train_last)} — R1: "
            f"overfitting; the result is the step-{o.best_step} checkpoint; regularize, add "
            f"data or stop earlier"
        )
        ev = {
            "best_step": o.best_step,
            "best_value": o.best_value,
            "value": o.last_value,
            "last_step": o.last_step,
            "evals_after": o.evals_after,
            "train_at_best": o.train_at_best,
            "train_last": o.train_last,
        }
        return _finding("overfitting", msg, o.best_step, ev)

    def _r3_findings(self, total: int, learned: bool) -> list[Finding]:
        """R3 over the run's own span, only on a run that learned (R4's caveat: a run that did
        not learn peaks at its end, or anywhere, for nothing); the late side only where the
        validation curve still improved after the 75% line (beyond its noise)."""
        b = self.best_val
        last = self._max_step
        if not (
            b.step is not None
            and b.count >= MIN_EVALS
            and total
            and last is not None
            and last + 1 >= FINISHED_FRACTION * total
        ):
            return []
        origin = self._origin()
        if origin >= total or not learned:
            return []  # where the best of a run that did not learn falls says nothing (R4)
        fraction = span_fraction(b.step, origin, total)
        side = r3_side(fraction)
        if side is None:
            return []
        span = f"{total} steps" if origin == 0 else f"steps {origin}-{total} (resumed)"
        if side == "late":
            if self._store is None:
                return []
            val = self._store.series("val_loss")
            flat, gain, _ = flat_since_late_line(val.steps, val.values, origin, total)
            if flat:
                return []
            advice = (
                f"still improving after the 75% line (by {_g(gain)}): it would likely "
                f"benefit from training longer (and re-tuning the decay)"
            )
        else:
            advice = "max_train_steps is likely too high"
        msg = (
            f"best val_loss {_g(b.value)} at step {b.step}, {fraction:.0%} of {span} — R3: {advice}"
        )
        ev = {
            "metric": "val_loss",
            "value": b.value,
            "fraction": fraction,
            "total_steps": total,
            "origin": origin,
        }
        return [_finding(f"best_step_{side}", msg, b.step, ev)]

    def _warmup(self, total: int) -> tuple[float, str, bool] | None:
        """(warmup steps, source, finished?) from the hparams, else the LR series' ramp."""
        if not total:
            return None
        w = warmup_from_hparams(self.hparams, total)
        if w is not None:
            return w, "hparams", w < total
        ramp = self.ramp.warmup_steps()
        if ramp is None:
            return None
        # a ramp still rising at the last point "never finishes" only once the run is over
        # (a live run may still be warming up)
        ended = self.ramp.last_step + 1 >= FINISHED_FRACTION * total
        return ramp[0], "lr series", ramp[1] or not ended

    def _warmup_findings(self, total: int) -> list[Finding]:
        """R21: info over 5% of the total steps; warning over 25%, or when the warmup never
        finishes (longer than the run, or an LR ramp still rising at the run's end)."""
        warm = self._warmup(total)
        if warm is None:
            return []
        w, source, finished = warm
        share = min(w, total) / total
        # "never finishes" is a warning only against a planned length (max_train_steps): a
        # run that merely stopped in its warmup (killed early, length unknown) is info
        planned = _positive(self.hparams.get("max_train_steps"))
        sev = warmup_severity(share, finished or not planned)
        if not finished and not planned:
            sev = "info"
        if sev is None:
            return []
        if finished:
            what = f"is {share:.0%} of {total} total steps"
            todo = ""
        elif planned:
            what = f"never finishes: the LR is still rising at the end of the {total} steps"
            todo = "; shorten the warmup so the LR reaches its base value"
        else:
            what = (
                f"had not finished when the run stopped at step {total - 1} (its planned "
                f"length is unknown)"
            )
            todo = "; if the run was planned this short, shorten the warmup"
        msg = (
            f"warmup of {w:.0f} steps ({source}) {what} — R21: needing more than 5% warmup "
            f"suggests increasing max_train_steps{todo}"
        )
        ev = {
            "warmup_steps": w,
            "share": round(share, 4),
            "total_steps": total,
            "source": source,
            "finished": finished,
        }
        return [_finding("warmup_too_long", msg, None, ev, severity=sev)]


def diagnose_run(run: Run) -> list[Finding]:
    """All per-run findings of a run, from a fresh RunDetectors."""
    det = RunDetectors(run.total_steps, run.hparams)
    det.update(run.store)
    return det.findings
