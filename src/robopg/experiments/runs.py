"""Finding runs, reading their metrics, summarising each, and grouping them into arms.

A run's numbers, all from its metrics.csv (one row per iteration; ``return_mean`` is empty in iterations
where no episode finished):

- **final return**: the mean return of the episodes that finished in the last 10% (at least one) of the
  iterations that finished any episode, each iteration weighted by its number of episodes. With the
  presets that is thousands of steps and several to hundreds of episodes.
- **AUC**: the area under the return-vs-steps curve divided by the steps it spans (the step-weighted mean
  return over training; trapezoid rule over the iterations that finished episodes).
- **steps to threshold**: the first ``env_steps`` at which the smoothed curve (trailing mean over
  ``smooth`` iterations that finished episodes) reaches the threshold; None when it never does.

A run is *complete* when its last row reaches its config's ``steps``; otherwise it is *partial* (stopped,
failed, or still running). Partial runs are reported as such, never padded.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import BASELINES, ESTIMATORS, Config, ConfigError, names
from ..metrics import read_csv
from . import sweep as sweep_mod

FINAL_FRACTION = 0.1
# Settings that do not change what a run learns: runs differing only in these belong to the same arm.
NOT_SETTINGS = set(names("run", "runtime"))


class CompareError(ConfigError):
    """Runs that cannot be compared (one line, exit code 2)."""


@dataclass
class RunData:
    path: Path
    config: dict[str, Any]
    status: str                      # "complete", "partial", "no-metrics"
    note: str = ""                   # why it is partial or has no metrics
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0))   # env_steps of iterations with episodes
    wall: np.ndarray = field(default_factory=lambda: np.zeros(0))    # wall_s of the same iterations
    returns: np.ndarray = field(default_factory=lambda: np.zeros(0))  # return_mean of the same iterations
    episodes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    last_steps: int = 0              # env_steps of the last row (with or without episodes)
    last_wall: float = 0.0
    arm: str = ""

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def budget(self) -> int:
        return int(self.config["steps"])

    @property
    def usable(self) -> bool:
        return self.status != "no-metrics"

    def final_return(self) -> float:
        n = len(self.returns)
        k = max(1, math.ceil(FINAL_FRACTION * n))
        r, e = self.returns[n - k:], self.episodes[n - k:]
        if np.all(np.isfinite(e)) and e.sum() > 0:
            return float((r * e).sum() / e.sum())
        return float(r.mean())

    def auc(self) -> float:
        if len(self.steps) < 2 or self.steps[-1] == self.steps[0]:
            return float(self.returns.mean())
        area = np.sum((self.returns[1:] + self.returns[:-1]) / 2 * np.diff(self.steps))
        return float(area / (self.steps[-1] - self.steps[0]))

    def smoothed(self, window: int) -> np.ndarray:
        window = max(1, int(window))
        c = np.cumsum(np.insert(self.returns, 0, 0.0))
        idx = np.arange(1, len(self.returns) + 1)
        lo = np.maximum(idx - window, 0)
        return (c[idx] - c[lo]) / (idx - lo)

    def steps_to(self, threshold: float, window: int) -> int | None:
        hit = np.flatnonzero(self.smoothed(window) >= threshold)
        return int(self.steps[hit[0]]) if hit.size else None


def read_run(path: Path) -> RunData:
    try:
        config = Config.load(path / "config.yaml").to_dict()
    except ConfigError as e:
        # YAML's messages span lines (with a caret drawing); one line is what the CLI promises.
        raise CompareError(f"{path}: {' '.join(str(e).split())[:300]}") from None
    metrics = path / "metrics.csv"
    if not metrics.is_file():
        return RunData(path, config, "no-metrics", "no metrics.csv (the run never finished an iteration)")
    try:
        rows = read_csv(metrics)
    except (OSError, csv.Error, ValueError, UnicodeDecodeError) as e:
        return RunData(path, config, "no-metrics", f"metrics.csv unreadable ({type(e).__name__}: {e})")
    if rows and not {"env_steps", "return_mean", "wall_s"} <= set(rows[0]):
        return RunData(path, config, "no-metrics", "metrics.csv lacks env_steps/return_mean/wall_s columns")
    rows = [r for r in rows if math.isfinite(r.get("env_steps", math.nan))]
    if not rows:
        return RunData(path, config, "no-metrics", "metrics.csv has no rows")
    finished = [r for r in rows if math.isfinite(r["return_mean"])]
    last = rows[-1]
    data = RunData(path, config, "complete",
                   steps=np.array([r["env_steps"] for r in finished]),
                   wall=np.array([r["wall_s"] for r in finished]),
                   returns=np.array([r["return_mean"] for r in finished]),
                   episodes=np.array([r.get("episodes", math.nan) for r in finished]),
                   last_steps=int(last["env_steps"]), last_wall=float(last["wall_s"]))
    if not finished:
        data.status, data.note = "no-metrics", f"no episode finished in {len(rows)} iterations"
    elif data.last_steps < data.budget:
        data.status = "partial"
        data.note = f"stopped at {data.last_steps:,} of {data.budget:,} steps"
    return data


@dataclass
class Expected:
    """A run a sweep's manifest asks for."""
    arm: str
    seed: int
    path: Path


def discover(paths: list[str | Path]) -> tuple[list[RunData], list[Expected], list[Path]]:
    """The runs under ``paths`` (run dirs, sweep dirs, or folders holding runs), the runs their sweeps
    expect, and the sweep folders found."""
    run_dirs: dict[Path, None] = {}
    expected: list[Expected] = []
    sweeps: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise CompareError(f"{p} does not exist")
        if not p.is_dir():
            raise CompareError(f"{p} is not a run folder (give a run directory, a sweep, or a folder of runs)")
        if (p / "config.yaml").is_file():
            run_dirs[p.resolve()] = None
            continue
        found = sorted(c.parent for c in p.rglob("config.yaml"))
        for m in sorted(p.rglob(sweep_mod.MANIFEST)):
            s = sweep_mod.load(m.parent)
            sweeps.append(m.parent)
            expected += [Expected(arm.label, seed, d.resolve()) for arm, seed, d in s.runs()]
        if not found and not expected:
            raise CompareError(f"{p} is not a robopg run: no config.yaml (a run) or {sweep_mod.MANIFEST} "
                               f"(a sweep) in it or below it")
        run_dirs.update((d.resolve(), None) for d in found)
    return [read_run(d) for d in run_dirs], expected, sweeps


def check_one_env(runs: list[RunData]) -> str:
    envs: dict[str, int] = {}
    for r in runs:
        envs[r.config["env_id"]] = envs.get(r.config["env_id"], 0) + 1
    if len(envs) > 1:
        listed = ", ".join(f"{e} ({n} runs)" for e, n in envs.items())
        raise CompareError(f"these runs are from different environments: {listed}; compare one environment "
                           f"at a time")
    return next(iter(envs))


def setting_key(config: dict[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in config.items() if k not in NOT_SETTINGS))


def group(runs: list[RunData], expected: list[Expected]) -> list[tuple[str, list[RunData]]]:
    """Arms in a stable order: a sweep's order where there is one, else estimator, baseline, label. Runs
    with the same settings (all but seed and bookkeeping) form one arm, labelled by ``arm_label`` plus
    the settings that differ between arms."""
    by_key: dict[tuple, list[RunData]] = {}
    for r in runs:
        by_key.setdefault(setting_key(r.config), []).append(r)
    configs = [rs[0].config for rs in by_key.values()]
    varying = sorted(k for k in configs[0] if k not in NOT_SETTINGS | {"estimator", "baseline"}
                     and len({repr(c[k]) for c in configs}) > 1) if configs else []
    in_sweep = {e.path: e.arm for e in expected}
    labelled: dict[str, list[RunData]] = {}
    for rs in by_key.values():
        c = rs[0].config
        label = next((in_sweep[r.path] for r in rs if r.path in in_sweep), None) or \
            sweep_mod.arm_label(c["estimator"], c["baseline"], {k: c[k] for k in varying})
        if label in labelled:  # same label, other settings: only possible across sweeps; keep them apart
            label += " (" + ", ".join(f"{k}={c[k]}" for k in varying) + ")"
        for r in rs:
            r.arm = label
        labelled[label] = sorted(rs, key=lambda r: (r.seed, str(r.path)))
    sweep_order = {}
    for e in expected:
        sweep_order.setdefault(e.arm, len(sweep_order))

    def order(label: str) -> tuple:
        c = labelled[label][0].config
        return (sweep_order.get(label, len(sweep_order)), ESTIMATORS.index(c["estimator"]),
                BASELINES.index(c["baseline"]), label)

    return [(label, labelled[label]) for label in sorted(labelled, key=order)]
