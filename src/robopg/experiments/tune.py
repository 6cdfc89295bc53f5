"""``robopg tune``: an Optuna study of a robot's settings, each trial a normal run directory trained by its own
``robopg train`` process, at most ``jobs`` at once.

The tune folder (default ``runs/<env>/tune``) holds ``study.db`` (the Optuna study in SQLite: ``optuna-dashboard
sqlite:///<folder>/study.db`` opens it), ``trials/<number>/`` (one run directory per trial), ``logs/`` and, when
the study stops, ``best.yaml`` (``robopg train --config best.yaml``), ``summary.md``, ``summary.json`` and
``importance.png``. Only this process talks to the database; the trials only write their run directories.

- Sampler: TPE (Optuna's default Bayesian sampler; its first trials are random). Pruner: the median rule on the
  learning curve: every 5% of the step budget a trial reports its mean training return over that stretch, and
  one below the median of earlier trials at the same point (after the first quarter) is stopped.
- Objective: the mean training return over the last 10% of the steps (the end of the learning curve, averaged
  over many episodes, so one lucky batch does not decide).
- Trial 0 runs the preset's values of the searched settings (those inside the space), the rest sampled, so the
  study measures the preset on its own terms; trial n trains with seed ``--seed + n``. Re-check a result on
  other seeds, never these.
- ``--resume`` continues the study: trials that were running when it stopped (Ctrl-C, a crash, a killed
  machine) are marked failed, never counted as results, and new trials run until ``--trials`` have finished.
"""

from __future__ import annotations

import datetime as _dt
import math
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import codec
from ..config import Config, ConfigError, names
from ..presets import make_config
from . import children
from .spaces import Param, default_space, fit_to, load_space, space_from_dict, space_to_dict, starting_point

STUDY_FILE = "study.db"
STUDY_NAME = "robopg-tune"
LOCK = "tune.lock"
FORMAT = "robopg-tune"
VERSION = 1
REPORTS = 20            # intermediate values per trial: the pruner compares trials at 5%, 10%, ... of the budget
WARMUP_REPORTS = 5      # none is pruned before a quarter of its budget
FINAL_FRACTION = 0.1    # the objective: mean training return over the last 10% of the steps
MAX_FAILS_IN_A_ROW = 3
PER_TRIAL_FIELDS = names("env", "run")


class TuneError(ConfigError):
    """A study that cannot be started or continued as asked (one line, exit code 2)."""


def optuna_module():
    try:
        import optuna
    except ImportError:
        raise TuneError("robopg tune needs Optuna: pip install -e '.[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@dataclass
class Plan:
    env_id: str
    options: dict[str, Any]        # train options shared by every trial (steps always among them)
    space: dict[str, Param]
    seed: int                      # trial n trains with seed + n
    pruner: str                    # "median" or "none"
    trials: int                    # trials to finish (complete or pruned); failed ones do not count
    command: str = ""

    def base(self) -> Config:
        return make_config(self.env_id, **self.options)

    def trial_values(self, params: dict[str, Any], number: int, run_dir: Path) -> dict[str, Any]:
        return {**self.options, **params, "seed": self.seed + number, "run_dir": str(run_dir)}

    def attrs(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "env_id": self.env_id, "options": self.options,
                "space": space_to_dict(self.space), "seed": self.seed, "pruner": self.pruner, "trials": self.trials,
                "objective": f"mean training return over the last {FINAL_FRACTION:.0%} of the steps",
                "command": self.command, "created": _dt.datetime.now().isoformat(timespec="seconds")}

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any], where: Path) -> Plan:
        if attrs.get("format") != FORMAT:
            raise TuneError(f"{where} is not a robopg tune study")
        if attrs.get("version") != VERSION:
            raise TuneError(f"{where} has version {attrs.get('version')}; this robopg reads {VERSION}")
        try:
            return cls(attrs["env_id"], dict(attrs["options"]), space_from_dict(attrs["space"]), int(attrs["seed"]),
                       attrs["pruner"], int(attrs["trials"]), attrs.get("command", ""))
        except (KeyError, TypeError, ValueError) as e:
            raise TuneError(f"{where} is incomplete ({type(e).__name__}: {e})") from None


def plan(env_id: str, options: dict[str, Any], trials: int, space_file: str | None = None, seed: int = 0,
         pruner: str = "median", command: str = "") -> Plan:
    """Check everything before anything is written: the env, the options, the space, the trial count."""
    from ..envs import check_env_id, check_env_kwargs

    if trials < 1:
        raise TuneError(f"--trials: must be at least 1, got {trials}")
    check_env_id(env_id)
    options = {k: v for k, v in options.items() if v is not None and k not in PER_TRIAL_FIELDS}
    base = make_config(env_id, **options)
    check_env_kwargs(env_id, base.env_kwargs)
    options["steps"] = base.steps
    space = load_space(space_file, base) if space_file else default_space(base)
    if not any(p.kind != "fixed" for p in space.values()):
        raise TuneError("--space: nothing left to search")
    return Plan(env_id, options, fit_to(space, base), seed, pruner, trials, command)


def default_path(env_id: str) -> Path:
    return Path("runs") / env_id / "tune"


# --- the study ----------------------------------------------------------------------------------------------
def _storage(path: Path) -> str:
    return f"sqlite:///{(path / STUDY_FILE).resolve()}"


def create_study(path: Path, the_plan: Plan):
    """A new study in ``path`` (which must not hold one); nothing is left behind if it cannot be made."""
    optuna = optuna_module()
    if (path / STUDY_FILE).exists():
        raise TuneError(f"{path} already holds a study: continue it with --resume, or choose another --tune-dir")
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    try:
        study = optuna.create_study(storage=_storage(path), study_name=STUDY_NAME, direction="maximize")
        for key, value in the_plan.attrs().items():
            study.set_user_attr(key, value)
        # Trial 0 runs the preset's (or the options') values, where the space holds them: a baseline in the study.
        study.enqueue_trial(starting_point(the_plan.space, the_plan.base()))
    except BaseException:
        (path / STUDY_FILE).unlink(missing_ok=True)
        if created:
            path.rmdir()
        raise
    return study


def load_study(path: Path) -> tuple[Any, Plan]:
    """The study in ``path`` and its plan; TuneError if there is none, or it is not a robopg tune study."""
    optuna = optuna_module()
    db = path / STUDY_FILE
    if not db.is_file():
        raise TuneError(f"--resume: {path} holds no study ({STUDY_FILE}); start one without --resume")
    try:
        study = optuna.load_study(study_name=STUDY_NAME, storage=_storage(path))
    except KeyError:
        raise TuneError(f"{db} is not a robopg tune study (it has no study named {STUDY_NAME})") from None
    except Exception as e:  # not SQLite, or not Optuna's tables: whatever the database library says, in one line
        raise TuneError(f"{db} cannot be opened as an Optuna study: {' '.join(str(e).split())[:200]}") from None
    return study, Plan.from_attrs(study.user_attrs, db)


def resume_plan(stored: Plan, env_id: str, options: dict[str, Any], trials: int | None,
                space_file: str | None, where: Path) -> Plan:
    """The stored plan, with a new trial count; anything else given must match what the study was started with."""
    if env_id != stored.env_id:
        raise TuneError(f"{where / STUDY_FILE} is a study of {stored.env_id}, not {env_id}")
    if space_file:
        raise TuneError("--space: a study keeps the space it was started with; start a new study to change it")
    given = {k: v for k, v in options.items() if v is not None and k not in PER_TRIAL_FIELDS}
    changed = [k for k, v in given.items() if stored.options.get(k, getattr(stored.base(), k)) != v]
    if changed:
        raise TuneError(f"{codec.option(changed[0])}: the study was started with "
                        f"{stored.options.get(changed[0], getattr(stored.base(), changed[0]))!r}; its trials must "
                        "share their options (start a new study to change them)")
    if trials is not None and trials < 1:
        raise TuneError(f"--trials: must be at least 1, got {trials}")
    stored.trials = trials if trials is not None else stored.trials
    return stored


def sampler_and_pruner(study, the_plan: Plan, jobs: int):
    """TPE, seeded anew on every start (the same seed would replay its first random draws after a resume), and
    the median pruner on the learning curve (or none)."""
    optuna = optuna_module()
    startup = min(10, max(4, the_plan.trials // 3))
    seed = the_plan.seed * 1_000_003 + len(study.trials)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=jobs > 1)
    if the_plan.pruner == "none":
        return sampler, optuna.pruners.NopPruner()
    return sampler, optuna.pruners.MedianPruner(n_startup_trials=max(3, jobs), n_warmup_steps=WARMUP_REPORTS)


# --- the learning curve -------------------------------------------------------------------------------------
def read_curve(run_dir: Path) -> list[tuple[float, float]]:
    """(env steps, mean training return) per iteration of a run so far; rows without episodes left out."""
    from ..metrics import read_csv

    try:
        rows = read_csv(run_dir / "metrics.csv")
    except (OSError, ValueError, KeyError):
        return []  # not written yet, or a row half-written this instant
    return [(r["env_steps"], r["return_mean"]) for r in rows
            if math.isfinite(r.get("env_steps", math.nan)) and math.isfinite(r.get("return_mean", math.nan))]


def report_value(curve: list[tuple[float, float]], budget: int, k: int) -> float | None:
    """The k-th of REPORTS intermediate values: the mean return over the k-th stretch of the budget (or the last
    return before it, if no episode ended inside it)."""
    lo, hi = budget * (k - 1) / REPORTS, budget * k / REPORTS
    inside = [r for s, r in curve if lo < s <= hi]
    before = [r for s, r in curve if s <= hi]
    if inside:
        return sum(inside) / len(inside)
    return before[-1] if before else None


def objective(curve: list[tuple[float, float]]) -> float | None:
    """The mean training return over the last FINAL_FRACTION of the steps the run took (at least its last row)."""
    if not curve:
        return None
    end = curve[-1][0]
    tail = [r for s, r in curve if s > end * (1 - FINAL_FRACTION)] or [curve[-1][1]]
    return sum(tail) / len(tail)


# --- running ------------------------------------------------------------------------------------------------
@dataclass
class _Job:
    trial: Any               # optuna.trial.Trial
    run_dir: Path
    log: Path
    proc: subprocess.Popen
    started: float
    reported: int = 0
    pruned: bool = False
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class TuneResult:
    path: Path
    finished: int = 0
    failed: int = 0
    interrupted: bool = False
    error: str = ""
    files: list[Path] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else 1 if self.error else 0


def _finished(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _start(study, the_plan: Plan, path: Path, say: Callable[[str], None]) -> _Job | None:
    from optuna.trial import TrialState


    trial = study.ask()
    params = {name: p.suggest(name, trial) for name, p in the_plan.space.items()}
    run_dir = path / "trials" / f"{trial.number:04d}"
    values = the_plan.trial_values(params, trial.number, run_dir)
    try:
        make_config(the_plan.env_id, **values).validate()
    except ConfigError as e:
        trial.set_user_attr("error", str(e))
        study.tell(trial, state=TrialState.FAIL)
        say(f"trial {trial.number}: cannot run ({e})")
        return None
    trial.set_user_attr("run_dir", str(run_dir.relative_to(path)))
    trial.set_user_attr("seed", values["seed"])
    log = path / "logs" / f"{trial.number:04d}.log"
    cmd = [sys.executable, "-m", "robopg.cli", "train", the_plan.env_id, *codec.to_argv(values), "--overwrite"]
    with open(log, "a") as f:
        f.write(f"=== {_dt.datetime.now().isoformat(timespec='seconds')}  {' '.join(cmd)}\n")
        # Its own session: a Ctrl-C reaches only this process, which passes on one SIGTERM (see run()).
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=children.child_env(),
                                start_new_session=True)
    shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={codec.yaml_text(v)}"
                      for k, v in params.items())
    say(f"trial {trial.number}: started (seed {values['seed']}; {shown})")
    return _Job(trial, run_dir, log, proc, time.monotonic(), values=values)


def _watch(job: _Job, budget: int, say: Callable[[str], None]) -> None:
    """Report the learning curve's new intermediate values; stop the trial if the pruner says so."""
    if job.pruned:
        return
    curve = read_curve(job.run_dir)
    while curve and job.reported < REPORTS and curve[-1][0] >= budget * (job.reported + 1) / REPORTS:
        job.reported += 1
        value = report_value(curve, budget, job.reported)
        if value is None:
            continue
        job.trial.report(value, job.reported)
        if job.trial.should_prune():
            job.pruned = True
            job.proc.send_signal(signal.SIGTERM)  # it finishes its iteration and writes its checkpoint
            say(f"trial {job.trial.number}: pruned at {job.reported / REPORTS:.0%} of its steps (return {value:.1f})")
            return


def _finish(study, job: _Job, stopping: bool, say: Callable[[str], None]) -> str:
    """Tell the study how the trial ended: 'complete', 'pruned', 'interrupted' or 'failed'."""
    from optuna.trial import TrialState


    rc, secs = job.proc.returncode, time.monotonic() - job.started
    job.trial.set_user_attr("wall_s", round(secs, 1))
    name = f"trial {job.trial.number}"
    if job.pruned:
        study.tell(job.trial, state=TrialState.PRUNED)
        return "pruned"
    value = objective(read_curve(job.run_dir)) if rc == 0 else None
    if rc == 0 and value is not None:
        study.tell(job.trial, value)
        say(f"{name}: finished in {secs:.0f} s, return {value:.1f}")
        return "complete"
    if stopping and rc in (130, -signal.SIGTERM, -signal.SIGINT):
        job.trial.set_user_attr("interrupted", True)
        study.tell(job.trial, state=TrialState.FAIL)
        say(f"{name}: interrupted; marked failed (it does not count)")
        return "interrupted"
    why = "no episode ended in its last steps" if rc == 0 else \
        f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}: {children.last_error(job.log)}"
    job.trial.set_user_attr("error", why)
    study.tell(job.trial, state=TrialState.FAIL)
    say(f"{name}: FAILED ({why}); log: {job.log}")
    return "failed"


def fail_leftovers(study, path: Path, say: Callable[[str], None]) -> list[int]:
    """Trials a stopped or crashed tune left running: failed (never results), after checking that no process of
    theirs still trains. Returns their numbers."""
    from optuna.trial import TrialState

    children.check_lock(path / LOCK, "tune", TuneError)
    stale = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]  # WAITING: enqueued
    for number in stale:
        study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
    if stale:
        study.set_user_attr("interrupted_trials", sorted(set(study.user_attrs.get("interrupted_trials", []) + stale)))
        say(f"trials {', '.join(map(str, stale))} were running when the study stopped: marked failed (not counted)")
    return stale


def run(study, the_plan: Plan, path: Path, jobs: int = 1, say: Callable[[str], None] | None = None,
        poll_s: float = 0.5) -> TuneResult:
    """Run trials until ``the_plan.trials`` have finished (complete or pruned). SIGINT/SIGTERM stop the study:
    each running trial is sent SIGTERM once and marked failed when it has stopped; nothing new starts."""
    say = say or (lambda msg: print(msg, flush=True))
    if jobs < 1:
        raise TuneError(f"--jobs: must be at least 1, got {jobs}")
    (path / "logs").mkdir(parents=True, exist_ok=True)
    fail_leftovers(study, path, say)
    study.sampler, study.pruner = sampler_and_pruner(study, the_plan, jobs)
    result, running, budget = TuneResult(path), [], the_plan.base().steps
    signals = [0, 0]  # seen, passed on to the trials

    def on_signal(signum, frame):  # only count: the loop below acts on it
        signals[0] += 1

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    say(f"tune {path}: {the_plan.env_id}, {_finished(study)} of {the_plan.trials} trials finished, "
        f"{len(the_plan.space)} settings searched, {budget} steps each, {jobs} at a time")
    try:
        fails_in_a_row = 0
        while running or (not signals[0] and not result.error and _finished(study) + len(running) < the_plan.trials):
            while not signals[0] and fails_in_a_row < MAX_FAILS_IN_A_ROW and len(running) < jobs and \
                    _finished(study) + len(running) < the_plan.trials:
                job = _start(study, the_plan, path, say)
                fails_in_a_row = 0 if job else fails_in_a_row + 1
                running += [job] if job else []
                children.write_lock(path / LOCK, running)
            time.sleep(poll_s)
            _pass_on(signals, running, say)
            for job in list(running):
                _watch(job, budget, say)
                if job.proc.poll() is not None:
                    running.remove(job)
                    children.write_lock(path / LOCK, running)
                    outcome = _finish(study, job, signals[0] > 0, say)
                    fails_in_a_row = fails_in_a_row + 1 if outcome == "failed" else 0
            if fails_in_a_row >= MAX_FAILS_IN_A_ROW and not result.error:
                result.error = f"{fails_in_a_row} trials in a row failed (see {path / 'logs'}); stopping"
                say(result.error)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        for job in running:  # only on an exception in the loop: leave no orphans
            job.proc.terminate()
            job.proc.wait()
        (path / LOCK).unlink(missing_ok=True)
    result.interrupted = signals[0] > 0
    return _close(study, the_plan, result, say)


def _pass_on(signals: list[int], running: list[_Job], say: Callable[[str], None]) -> None:
    if signals[0] <= signals[1]:
        return
    if not signals[1]:
        say(f"stopping: {len(running)} running trials stop and are marked failed; nothing new starts "
            "(again to stop them at once)")
    signals[1] = signals[0]
    for j in running:
        if j.proc.poll() is None:
            j.proc.send_signal(signal.SIGTERM)


def _close(study, the_plan: Plan, result: TuneResult, say: Callable[[str], None]) -> TuneResult:
    from optuna.trial import TrialState

    from .tune_report import write_outputs

    result.finished = _finished(study)
    result.failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    result.files = write_outputs(study, the_plan, result.path, say)
    state = "interrupted" if result.interrupted else "stopped" if result.error else "done"
    say(f"tune {state}: {result.finished}/{the_plan.trials} trials finished, {result.failed} failed")
    if result.interrupted or result.error:
        say(f"  continue with: robopg tune {the_plan.env_id} --resume --tune-dir {result.path}")
    return result


# --- the command ----------------------------------------------------------------------------------------------
DESCRIPTION = (
    "Search a robot's settings with Optuna (TPE sampler, median pruning on the learning curve). Each trial is a "
    "normal run directory trained by its own process, at most --jobs at once; the study lives in study.db in the "
    "tune folder (optuna-dashboard opens it), and --resume continues it after Ctrl-C or a crash. At the end: "
    "best.yaml (robopg train --config best.yaml), summary.md and importance.png.")


def add_arguments(p) -> None:
    p.add_argument("env_id", help="Gymnasium id (or MODULE:ID) of the robot to tune")
    p.add_argument("--trials", type=int, default=None, help="trials to finish, complete or pruned; failed ones do "
                                                            "not count (default: 20; with --resume, the study's)")
    p.add_argument("--jobs", type=int, default=1, help="trials trained at once (default: 1)")
    p.add_argument("--resume", action="store_true", help="continue the study in the tune folder")
    p.add_argument("--tune-dir", help="the tune folder (default: runs/<env>/tune)")
    p.add_argument("--space", metavar="FILE.yaml", help="change the search space (see docs/tuning.md)")
    p.add_argument("--seed", type=int, default=None, help="trial n trains with seed SEED + n (default: 0)")
    p.add_argument("--pruner", choices=("median", "none"), default="median",
                   help="stop trials whose learning curve is below the median of earlier trials (default: median)")
    g = p.add_argument_group("options shared by every trial (as for robopg train; the env's preset fills the rest)")
    codec.add_options(g, skip=PER_TRIAL_FIELDS, help_suffix="or the preset's")


def run_command(args) -> int:
    import shlex

    options = codec.given(args, skip=PER_TRIAL_FIELDS)
    path = Path(args.tune_dir) if args.tune_dir else default_path(args.env_id)
    if args.jobs < 1:
        raise TuneError(f"--jobs: must be at least 1, got {args.jobs}")
    if args.resume:
        study, stored = load_study(path)
        if args.seed is not None and args.seed != stored.seed:
            raise TuneError(f"--seed: the study was started with --seed {stored.seed}")
        the_plan = resume_plan(stored, args.env_id, options, args.trials, args.space, path)
        study.set_user_attr("trials", the_plan.trials)
    else:
        command = "robopg " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        the_plan = plan(args.env_id, options, 20 if args.trials is None else args.trials, args.space,
                        args.seed or 0, args.pruner, command)
        study = create_study(path, the_plan)
    return run(study, the_plan, path, args.jobs).exit_code
