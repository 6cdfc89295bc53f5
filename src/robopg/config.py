"""One typed config: it is the CLI, it is saved beside every run, and it reproduces the run.

Every field carries its help text in ``metadata["help"]``; ``robopg.cli`` builds the options from it.
This module imports neither torch nor gymnasium, so ``robopg --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ESTIMATORS = ("reinforce", "rtg", "gae")
BASELINES = ("none", "mean", "value", "optimal")
BATCH_MODES = ("auto", "episodes", "steps")
ACTIVATIONS = ("tanh", "relu", "elu")
LR_SCHEDULES = ("constant", "linear")
VECTORIZATION = ("sync", "async")
ENV_BACKENDS = ("auto", "gymnasium", "native")


class ConfigError(ValueError):
    """A setting that cannot work; the message names the option (as on the command line)."""


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class Config:
    env_id: str = _f("InvertedPendulum-v5", "Gymnasium environment id, e.g. Hopper-v5 or CartPole-v1.",
                     positional=True)
    steps: int = _f(200_000, "Total environment steps to train for (all envs together).")
    seed: int = _f(0, "Seed for torch, numpy and the environments; the same seed gives the same numbers.")
    num_envs: int = _f(8, "Environments stepped side by side in one vector env (with --workers: set to "
                       "workers x envs-per-worker, all of them together).")
    batch_size: int = _f(4096, "Environment steps per policy update (at least; whole-episode batches "
                         "run every episode to its end).")
    batch_mode: str = _f("auto", "'episodes': every episode in a batch runs to its end (unbiased without a "
                         "value function); 'steps': batch_size/num_envs steps per env, episodes cut at the "
                         "batch end bootstrap from V. 'auto': steps with a value baseline, else episodes.",
                         choices=BATCH_MODES)
    estimator: str = _f("gae", "Weights Psi_t of the policy gradient: 'reinforce' (whole-episode return), "
                        "'rtg' (reward-to-go), 'gae' (generalised advantage estimation, needs "
                        "--baseline value).", choices=ESTIMATORS)
    baseline: str = _f("value", "Subtracted from Psi_t: 'none'; 'mean' (leave-one-episode-out batch mean of "
                       "Psi); 'value' (a learned V(s), fit to reward-to-go targets each iteration); 'optimal' "
                       "(a constant per parameter, b_k = E[g_k^2 Psi]/E[g_k^2], Greensmith et al. 2004).",
                       choices=BASELINES)
    gamma: float = _f(0.99, "Discount factor, in [0, 1].")
    lam: float = _f(0.95, "GAE lambda, in [0, 1] (lambda=1 is reward-to-go minus the value baseline).")
    lr: float = _f(3e-4, "Policy learning rate (Adam).")
    lr_schedule: str = _f("constant", "Policy learning-rate schedule over the run.", choices=LR_SCHEDULES)
    value_lr: float = _f(1e-3, "Value-function learning rate (Adam).")
    value_epochs: int = _f(5, "Passes over the batch when fitting the value function each iteration.")
    value_minibatches: int = _f(8, "Minibatches per value-fitting pass.")
    normalize_advantages: bool = _f(True, "Rescale Psi to zero mean and unit variance within each batch (with "
                                    "--baseline optimal: unit variance only; the baseline does the centring).")
    normalize_observations: bool = _f(True, "Running mean/std observation normalisation (saved with the "
                                      "policy).")
    normalize_rewards: bool = _f(False, "Scale rewards by the running std of the discounted return "
                                 "(helps value fitting on robots with large rewards).")
    entropy_coef: float = _f(0.0, "Entropy bonus coefficient.")
    max_grad_norm: float = _f(0.0, "Clip the policy gradient to this global norm (0: no clipping).")
    hidden_sizes: list = _f([64, 64], "Hidden layer sizes of the policy and value networks.")
    activation: str = _f("tanh", "Hidden activation.", choices=ACTIVATIONS)
    init_log_std: float = _f(-0.5, "Initial log standard deviation of the Gaussian policy.")
    vectorization: str = _f("sync", "Gymnasium vector env: 'sync' (one process) or 'async' (subprocesses).",
                            choices=VECTORIZATION)
    env_backend: str = _f("auto", "Simulator backend: 'gymnasium' vector envs, or 'native' (robopg's batched MuJoCo "
                          "robots, same tasks as Gymnasium v5). 'auto' picks native where it supports the id.",
                          choices=ENV_BACKENDS)
    env_threads: int = _f(0, "Threads for the native backend's batched MuJoCo stepping (0: the cores available).")
    workers: int = _f(0, "Ray rollout workers sampling in parallel, each with its own vector env and a copy of "
                      "the policy (0: sample in this process). Needs: pip install -e '.[ray]'.")
    envs_per_worker: int = _f(8, "Environments in each Ray worker's vector env (with --workers).")
    ray_address: str = _f("", "Ray cluster to join, e.g. ray://head:10001 or auto (default: start a local Ray "
                          "instance for the run).")
    worker_timeout: float = _f(300.0, "Seconds a Ray worker may take to sample its share of one batch; one that "
                               "takes longer is treated as dead: killed, restarted, its share sampled again.")
    torch_threads: int = _f(1, "Torch intra-op threads (1 is fastest for small networks and reproducible).")
    checkpoint_every: int = _f(20, "Write checkpoints/latest.pt every this many iterations (and at the end "
                               "and on interruption).")
    log_every: float = _f(10.0, "Seconds between plain log lines when the output is not a terminal.")
    log_grad_stats: int = _f(0, "Every this many iterations, record the policy gradient's variance and "
                             "signal-to-noise ratio from within-batch splits (0: off).")
    tensorboard: bool = _f(True, "Write TensorBoard event files into the run directory.")
    run_dir: str = _f("", "Where the run is written (default runs/<env>/<name>).")
    name: str = _f("", "Run name (default <estimator>-<baseline>-s<seed>-<time>).")

    # ----------------------------------------------------------------------------------------------
    def resolved_batch_mode(self) -> str:
        if self.batch_mode != "auto":
            return self.batch_mode
        return "steps" if self.baseline == "value" else "episodes"

    def validate(self) -> Config:
        """Raise ConfigError naming the first option that cannot work; return self."""

        def bad(option: str, why: str) -> ConfigError:
            return ConfigError(f"--{option.replace('_', '-')}: {why}")

        for name, choices in (("estimator", ESTIMATORS), ("baseline", BASELINES), ("batch_mode", BATCH_MODES),
                              ("activation", ACTIVATIONS), ("lr_schedule", LR_SCHEDULES),
                              ("vectorization", VECTORIZATION), ("env_backend", ENV_BACKENDS)):
            if getattr(self, name) not in choices:
                raise bad(name, f"{getattr(self, name)!r} is not one of {', '.join(choices)}")
        for name in ("gamma", "lam"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                raise bad(name, f"must be in [0, 1], got {v}")
        for name in ("steps", "num_envs", "batch_size", "value_epochs", "value_minibatches", "torch_threads",
                     "checkpoint_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise bad(name, f"must be a positive integer, got {v}")
        for name in ("lr", "value_lr", "log_every"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise bad(name, f"must be a positive number, got {v}")
        if not isinstance(self.log_grad_stats, int) or self.log_grad_stats < 0:
            raise bad("log_grad_stats", f"must be a non-negative integer, got {self.log_grad_stats}")
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 0:
            raise bad("workers", f"must be a non-negative integer, got {self.workers}")
        if not isinstance(self.envs_per_worker, int) or isinstance(self.envs_per_worker, bool) \
                or self.envs_per_worker < 1:
            raise bad("envs_per_worker", f"must be a positive integer, got {self.envs_per_worker}")
        if not (isinstance(self.worker_timeout, (int, float)) and math.isfinite(self.worker_timeout)
                and self.worker_timeout > 0):
            raise bad("worker_timeout", f"must be a positive number of seconds, got {self.worker_timeout}")
        if not isinstance(self.ray_address, str):
            raise bad("ray_address", f"must be a string, got {self.ray_address!r}")
        if self.ray_address and self.workers == 0:
            raise bad("ray_address", "sampling runs on a Ray cluster only with --workers N (N > 0)")
        if self.workers > 0:
            # The batch is laid out [T, workers * envs_per_worker], exactly as one vector env of that size.
            self.num_envs = self.workers * self.envs_per_worker
            if self.batch_size < self.num_envs:
                raise bad("batch_size", f"{self.batch_size} is smaller than --workers {self.workers} x "
                          f"--envs-per-worker {self.envs_per_worker} = {self.num_envs} envs: every env must "
                          "contribute at least one step")
        if not isinstance(self.env_threads, int) or self.env_threads < 0:
            raise bad("env_threads", f"must be a non-negative integer, got {self.env_threads}")
        for name in ("entropy_coef", "max_grad_norm"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise bad(name, f"must be a non-negative number, got {v}")
        if not math.isfinite(self.init_log_std):
            raise bad("init_log_std", f"must be finite, got {self.init_log_std}")
        if not self.hidden_sizes or any(not isinstance(h, int) or h <= 0 for h in self.hidden_sizes):
            raise bad("hidden_sizes", f"must be positive integers, got {self.hidden_sizes}")
        if self.batch_size < self.num_envs:
            raise bad("batch_size", f"{self.batch_size} is smaller than --num-envs {self.num_envs}: every env "
                      "must contribute at least one step")
        if self.steps < self.batch_size:
            raise bad("steps", f"{self.steps} is smaller than one batch (--batch-size {self.batch_size})")
        if self.estimator == "gae" and self.baseline != "value":
            raise bad("estimator", "gae needs a value function: use --baseline value (or --estimator rtg)")
        mode = self.resolved_batch_mode()
        if mode == "steps" and self.baseline != "value":
            raise bad("batch_mode", "'steps' cuts episodes at the batch end, which needs a value function to "
                      "bootstrap from: use --baseline value or --batch-mode episodes")
        if self.estimator == "reinforce" and mode != "episodes":
            raise bad("estimator", "reinforce weights every step by its whole episode's return, so it needs "
                      "whole episodes: use --batch-mode episodes")
        return self

    # ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | Path) -> Config:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read config {path}: {e}") from e
        if not isinstance(data, dict):
            raise ConfigError(f"{path} does not hold a config mapping")
        return cls.from_dict(data)


def fields() -> list[dataclasses.Field]:
    return list(dataclasses.fields(Config))


def parse_estimator_spec(spec: str) -> tuple[str, str]:
    """'rtg+value' -> ('rtg', 'value'); a bare estimator takes no baseline, except gae (value).

    The short form used by ``robopg sweep --estimators`` and ``robopg variance --estimators``.
    """
    parts = spec.strip().split("+")
    if len(parts) > 2 or not parts[0]:
        raise ConfigError(f"--estimators: cannot read {spec!r}; write ESTIMATOR or ESTIMATOR+BASELINE, "
                          f"e.g. rtg+value")
    estimator = parts[0]
    baseline = parts[1] if len(parts) == 2 else ("value" if estimator == "gae" else "none")
    if estimator not in ESTIMATORS:
        raise ConfigError(f"--estimators: unknown estimator {estimator!r} in {spec!r} "
                          f"(one of {', '.join(ESTIMATORS)})")
    if baseline not in BASELINES:
        raise ConfigError(f"--estimators: unknown baseline {baseline!r} in {spec!r} (one of {', '.join(BASELINES)})")
    return estimator, baseline
