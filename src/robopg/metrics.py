"""Per-iteration metrics: metrics.csv (the record), TensorBoard events, and what the console shows."""

from __future__ import annotations

import csv
import io
import math
import os
import sys
import time
from pathlib import Path

from . import faults
from .errors import StorageError

COLUMNS = ["iteration", "env_steps", "wall_s", "steps_per_s", "episodes", "return_mean", "return_std",
           "return_min", "return_max", "length_mean", "policy_loss", "entropy", "value_loss",
           "explained_variance", "grad_norm", "lr", "grad_var", "grad_snr", "worker_restarts", "sync_ms", "env_errors",
           # the trust-region update rules' (empty for pg): KL to the sampling policy, PPO's share of clipped
           # ratios and epochs run, TRPO's line-search backtracks and the surrogate's gain
           "approx_kl", "clip_fraction", "epochs_run", "backtracks", "surrogate_improvement",
           # --randomize-focus's (empty without it): the worst and best cell's score, the worst cell's probability
           "focus_score_min", "focus_score_max", "focus_p_max",
           # --policy-obs estimated's (empty without it): the physics estimate's error and R^2 on the batch it sampled
           "physics_estimate_loss", "physics_estimate_r2",
           # --mean-bound-coef's (empty without it): the policy's mean beyond the action bounds, squared
           "mean_bound_penalty",
           # --eval-every's (empty between evaluations): the held-out score best-eval.pt keeps, the mean and the lowest
           "eval_score", "eval_mean", "eval_min"]
INTEGER_COLUMNS = {"iteration", "env_steps", "episodes", "worker_restarts", "env_errors", "epochs_run", "backtracks"}
WALL_COLUMNS = ("wall_s", "steps_per_s", "sync_ms")  # differ between identical runs; everything else must not


def read_csv(path: str | Path) -> list[dict[str, float]]:
    """The rows of a metrics.csv as floats (NaN where empty). A last line without its newline is a row a
    killed process did not finish writing: it is left out."""
    text = Path(path).read_text()
    if text and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    return [{k: float(v) if v not in ("", None) else math.nan for k, v in row.items() if k is not None}
            for row in csv.DictReader(io.StringIO(text, newline=""))]


class MetricsLog:
    """Appends one row per iteration to metrics.csv (flushed, so a crash keeps every finished iteration)."""

    def __init__(self, run_dir: Path, tensorboard: bool, keep_until: int | None = None):
        self.path = run_dir / "metrics.csv"
        if keep_until is not None and self.path.exists():
            # Resuming: rows written after the checkpoint belong to iterations that will run again.
            rows = [r for r in read_csv(self.path) if r["iteration"] <= keep_until]
            self._write_rows(rows)
        elif keep_until is None or not self.path.exists():
            self._write_rows([])
        self._file = open(self.path, "a", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=COLUMNS)
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self._tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=keep_until)

    def _write_rows(self, rows: list[dict[str, float]]) -> None:
        # Through a temporary file and a rename: a process killed while rewriting keeps the old file whole.
        out = io.StringIO(newline="")
        w = csv.DictWriter(out, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow(_formatted(r))
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "w", newline="") as f:
                f.write(out.getvalue())
                f.flush()
                os.fsync(f.fileno())
            faults.point("metrics.before_rewrite_rename", self.path)
            os.replace(tmp, self.path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise StorageError(e.errno, f"cannot write {self.path}: {e.strerror or e}") from e

    def write(self, row: dict[str, float]) -> None:
        try:
            faults.point("metrics.before_row", self.path)
            self._csv.writerow(_formatted(row))
            self._file.flush()
            faults.point("metrics.after_row", self.path)
        except OSError as e:
            raise StorageError(e.errno, f"cannot write {self.path}: {e.strerror or e}") from e
        if self._tb is not None:
            step = int(row["env_steps"])
            try:
                for k in COLUMNS[3:]:
                    v = row.get(k)
                    if v is not None and math.isfinite(v):
                        self._tb.add_scalar(f"train/{k}", v, step)
                faults.point("tensorboard.after_scalars", self.path.parent / "tensorboard")
            except OSError as e:
                raise StorageError(e.errno, f"cannot write {self.path.parent / 'tensorboard'}: "
                                            f"{e.strerror or e}") from e

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _formatted(row: dict) -> dict[str, str]:
    return {k: _fmt(row.get(k, math.nan), k in INTEGER_COLUMNS) for k in COLUMNS}


def _fmt(v, integer: bool = False) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return str(int(v)) if integer and v.is_integer() else repr(v)
    return str(v)


class Progress:
    """A tqdm bar on a terminal; plain log lines every ``every`` seconds otherwise (short CI logs)."""

    def __init__(self, total: int, start: int, every: float, label: str):
        self.total, self.every, self.label = total, every, label
        self.tty = sys.stderr.isatty()
        self._last = time.monotonic()
        self._recent = math.nan
        self._bar = None
        if self.tty:
            from tqdm import tqdm
            self._bar = tqdm(total=total, initial=start, unit="step", unit_scale=True, desc=label,
                             dynamic_ncols=True)

    def update(self, row: dict[str, float], steps: int) -> None:
        if math.isfinite(row.get("return_mean", math.nan)):
            self._recent = row["return_mean"]
        if self._bar is not None:
            self._bar.update(steps)
            self._bar.set_postfix(ret=f"{self._recent:.1f}", sps=f"{row['steps_per_s']:.0f}", refresh=False)
            return
        now = time.monotonic()
        if now - self._last >= self.every or row["env_steps"] >= self.total:
            self._last = now
            self.line(row)

    def say(self, msg: str) -> None:
        if self._bar is not None:
            self._bar.write(msg)
        else:
            print(msg, flush=True)

    def line(self, row: dict[str, float]) -> None:
        remaining = max(self.total - row["env_steps"], 0)
        eta = remaining / row["steps_per_s"] if row.get("steps_per_s") else math.nan
        msg = (f"[{self.label}] it {int(row['iteration'])}  steps {int(row['env_steps'])}/{self.total}  "
               f"return {self._recent:.1f}  {row['steps_per_s']:.0f} steps/s  eta {eta:.0f}s")
        self.say(msg)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
