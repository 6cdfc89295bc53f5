"""``robopg sweep``: the cross product of settings × seeds, each a normal run directory trained by its own
``robopg train`` process, at most ``jobs`` at once.

The sweep folder holds ``sweep.json`` (the manifest: environment, arms, seeds, shared options), one run
directory per arm and seed (``<arm>/s<seed>``), ``logs/`` (each run's output) and, while it runs,
``sweep.lock``. Starting a sweep whose folder already has a manifest continues it: finished runs are
skipped, runs with a checkpoint short of the budget are resumed (``robopg resume``), runs that never wrote
a checkpoint start again (``--overwrite``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import codec
from ..config import ConfigError, names, parse_estimator_spec
from ..presets import make_config
from . import children

MANIFEST = "sweep.json"
LOCK = "sweep.lock"
FORMAT = "robopg-sweep"
VERSION = 1
# Set per arm or per run by the sweep itself, so they cannot be shared options.
PER_RUN_FIELDS = names("env", "run", "arm")


class SweepError(ConfigError):
    """A sweep that cannot be started as asked (one line, exit code 2)."""


def arm_label(estimator: str, baseline: str, grid: dict[str, Any] | None = None) -> str:
    """The short form of ``parse_estimator_spec`` ('rtg+value', 'reinforce'), then any grid settings."""
    default_baseline = "value" if estimator == "gae" else "none"
    label = estimator if baseline == default_baseline else f"{estimator}+{baseline}"
    for k, v in (grid or {}).items():
        label += f" {k}={_fmt_value(v)}"
    return label


def _fmt_value(v: Any) -> str:
    if isinstance(v, list):
        return "x".join(map(str, v))
    return str(v)


@dataclass
class Arm:
    label: str
    dir: str                     # folder name inside the sweep
    settings: dict[str, Any]     # the Config fields this arm sets: estimator, baseline, grid keys


@dataclass
class Sweep:
    path: Path
    env_id: str
    seeds: list[int]
    arms: list[Arm]
    options: dict[str, Any]      # Config overrides shared by every run (steps always among them)
    created: str = ""
    command: str = ""

    @property
    def steps(self) -> int:
        return int(self.options["steps"])

    def run_dir(self, arm: Arm, seed: int) -> Path:
        return self.path / arm.dir / f"s{seed}"

    def runs(self) -> list[tuple[Arm, int, Path]]:
        return [(arm, seed, self.run_dir(arm, seed)) for arm in self.arms for seed in self.seeds]

    def config(self, arm: Arm, seed: int):
        return make_config(self.env_id, **{**self.options, **arm.settings, "seed": seed})

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "env_id": self.env_id, "seeds": self.seeds,
                "arms": [{"label": a.label, "dir": a.dir, "settings": a.settings} for a in self.arms],
                "options": self.options, "created": self.created, "command": self.command}

    def same_plan(self, other: Sweep) -> bool:
        a, b = self.to_dict(), other.to_dict()
        return all(a[k] == b[k] for k in ("env_id", "seeds", "arms", "options"))

    def save(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, self.path / MANIFEST)


def is_sweep(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def load(path: str | Path) -> Sweep:
    path = Path(path)
    try:
        data = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise SweepError(f"{path} is not a sweep: it has no {MANIFEST}") from None
    except (OSError, ValueError) as e:
        raise SweepError(f"{path / MANIFEST} cannot be read: {e}") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SweepError(f"{path / MANIFEST} is not a robopg sweep manifest")
    if data.get("version") != VERSION:
        raise SweepError(f"{path / MANIFEST} has version {data.get('version')}; this robopg reads {VERSION}")
    try:
        arms = [Arm(a["label"], a["dir"], dict(a["settings"])) for a in data["arms"]]
        return Sweep(path, data["env_id"], [int(s) for s in data["seeds"]], arms, dict(data["options"]),
                     data.get("created", ""), data.get("command", ""))
    except (KeyError, TypeError, ValueError) as e:
        raise SweepError(f"{path / MANIFEST} is incomplete ({type(e).__name__}: {e})") from e


# --- planning ---------------------------------------------------------------------------------------------
def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["lr=3e-4,1e-3", "gamma=0.98,0.99"]`` -> ``{"lr": [0.0003, 0.001], "gamma": [0.98, 0.99]}``."""
    sweepable = names("setting", "runtime")
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not values.strip():
            raise SweepError(f"--grid: cannot read {item!r}; write OPTION=V1,V2 (e.g. lr=3e-4,1e-3)")
        if key not in sweepable:
            hint = " (use --estimators for estimator/baseline, --seeds for seeds)" if key in PER_RUN_FIELDS else ""
            raise SweepError(f"--grid: {key!r} is not an option that can be swept{hint}")
        if key in grid:
            raise SweepError(f"--grid: {key} is given twice")
        grid[key] = [_parse_value(key, v.strip()) for v in values.split(",")]
    return grid


def _parse_value(key: str, text: str) -> Any:
    try:
        return codec.parse_value(key, text)
    except ConfigError as e:
        raise SweepError(f"--grid: {key}={text!r}: {str(e).partition(': ')[2]}") from None


def plan(env_id: str, estimators: list[str], seeds: list[int], options: dict[str, Any],
         grid: dict[str, list[Any]] | None = None, path: str | Path | None = None,
         command: str = "") -> Sweep:
    """Check every run's config before anything starts (a typo fails the sweep, not one run in ten)."""
    from ..envs import check_env_id

    check_env_id(env_id)
    if not estimators:
        raise SweepError("--estimators: give at least one, e.g. reinforce,rtg,rtg+value")
    if not seeds:
        raise SweepError("--seeds: give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise SweepError(f"--seed-list: seeds repeat: {seeds}")
    options = {k: v for k, v in options.items() if v is not None}
    for key in PER_RUN_FIELDS:
        options.pop(key, None)
    options["steps"] = make_config(env_id, **options).steps
    grid = grid or {}
    combos: list[dict[str, Any]] = [{}]
    for key, values in grid.items():
        combos = [{**c, key: v} for c in combos for v in values]
    arms: list[Arm] = []
    seen: dict[tuple, str] = {}
    for spec in estimators:
        estimator, baseline = parse_estimator_spec(spec)
        for combo in combos:
            label = arm_label(estimator, baseline, {k: v for k, v in combo.items() if len(grid[k]) > 1})
            key = (estimator, baseline, tuple(sorted((k, str(v)) for k, v in combo.items())))
            if key in seen:
                raise SweepError(f"--estimators: {spec!r} repeats the arm {seen[key]!r}")
            seen[key] = label
            arms.append(Arm(label, label.replace(" ", "_"), {"estimator": estimator, "baseline": baseline,
                                                              **combo}))
    sweep = Sweep(Path(path) if path else default_path(env_id), env_id, list(seeds), arms, options,
                  _dt.datetime.now().isoformat(timespec="seconds"), command)
    for arm in arms:
        try:
            sweep.config(arm, seeds[0]).validate()
        except ConfigError as e:
            raise SweepError(f"arm {arm.label}: {e}") from None
    return sweep


def default_path(env_id: str) -> Path:
    return Path("runs") / env_id / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"


# --- the state of each run --------------------------------------------------------------------------------
@dataclass
class RunState:
    action: str        # "train" (new), "restart" (no checkpoint yet), "resume", "done", "broken"
    detail: str = ""
    env_steps: int = 0


def run_state(run_dir: Path, budget: int) -> RunState:
    if not (run_dir / "config.yaml").is_file():
        return RunState("train")
    ckpt = run_dir / "checkpoints" / "latest.pt"
    if not ckpt.is_file():
        return RunState("restart", "it never wrote a checkpoint")
    from ..checkpoint import load
    from ..errors import CheckpointError

    try:
        data = load(ckpt)
    except CheckpointError as e:
        return RunState("broken", f"{e}; delete {run_dir} to run it again")
    steps = int(data.get("env_steps", 0))
    if steps >= min(budget, int(data["config"].get("steps", budget))):
        return RunState("done", env_steps=steps)
    return RunState("resume", f"from {steps} of {budget} steps", steps)


# --- running ----------------------------------------------------------------------------------------------
def command_for(sweep: Sweep, arm: Arm, seed: int, state: RunState) -> list[str]:
    run_dir = sweep.run_dir(arm, seed)
    base = [sys.executable, "-m", "robopg.cli"]
    if state.action == "resume":
        return base + ["resume", str(run_dir)]
    values = {**sweep.options, **arm.settings, "seed": seed, "run_dir": str(run_dir)}
    cmd = base + ["train", sweep.env_id] + codec.to_argv(values)
    return cmd + (["--overwrite"] if state.action == "restart" else [])


@dataclass
class Outcome:
    arm: str
    seed: int
    run_dir: Path
    status: str               # "done" (already), "finished", "failed", "interrupted", "broken"
    detail: str = ""
    log: Path | None = None


@dataclass
class SweepResult:
    sweep: Sweep
    outcomes: list[Outcome] = field(default_factory=list)
    interrupted: bool = False

    def count(self, *statuses: str) -> int:
        return sum(o.status in statuses for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.count("failed", "broken") else 0


@dataclass
class _Job:
    arm: Arm
    seed: int
    run_dir: Path
    state: RunState
    log: Path
    proc: subprocess.Popen | None = None
    started: float = 0.0


def run(sweep: Sweep, jobs: int = 1, say: Callable[[str], None] | None = None,
        command: Callable[[Sweep, Arm, int, RunState], list[str]] = command_for,
        poll_s: float = 0.2) -> SweepResult:
    """Run every unfinished run of ``sweep``; return what happened to each. SIGINT/SIGTERM stop the sweep:
    each running child is sent SIGTERM once (it finishes its iteration and checkpoints); a second signal
    forwards another, which stops the children at once (their previous checkpoint stays)."""
    if jobs < 1:
        raise SweepError(f"--jobs: must be at least 1, got {jobs}")
    say = say or (lambda msg: print(msg, flush=True))
    _prepare(sweep)
    running: list[_Job] = []
    signals_seen = 0
    forwarded = 0  # how many of the signals seen were passed on to the children

    def on_signal(signum, frame):
        # Only count here: printing or spawning inside a signal handler can re-enter I/O that was interrupted.
        nonlocal signals_seen
        signals_seen += 1

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = SweepResult(sweep)
        pending = _jobs_to_run(sweep, result, say)
        total = len(sweep.runs())
        done = result.count("done")
        say(f"sweep {sweep.path}: {sweep.env_id}, {len(sweep.arms)} arms x {len(sweep.seeds)} seeds = {total} runs "
            f"of {sweep.steps} steps; {done} already finished, {len(pending)} to run, {jobs} at a time")
        while pending or running:
            while pending and len(running) < jobs and not signals_seen:
                job = pending.popleft()
                _start(job, command(sweep, job.arm, job.seed, job.state), say)
                running.append(job)
                children.write_lock(sweep.path / LOCK, running)
            time.sleep(poll_s)
            if signals_seen > forwarded:
                if not forwarded:
                    say(f"stopping: {len(running)} running runs write a checkpoint and exit; nothing new "
                        f"starts (again to stop them at once)")
                forwarded = signals_seen
                for j in running:
                    if j.proc.poll() is None:
                        j.proc.send_signal(signal.SIGTERM)
            for job in [j for j in running if j.proc.poll() is not None]:
                running.remove(job)
                children.write_lock(sweep.path / LOCK, running)
                result.outcomes.append(_finish(job, signals_seen > 0, sweep.steps, say))
            if signals_seen and not running:
                break
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _stop(running)  # only on an exception in this loop: do not leave orphans behind
        (sweep.path / LOCK).unlink(missing_ok=True)
    result.interrupted = signals_seen > 0
    for job in pending:
        result.outcomes.append(Outcome(job.arm.label, job.seed, job.run_dir, "interrupted", "not started",
                                       job.log))
    _summary(result, say)
    return result


def _prepare(sweep: Sweep) -> None:
    sweep.path.mkdir(parents=True, exist_ok=True)
    children.check_lock(sweep.path / LOCK, "sweep", SweepError)
    children.write_lock(sweep.path / LOCK, [])
    if not is_sweep(sweep.path):
        sweep.save()
    (sweep.path / "logs").mkdir(exist_ok=True)


def _stop(running: list[_Job]) -> None:
    for job in running:
        if job.proc.poll() is None:
            job.proc.terminate()
            job.proc.wait()


def _jobs_to_run(sweep: Sweep, result: SweepResult, say: Callable[[str], None]) -> deque[_Job]:
    """The runs still to train or resume; those finished or broken go straight into ``result``."""
    pending: deque[_Job] = deque()
    for arm, seed, run_dir in sweep.runs():
        state = run_state(run_dir, sweep.steps)
        log = sweep.path / "logs" / f"{arm.dir}-s{seed}.log"
        if state.action == "done":
            result.outcomes.append(Outcome(arm.label, seed, run_dir, "done", f"{state.env_steps} steps", log))
        elif state.action == "broken":
            result.outcomes.append(Outcome(arm.label, seed, run_dir, "broken", state.detail, log))
            say(f"{arm.label} s{seed}: cannot continue: {state.detail}")
        else:
            pending.append(_Job(arm, seed, run_dir, state, log))
    return pending


def _start(job: _Job, cmd: list[str], say: Callable[[str], None]) -> None:
    with open(job.log, "a") as f:
        f.write(f"=== {_dt.datetime.now().isoformat(timespec='seconds')}  {' '.join(cmd)}\n")
        # A new session: a Ctrl-C in the terminal reaches only the sweep, which forwards one SIGTERM. Reaching
        # the children too would be a second signal, stopping them without their final checkpoint.
        job.proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=children.child_env(),
                                    start_new_session=True)
    job.started = time.monotonic()
    how = {"train": "started", "restart": "started again (it never wrote a checkpoint)",
           "resume": f"resumed {job.state.detail}"}[job.state.action]
    say(f"{job.arm.label} s{job.seed}: {how}")


def _finish(job: _Job, stopping: bool, budget: int, say: Callable[[str], None]) -> Outcome:
    rc = job.proc.returncode
    secs = time.monotonic() - job.started
    name = f"{job.arm.label} s{job.seed}"
    if rc == 0:
        say(f"{name}: finished in {secs:.0f} s")
        return Outcome(job.arm.label, job.seed, job.run_dir, "finished", f"{secs:.0f} s", job.log)
    if stopping and rc in (130, -signal.SIGTERM, -signal.SIGINT):
        state = run_state(job.run_dir, budget)
        where = f"checkpoint at {state.env_steps} steps" if state.action == "resume" else "no checkpoint yet"
        say(f"{name}: stopped ({where})")
        return Outcome(job.arm.label, job.seed, job.run_dir, "interrupted", where, job.log)
    why = f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}"
    err = children.last_error(job.log)
    say(f"{name}: FAILED ({why}){': ' + err if err else ''}; log: {job.log}")
    return Outcome(job.arm.label, job.seed, job.run_dir, "failed", f"{why}{': ' + err if err else ''}", job.log)


def _summary(result: SweepResult, say: Callable[[str], None]) -> None:
    n = len(result.outcomes)
    finished = result.count("done", "finished")
    bad = [o for o in result.outcomes if o.status in ("failed", "broken")]
    parts = [f"{finished}/{n} runs finished"]
    if bad:
        parts.append(f"{len(bad)} failed")
    if result.interrupted:
        parts.append(f"{result.count('interrupted')} interrupted")
    say("sweep: " + ", ".join(parts))
    for o in bad:
        say(f"  failed: {o.arm} s{o.seed} ({o.run_dir}): {o.detail}")
    if result.interrupted or bad:
        say(f"  continue with: robopg sweep {result.sweep.path}")
    else:
        say(f"  compare with:  robopg compare {result.sweep.path}")

