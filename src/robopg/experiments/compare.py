"""``robopg compare``: learning curves with bootstrap bands, and a table of final return (IQM with stratified
bootstrap intervals), area under the curve and steps to a threshold, for the arms of a sweep or any runs
of one environment. See ``runs`` for how each run's numbers are defined and ``robopg.stats`` for the
statistics.
"""

from __future__ import annotations

import io
import json
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import stats
from .runs import NOT_SETTINGS, CompareError, Expected, RunData, check_one_env, discover, group

GRID_POINTS = 200


@dataclass
class ArmResult:
    label: str
    runs: list[RunData]
    included: list[RunData]           # the runs in the statistics
    missing: list[Expected]           # runs the sweep asks for that have no folder yet
    final: stats.Interval | None = None
    auc: stats.Interval | None = None
    to_threshold: list[int | None] = field(default_factory=list)  # per included run
    wall_s: float | None = None       # mean wall-clock seconds of the included runs

    @property
    def config(self) -> dict[str, Any]:
        return {k: v for k, v in self.runs[0].config.items() if k not in NOT_SETTINGS} if self.runs else {}

    @property
    def reached(self) -> int:
        return sum(s is not None for s in self.to_threshold)

    @property
    def median_steps(self) -> float | None:
        """Median over included runs, a run that never reached counting as infinitely many steps."""
        if not self.to_threshold:
            return None
        m = float(np.median([math.inf if s is None else s for s in self.to_threshold]))
        return m if math.isfinite(m) else None

    def best_run(self) -> RunData | None:
        done = [r for r in self.included if r.status == "complete"]
        return max(done, key=lambda r: (r.final_return(), r.auc())) if done else None  # ties: learnt sooner


@dataclass
class Comparison:
    env_id: str
    arms: list[ArmResult]
    threshold: float | None
    smooth: int
    include_partial: bool
    reps: int
    seed: int
    sources: list[str]

    # --- text ---------------------------------------------------------------------------------------------
    def notes(self) -> list[str]:
        out = []
        for arm in self.arms:
            for r in arm.runs:
                if r.status == "partial":
                    use = "included" if r in arm.included else "excluded from the statistics (--include-partial)"
                    out.append(f"{arm.label} s{r.seed}: PARTIAL, {r.note}; {use}")
                elif r.status == "no-metrics":
                    out.append(f"{arm.label} s{r.seed}: NO METRICS, {r.note} ({shown(r.path)})")
            for e in arm.missing:
                out.append(f"{arm.label} s{e.seed}: MISSING, the sweep has not started it ({shown(e.path)})")
        return out

    def table_rows(self) -> list[list[str]]:
        thr = "—" if self.threshold is None else f"{self.threshold:g}"
        head = ["arm", "runs", "final return, IQM [95% CI]", "AUC, IQM [95% CI]",
                f"steps to {thr} (median)", "reached", "wall time (mean)"]
        rows = [head]
        for a in self.arms:
            n_partial = sum(r.status == "partial" for r in a.runs)
            n_complete = sum(r.status == "complete" for r in a.runs)
            runs = str(n_complete)
            extra = []
            if n_partial:
                extra.append(f"{n_partial} partial{'' if self.include_partial else ', excluded'}")
            if len(a.runs) - n_complete - n_partial:
                extra.append(f"{len(a.runs) - n_complete - n_partial} without metrics")
            if a.missing:
                extra.append(f"{len(a.missing)} missing")
            if extra:
                runs += " (" + "; ".join(extra) + ")"
            if self.threshold is None or not a.included:
                steps, reached = "—", "—"
            else:
                m = a.median_steps
                steps = "not reached" if m is None else f"{m:,.0f}"
                reached = f"{a.reached}/{len(a.to_threshold)}"
            rows.append([a.label, runs, _fmt_interval(a.final), _fmt_interval(a.auc), steps, reached,
                         "—" if a.wall_s is None else f"{a.wall_s:,.0f} s"])
        return rows

    def markdown(self) -> str:
        rows = self.table_rows()
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        text = f"**{self.env_id}**: " + ", ".join(
            f"{a.label} ({len(a.included)} runs)" for a in self.arms) + "\n\n" + "\n".join(lines) + "\n"
        notes = self.notes()
        if notes:
            text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
        return text + "\n" + self.definitions() + "\n"

    def definitions(self) -> str:
        return (f"Final return: mean return of the episodes finished in the last 10% of a run's iterations that "
                f"finished any. AUC: mean return over training, weighted by env steps. IQM: mean of the middle "
                f"50% of runs (25% trimmed mean). Intervals: 95% percentile bootstrap over seeds, stratified "
                f"by task (Agarwal et al., 2021), {self.reps} resamples. Steps to threshold: first env steps "
                f"where the trailing mean of {self.smooth} iterations reaches it; runs that never do count as "
                f"infinitely slow in the median.")

    def to_dict(self) -> dict[str, Any]:
        def run_dict(arm: ArmResult, r: RunData) -> dict[str, Any]:
            d = {"path": shown(r.path), "seed": r.seed, "status": r.status, "note": r.note,
                 "included": r in arm.included, "budget": r.budget, "last_steps": r.last_steps,
                 "wall_s": r.last_wall if r.usable else None}
            if r.usable:
                d.update(final_return=r.final_return(), auc=r.auc(),
                         steps_to_threshold=None if self.threshold is None else r.steps_to(self.threshold,
                                                                                            self.smooth))
            return d

        return {
            "env_id": self.env_id, "sources": self.sources, "threshold": self.threshold, "smooth": self.smooth,
            "include_partial": self.include_partial, "bootstrap_reps": self.reps, "confidence": 0.95,
            "definitions": self.definitions(),
            "arms": [{
                "label": a.label, "config": a.config,
                "final_return": a.final.to_dict() if a.final else None,
                "auc": a.auc.to_dict() if a.auc else None,
                "steps_to_threshold": {"median": a.median_steps, "reached": a.reached,
                                       "runs": len(a.to_threshold)} if self.threshold is not None else None,
                "wall_s": a.wall_s,
                "runs": [run_dict(a, r) for r in a.runs],
                "missing": [{"seed": e.seed, "path": shown(e.path)} for e in a.missing],
            } for a in self.arms],
            "notes": self.notes(),
        }

    # --- figure -------------------------------------------------------------------------------------------
    def figure_png(self, dpi: int = 100) -> bytes:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        # Arms named by many settings get their legend under the curves, not over them.
        long = any(len(a.label) > LABEL_WIDTH for a in self.arms)
        height = 4.6 + (0.3 * sum(_wrap(a.label).count("\n") + 1 for a in self.arms) if long else 0.0)
        fig, axes = plt.subplots(1, 3, figsize=(16, height), dpi=dpi,
                                 gridspec_kw={"width_ratios": [1.2, 1.2, 0.9]})
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, arm in enumerate(self.arms):
            color = colors[i % len(colors)]
            for ax, axis in ((axes[0], "steps"), (axes[1], "wall")):
                self._plot_arm(ax, arm, axis, color)
        for ax, xlabel in ((axes[0], "environment steps"), (axes[1], "wall-clock seconds")):
            if self.threshold is not None:
                low, high = ax.get_ylim()
                # A threshold far above every curve would squash them flat: name it instead of drawing it.
                if self.threshold <= high + 0.25 * (high - low):
                    ax.axhline(self.threshold, color="0.5", lw=0.8, ls="--", label=f"threshold {self.threshold:g}")
                else:
                    ax.plot([], [], " ", label=f"threshold {self.threshold:g} (above the chart)")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"episode return (trailing mean of {self.smooth} iterations)")
            ax.grid(alpha=0.3)
        axes[0].set_title(f"{self.env_id}: return vs steps (mean, 95% bootstrap band)")
        axes[1].set_title("return vs wall time")
        if long:
            axes[0].legend(loc="upper left", bbox_to_anchor=(0.0, -0.14), fontsize=8)
        else:
            axes[0].legend(loc="best", fontsize=8)
        self._plot_intervals(axes[2], colors)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        return buf.getvalue()

    def _plot_arm(self, ax, arm: ArmResult, axis: str, color: str) -> None:
        runs = arm.included
        if runs:
            xs = [r.steps if axis == "steps" else r.wall for r in runs]
            top = max(float(x[-1]) for x in xs)
            grid = np.linspace(0.0, top, GRID_POINTS)
            curves = np.array([_on_grid(x, r.smoothed(self.smooth), grid) for x, r in zip(xs, runs)])
            mean, low, high = stats.curve_band(curves, self.reps, seed=self.seed)
            ax.plot(grid, mean, color=color, label=_wrap(f"{arm.label} (n={len(runs)})"))
            if len(runs) > 1:
                ax.fill_between(grid, low, high, color=color, alpha=0.2, lw=0)
        for r in arm.runs:
            if r.status == "partial" and r not in runs:
                x = r.steps if axis == "steps" else r.wall
                ax.plot(x, r.smoothed(self.smooth), color=color, ls=":", lw=1,
                        label=f"{arm.label} s{r.seed} (partial)" if axis == "steps" else None)

    def _plot_intervals(self, ax, colors: list[str]) -> None:
        labels = [_wrap(a.label) for a in self.arms]
        for i, a in enumerate(self.arms):
            if a.final is None:
                continue
            color = colors[i % len(colors)]
            if a.final.low is not None:
                ax.plot([a.final.low, a.final.high], [i, i], color=color, lw=8, alpha=0.45,
                        solid_capstyle="butt")
            ax.plot([a.final.point], [i], marker="|", ms=16, mew=2, color=color)
        ax.set_yticks(range(len(labels)), labels, fontsize=8 if any("\n" in x for x in labels) else None)
        ax.set_ylim(-0.6, len(labels) - 0.4)
        ax.invert_yaxis()
        ax.set_xlabel("final return")
        ax.set_title("final return: IQM, 95% bootstrap CI")
        ax.grid(alpha=0.3, axis="x")

    # --- files --------------------------------------------------------------------------------------------
    def write(self, out_dir: Path, figure: bool = True) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        written = [out_dir / "comparison.md", out_dir / "comparison.json"]
        written[0].write_text(self.markdown())
        written[1].write_text(json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n")
        if figure:
            (out_dir / "comparison.png").write_bytes(self.figure_png())
            written.append(out_dir / "comparison.png")
        return written


LABEL_WIDTH = 40


def _wrap(label: str) -> str:
    """A long arm label (many settings, space-separated) over several lines of at most LABEL_WIDTH."""
    return textwrap.fill(label, LABEL_WIDTH, break_long_words=False)


def shown(path: Path) -> str:
    """A path as the user would write it: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(f"cannot write {type(o).__name__} as JSON")


def _fmt_interval(iv: stats.Interval | None) -> str:
    if iv is None:
        return "—"
    if iv.low is None:
        return f"{iv.point:,.1f} (one run)"
    return f"{iv.point:,.1f} [{iv.low:,.1f}, {iv.high:,.1f}]"


def _on_grid(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``y(x)`` interpolated onto ``grid`` inside the run's own range, NaN outside: never extrapolated."""
    out = np.interp(grid, x, y)
    out[(grid < x[0]) | (grid > x[-1])] = np.nan
    return out


def default_threshold(env_id: str) -> float | None:
    """Gymnasium's ``reward_threshold`` for the id (InvertedPendulum-v5: 950, Hopper-v5: 3800), if any."""
    import gymnasium as gym

    try:
        return gym.spec(env_id).reward_threshold
    except gym.error.Error:
        return None


def compare(paths: list[str | Path], threshold: float | None = None, smooth: int = 5,
            include_partial: bool = False, reps: int = 2000, seed: int = 0) -> Comparison:
    if smooth < 1:
        raise CompareError(f"--smooth: must be at least 1 iteration, got {smooth}")
    if reps < 100:
        raise CompareError(f"--reps: use at least 100 bootstrap resamples, got {reps}")
    if threshold is not None and not math.isfinite(threshold):
        raise CompareError(f"--threshold: must be a finite number, got {threshold}")
    runs, expected, _ = discover(paths)
    if not runs:
        raise CompareError(f"{', '.join(map(str, paths))}: the sweep has no runs yet")
    env_id = check_one_env(runs)
    if not any(r.usable for r in runs):
        raise CompareError("no run has metrics to compare: " + "; ".join(f"{r.path}: {r.note}" for r in runs))
    if threshold is None:
        threshold = default_threshold(env_id)
    present = {r.path.resolve() for r in runs}
    arms = []
    for label, rs in group(runs, expected):
        missing = [e for e in expected if e.arm == label and e.path not in present]
        included = [r for r in rs if r.status == "complete" or (include_partial and r.status == "partial")]
        a = ArmResult(label, rs, included, missing)
        if included:
            a.final = stats.interval([np.array([r.final_return() for r in included])], stats.iqm,
                                         reps, seed=seed)
            a.auc = stats.interval([np.array([r.auc() for r in included])], stats.iqm, reps, seed=seed)
            if threshold is not None:
                a.to_threshold = [r.steps_to(threshold, smooth) for r in included]
            a.wall_s = float(np.mean([r.last_wall for r in included]))
        arms.append(a)
    # Expected arms with no run at all (a sweep that has not started them) are still listed.
    for label in dict.fromkeys(e.arm for e in expected):
        if label not in {a.label for a in arms}:
            arms.append(ArmResult(label, [], [], [e for e in expected if e.arm == label]))
    return Comparison(env_id, arms, threshold, smooth, include_partial, reps, seed, [str(p) for p in paths])
