"""The runner: sample -> update -> log -> checkpoint, and nothing else.

The update rule is ``robopg.algorithms``; the sampler ``robopg.sampler`` (or ``robopg.distributed``); this
module owns the loop, the best policy, checkpoints and resume, and signals.
"""

from __future__ import annotations

import logging
import math
import pickle
import random
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import checkpoint, faults
from .algorithms import make_algorithm
from .config import Config
from .envs import make_vector_env
from .errors import CheckpointError, EnvFailure, NonFiniteError, StorageError, TrainingInterrupted
from .focus import make_focus
from .metrics import MetricsLog, Progress
from .physics_estimate import make_physics_fit
from .policies import make_policy
from .randomization import make_randomizer
from .sampler import Rollout, Sampler
from .validation import make_validation

# Called after each iteration's row is logged, before the best policy and the checkpoint are recorded:
# callback(trainer, rollout, row). A callback may read anything, add columns to the row (best-tracking reads
# row["return_mean"]), stop the run by raising, or ask for a clean stop with trainer.request_stop().
Callback = Callable[["Trainer", Rollout, dict], None]


@dataclass
class Run:
    """What ``robopg.train`` returns."""

    run_dir: Path
    config: Config
    iterations: int
    env_steps: int
    final_return: float  # mean return of the episodes finished in the last iteration that had any

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "metrics.csv"


class Trainer:
    def __init__(self, config: Config, run_dir: Path, callbacks: Sequence[Callback] = ()):
        config.validate()
        self.config = c = config
        self.run_dir = Path(run_dir)
        self.callbacks = list(callbacks)
        torch.set_num_threads(c.torch_threads)
        _seed_everything(c.seed)
        self._log_handler = _run_log(self.run_dir)  # MuJoCo's warnings, from the envs' construction on
        # With Ray workers the envs live in the workers; one local env gives the spaces for the policy.
        self.venv = make_vector_env(c.env_id, 1 if c.workers else c.resolved_num_envs(), c.vectorization,
                                    c.env_backend, c.env_threads, c.env_kwargs, c.flatten_observations,
                                    c.on_env_error, c.obs_history)
        self.policy = make_policy(c, self.venv.single_observation_space, self.venv.single_action_space)
        self.algorithm = make_algorithm(c, self.policy, c.resolved_num_envs())
        self.say = print  # the progress display's, while train() runs
        randomizer = make_randomizer(c, c.resolved_num_envs(), c.seed, venv=self.venv)  # checked here, workers too
        if c.workers:
            from .distributed import RaySampler
            self.sampler = RaySampler(c, self.policy, say=lambda msg: self.say(msg))
        else:
            self.sampler = Sampler(self.venv, self.policy, c.batch_size, c.resolved_batch_mode(), c.seed, c.env_id,
                                   max_env_errors=c.max_env_errors,
                                   randomizer=randomizer, context_obs=c.policy_obs == "privileged")
        self.focus = make_focus(c)  # --randomize-focus: the cells' scores live here, never in a worker
        self.physics_fit = make_physics_fit(c, self.policy)  # --policy-obs estimated
        self.validation = make_validation(c)  # --eval-every: held-out episodes, checkpoints/best-eval.pt
        self.iteration = 0
        self.env_steps = 0
        self.best_return = -math.inf
        self._unsaved_best: dict | None = None  # best.pt's payload, until the next checkpoint writes it
        self.last_return = math.nan
        self.wall_s = 0.0
        self.env_errors = 0  # episodes dropped because their env failed, over the whole run
        self._stop_signal: int | None = None

    # --- the loop ------------------------------------------------------------------------------------
    def train(self) -> Run:
        c = self.config
        log, progress = self._open_log()
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        wall_before, session_start = self.wall_s, time.monotonic()
        try:
            while self.env_steps < c.steps:
                t0 = time.monotonic()
                rollout, stats = self.step()
                self.wall_s = wall_before + time.monotonic() - session_start
                row = self._row(rollout, stats, time.monotonic() - t0)
                self._validate(row)
                log.write(row)
                progress.update(row, rollout.num_steps)
                for callback in self.callbacks:
                    callback(self, rollout, row)
                self._record_best(row)
                if self.iteration % c.checkpoint_every == 0:
                    self.save_checkpoint()
                if self._stop_signal is not None:
                    self.save_checkpoint()
                    raise TrainingInterrupted(self.run_dir, self.iteration)
                faults.point("iteration.end")
            self.save_checkpoint()
        except EnvFailure as e:
            raise EnvFailure(f"{e}; the last checkpoint is kept: fix the env, then robopg resume "
                             f"{self.run_dir}") from e
        except StorageError as e:
            raise StorageError(e.errno, f"{e.strerror}; training stopped, the previous complete checkpoint is "
                                        f"kept") from e
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
            self.say = print
            progress.close()
            log.close()
            self.close()
        from .plotting import plot_learning_curve
        try:
            plot_learning_curve(self.run_dir / "metrics.csv", self.run_dir / "learning_curve.png", c.env_id)
        except OSError as e:  # the run is complete and checkpointed: a figure that cannot be written is no failure
            self.say(f"learning_curve.png not written: {e}")
        return Run(self.run_dir, c, self.iteration, self.env_steps, self.last_return)

    def step(self) -> tuple[Rollout, dict[str, float]]:
        """One iteration's sampling and update, without logging or checkpoints: the rollout and the update's
        statistics."""
        self.sampler.advance(self.env_steps, None if self.focus is None else self.focus.probabilities())
        rollout = self.sampler.collect()
        self._count_env_errors(rollout)
        if self.focus is not None:
            self.focus.update(rollout.episode_factors, rollout.episode_returns)
        if self.config.gamma_schedule:
            self.algorithm.critic.discount(self.config.gamma_at(self.env_steps))
        if self.config.balance_from:
            self.algorithm.critic.balance(self.env_steps >= self.config.balance_from)
        stats = self.algorithm.update(rollout, self.iteration + 1, self.env_steps / self.config.steps)
        if self.physics_fit is not None:  # after the update: the batch is sampled and learned from with one e
            stats.update(self.physics_fit.fit(rollout, self.iteration + 1))
        self._check_finite()
        self.iteration += 1
        self.env_steps += rollout.num_steps
        cap = self.config.log_std_cap_at(self.env_steps)
        if cap is not None:  # for the next batch's samples
            self.policy.cap_log_std(cap)
        return rollout, stats

    def _count_env_errors(self, rollout: Rollout) -> None:
        self.env_errors += rollout.env_errors
        if self.env_errors > self.config.max_env_errors:
            raise EnvFailure(f"{self.env_errors} episodes dropped because their env failed, more than "
                             f"--max-env-errors {self.config.max_env_errors}")

    def request_stop(self) -> None:
        """Stop after the current iteration, as Ctrl-C does: checkpoint, then ``TrainingInterrupted``."""
        self._stop_signal = signal.SIGINT

    def close(self) -> None:
        """Release the envs, and the Ray workers (and a Ray instance started for the run)."""
        self.sampler.close()
        if self.config.workers:
            self.venv.close()  # the one local env that gave the policy its spaces
        if self._log_handler is not None:
            logging.getLogger("robopg").removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None

    def _open_log(self) -> tuple[MetricsLog, Progress]:
        c = self.config
        resuming = self.iteration > 0
        log = MetricsLog(self.run_dir, c.tensorboard, keep_until=self.iteration if resuming else None)
        progress = Progress(c.steps, self.env_steps, c.log_every, c.env_id)
        self.say = progress.say
        where = f" on {c.workers} Ray workers" if c.workers else ""
        progress.say(f"{'resuming' if resuming else 'training'} {c.env_id} ({c.env_backend} backend, "
                     f"{c.resolved_num_envs()} envs{where}, {c.estimator}+{c.baseline}) into {self.run_dir}")
        return log, progress

    def _row(self, rollout: Rollout, stats: dict, iter_s: float) -> dict[str, float]:
        rets, lens = rollout.episode_returns, rollout.episode_lengths
        if rets:
            self.last_return = float(np.mean(rets))
        return {"iteration": self.iteration, "env_steps": self.env_steps, "wall_s": self.wall_s,
                "steps_per_s": rollout.num_steps / max(iter_s, 1e-9), "episodes": len(rets),
                "return_mean": float(np.mean(rets)) if rets else math.nan,
                "return_std": float(np.std(rets)) if rets else math.nan,
                "return_min": float(np.min(rets)) if rets else math.nan,
                "return_max": float(np.max(rets)) if rets else math.nan,
                "length_mean": float(np.mean(lens)) if lens else math.nan,
                "value_loss": math.nan, "explained_variance": math.nan, "env_errors": rollout.env_errors,
                **self.sampler.iteration_stats(), **({} if self.focus is None else self.focus.stats()), **stats}

    def _record_best(self, row: dict) -> None:
        if math.isfinite(row["return_mean"]) and row["return_mean"] > self.best_return:
            self.best_return = row["return_mean"]
            # Kept in memory and written with the next checkpoint: early in training the return improves
            # nearly every iteration, and a synced file write each time (1-5 ms on this project's machines,
            # far more on network file systems) would be paid on the training loop's hot path.
            self._unsaved_best = {"policy": {k: v.clone() for k, v in self.policy.state_dict().items()},
                                  "iteration": self.iteration, "env_steps": self.env_steps,
                                  "return_mean": self.best_return}

    def _validate(self, row: dict) -> None:
        """--eval-every: the held-out evaluation when one is due, its scores into ``row``; best-eval.pt written at
        once (evaluations are rare, and the file is then whole whenever the run stops)."""
        if self.validation is None or not self.validation.due(self.env_steps):
            return
        row.update(self.validation.evaluate(self.policy, self.env_steps))
        payload = {"config": self.config.to_dict(), "policy": self.policy.state_dict(), "iteration": self.iteration,
                   "env_steps": self.env_steps, "eval_score": row["eval_score"]}
        if self.config.eval_keep:
            checkpoint.save(self.run_dir / "checkpoints" / f"eval-{self.env_steps}.pt", payload)
        if self.validation.improved(row["eval_score"]):
            checkpoint.save(self.run_dir / "checkpoints" / "best-eval.pt", payload)

    def _check_finite(self) -> None:
        for module in self.algorithm.modules():
            for name, p in module.named_parameters():
                if not torch.isfinite(p).all():
                    raise NonFiniteError(f"parameter {name} became non-finite at iteration {self.iteration + 1}")

    def _on_signal(self, signum, frame) -> None:
        if self._stop_signal is not None:  # a second Ctrl-C: stop now, the last checkpoint stays
            raise KeyboardInterrupt
        self._stop_signal = signum

    # --- checkpoints ---------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        # best.pt first: should the process die between the two writes, the resumed run replays the same
        # iterations from the older latest.pt and finds (and writes) the same best again.
        if self._unsaved_best is not None:
            checkpoint.save(self.run_dir / "checkpoints" / "best.pt",
                            {"config": self.config.to_dict(), **self._unsaved_best})
            self._unsaved_best = None
        payload = {
            "config": self.config.to_dict(),
            "policy": self.policy.state_dict(),
            **self.algorithm.state_dict(),
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "best_return": self.best_return,
            "last_return": self.last_return,
            "wall_s": self.wall_s,
            "env_errors": self.env_errors,
            "torch_rng": torch.get_rng_state(),
            "python_rng": pickle.dumps(random.getstate()),
            "numpy_rng": pickle.dumps(np.random.get_state()),
            "sampler": pickle.dumps(self.sampler.state_dict()),
        }
        if self.focus is not None:
            payload["focus"] = self.focus.state_dict()
        if self.physics_fit is not None:
            payload["physics_fit"] = self.physics_fit.state_dict()
        if self.validation is not None:
            payload["validation"] = self.validation.state_dict()
        checkpoint.save(self.run_dir / "checkpoints" / "latest.pt", payload)

    def load_checkpoint(self, data: dict) -> None:
        try:
            self.policy.load_state_dict(data["policy"])
            self.algorithm.load_state_dict(data)
            self.sampler.load_state_dict(pickle.loads(data["sampler"]))
            if self.focus is not None:
                self.focus.load_state_dict(data["focus"])
            if self.physics_fit is not None:
                self.physics_fit.load_state_dict(data["physics_fit"])
            if self.validation is not None and "validation" in data:  # else: a run given --eval-every on resume
                self.validation.load_state_dict(data["validation"])
            torch.set_rng_state(data["torch_rng"])
            random.setstate(pickle.loads(data["python_rng"]))
            np.random.set_state(pickle.loads(data["numpy_rng"]))
        except (KeyError, RuntimeError, ValueError, pickle.UnpicklingError) as e:
            raise CheckpointError(f"checkpoint does not match this run's config: "
                                  f"{type(e).__name__}: {str(e).splitlines()[0][:200]}") from e
        self.iteration = int(data["iteration"])
        self.env_steps = int(data["env_steps"])
        self.best_return = float(data["best_return"])
        self.last_return = float(data["last_return"])
        self.wall_s = float(data["wall_s"])
        self.env_errors = int(data.get("env_errors", 0))


def _run_log(run_dir: Path) -> logging.Handler | None:
    """``<run>/run.log`` for robopg's log messages (MuJoCo's warnings among them), while the trainer lives."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(run_dir / "run.log", delay=True)
    except OSError:
        return None  # no log file is no reason not to train
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.getLogger("robopg").addHandler(handler)
    return handler


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
