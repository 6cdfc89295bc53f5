"""One typed config: it is the CLI, it is saved beside every run, and it reproduces the run.

This is the only place an option is declared. Every field carries in its metadata its help text, its
choices, and its role (``ROLES``); ``robopg.codec`` turns the fields into command-line options and back.
This module imports neither torch nor gymnasium, so ``robopg --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, StorageError

ESTIMATORS = ("reinforce", "rtg", "gae")
BASELINES = ("none", "mean", "value", "optimal")
BATCH_MODES = ("auto", "episodes", "steps")
ACTIVATIONS = ("tanh", "relu", "elu")
LR_SCHEDULES = ("constant", "linear")
VECTORIZATION = ("sync", "async")
ENV_BACKENDS = ("auto", "gymnasium", "native")
EVAL_SCORES = ("mean", "worst-quarter")
# A run's checkpoints/<name>.pt: the final policy, the best training return's, the best held-out score's (--eval-every)
CHECKPOINTS = ("latest", "best", "best-eval")
ON_ENV_ERROR = ("stop", "reset")
CRITIC_OBS = ("obs", "privileged", "blind")
POLICY_OBS = ("obs", "estimated", "privileged")
ACTION_GAINS = ("fixed", "learned", "held")
PHYSICS_ESTIMATE_LR, PHYSICS_ESTIMATE_EPOCHS = 1e-3, 5  # --physics-estimate-lr / -epochs when not given
# A privileged critic fit on exact per-episode factors learns to tell the batch's few episodes apart by them and
# lowers the return it was meant to help; noise of this std on its inputs (log factors) while it fits removed the
# gap on randomised Hopper and Walker2d (docs/robustness.md, "Noise on the privileged critic's context").
PRIVILEGED_CONTEXT_NOISE = 0.1
MAX_FOCUS_CELLS = 4096  # --randomize-focus keeps a score per cell of the physics ranges
# --randomize names -> robopg.physics parameters (a physics name is accepted as itself too).
RANDOMIZE_PARAMS = {"mass": "body_mass", "friction": "geom_friction", "damping": "dof_damping",
                    "armature": "dof_armature", "gear": "actuator_gear", "gravity": "gravity"}
ALGORITHMS = ("pg", "npg", "trpo", "ppo")
# Options only one family of update rules reads; each defaults to None, "the algorithm's default" (listed in
# ALGORITHM_DEFAULTS), so that validate() can tell an option that was given from one that was not.
ALGORITHM_OPTIONS = {
    "clip_range": ("ppo",), "epochs": ("ppo",), "minibatch_size": ("ppo",), "value_clip": ("ppo",),
    "normalize_minibatch_advantages": ("ppo",), "target_kl": ("ppo",), "desired_kl": ("ppo",),
    "recompute_advantages": ("ppo",), "mean_bound_coef": ("pg", "ppo"),
    "max_kl": ("npg", "trpo"), "cg_iters": ("npg", "trpo"), "cg_damping": ("npg", "trpo"), "backtracks": ("trpo",),
}
ALGORITHM_DEFAULTS = {
    "clip_range": 0.2, "epochs": 10, "minibatch_size": 64, "value_clip": None, "normalize_minibatch_advantages": False,
    "target_kl": None, "desired_kl": None, "recompute_advantages": False, "mean_bound_coef": 0.0,
    "max_kl": 0.01, "cg_iters": 10, "cg_damping": 0.1, "backtracks": 10,
}


# What a field is to the experiment tools (sweep, compare):
ROLES = {
    "env": "the environment: one per sweep and per comparison",
    "run": "names one run of an arm (its seed, where it is written): never part of an arm's settings",
    "arm": "set per arm by sweep --estimators (never --grid)",
    "setting": "changes what is learned: runs that differ in it are different arms (sweepable with --grid)",
    "runtime": "changes how a run is executed or logged, not a single number it computes",
}


# What --balance-regions' options are without it
BALANCE_DEFAULTS = {"balance_power": 1.0, "balance_from": 0, "balance_nominal": "region"}

# Per-field checks (``check=`` in a field's metadata): a reason the value cannot work, or None.
def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _optional(check):
    return lambda v: None if v is None else check(v)


CHECKS = {
    "unit": lambda v: None if _number(v) and 0.0 <= v <= 1.0 else f"must be in [0, 1], got {v}",
    "positive_int": lambda v: None if _integer(v) and v > 0 else f"must be a positive integer, got {v}",
    "count": lambda v: None if _integer(v) and v >= 0 else f"must be a non-negative integer, got {v}",
    "positive": lambda v: None if _number(v) and v > 0 else f"must be a positive number, got {v}",
    "non_negative": lambda v: None if _number(v) and v >= 0 else f"must be a non-negative number, got {v}",
    "finite": lambda v: None if _number(v) else f"must be finite, got {v}",
    "sizes": lambda v: None if isinstance(v, list) and v and all(_integer(h) and h > 0 for h in v)
    else f"must be positive integers, got {v}",
    "text": lambda v: None if isinstance(v, str) else f"must be a string, got {v!r}",
    # numpy's and torch's generators take seeds in [0, 2**32 - 1]
    "seed": lambda v: None if _integer(v) and 0 <= v < 2 ** 32 else f"must be an integer in [0, 2**32 - 1], got {v}",
    "kwargs": lambda v: None if isinstance(v, dict) and all(isinstance(k, str) and k.isidentifier() for k in v)
    else f"must map keyword names to values, got {v!r}",
    "randomize": lambda v: _reason(parse_randomize, v),
    "delay": lambda v: _reason(parse_delay, v),
    "start": lambda v: _reason(parse_start, v),
    "gamma_schedule": lambda v: _reason(parse_gamma_schedule, v),
    "gain_start": lambda v: _reason(parse_gain_start, v),
    "balance": lambda v: _reason(parse_balance, v),
}
CHECKS.update({f"optional_{k}": _optional(CHECKS[k]) for k in ("positive", "positive_int", "count", "non_negative",
                                                                          "finite")})
CHECKS["optional_bool"] = lambda v: None if v is None or isinstance(v, bool) else f"must be true or false, got {v!r}"


def _f(default: Any, help: str, role: str = "setting", **kw: Any) -> Any:
    assert role in ROLES, role
    assert kw.get("check") in (None, *CHECKS), kw
    metadata = {"help": help, "role": role, **kw}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class Config:
    env_id: str = _f("InvertedPendulum-v5", "Gymnasium environment id, e.g. Hopper-v5 or CartPole-v1.",
                     role="env", positional=True)
    steps: int = _f(200_000, "Total environment steps to train for (all envs together).", check="positive_int")
    seed: int = _f(0, "Seed for torch, numpy and the environments; the same seed gives the same numbers.",
                 role="run", check="seed")
    num_envs: int = _f(8, "Environments stepped side by side in one vector env (with --workers: set to "
                       "workers x envs-per-worker, all of them together).", check="positive_int")
    batch_size: int = _f(4096, "Environment steps per policy update (at least; whole-episode batches "
                         "run every episode to its end).", check="positive_int")
    batch_mode: str = _f("auto", "'episodes': every episode in a batch runs to its end (unbiased without a "
                         "value function); 'steps': batch_size/num_envs steps per env, episodes cut at the "
                         "batch end bootstrap from V. 'auto': steps with a value baseline, else episodes.",
                         choices=BATCH_MODES)
    estimator: str = _f("gae", "Weights Psi_t of the policy gradient: 'reinforce' (whole-episode return), "
                        "'rtg' (reward-to-go), 'gae' (generalised advantage estimation, needs "
                        "--baseline value).", role="arm", choices=ESTIMATORS)
    baseline: str = _f("value", "Subtracted from Psi_t: 'none'; 'mean' (leave-one-episode-out batch mean of "
                       "Psi); 'value' (a learned V(s), fit to reward-to-go targets each iteration); 'optimal' "
                       "(a constant per parameter, b_k = E[g_k^2 Psi]/E[g_k^2], Greensmith et al. 2004).",
                       role="arm", choices=BASELINES)
    gamma: float = _f(0.99, "Discount factor, in [0, 1].", check="unit")
    gamma_schedule: str = _f("", "Change the discount during the run: 'GAMMA@STEPS[;GAMMA@STEPS...]', each "
                             "GAMMA from env step STEPS on (--gamma before the first), e.g. '0.995@1500000' for a "
                             "longer horizon once the --randomize ranges open.", check="gamma_schedule")
    lam: float = _f(0.95, "GAE lambda, in [0, 1] (lambda=1 is reward-to-go minus the value baseline).", check="unit")
    lr: float = _f(3e-4, "Policy learning rate (Adam).", check="positive")
    lr_schedule: str = _f("constant", "Policy learning-rate schedule over the run.", choices=LR_SCHEDULES)
    value_lr: float = _f(1e-3, "Value-function learning rate (Adam).", check="positive")
    value_epochs: int = _f(5, "Passes over the batch when fitting the value function each iteration.",
                           check="positive_int")
    value_minibatches: int = _f(8, "Minibatches per value-fitting pass.", check="positive_int")
    normalize_advantages: bool = _f(True, "Rescale Psi to zero mean and unit variance within each batch (with "
                                    "--baseline optimal: unit variance only; the baseline does the centring).")
    normalize_observations: bool = _f(True, "Running mean/std observation normalisation (saved with the "
                                      "policy).")
    normalize_rewards: bool = _f(False, "Scale rewards by the running std of the discounted return "
                                 "(helps value fitting on robots with large rewards).")
    entropy_coef: float = _f(0.0, "Entropy bonus coefficient.", check="non_negative")
    mean_bound_coef: float = _f(None, "pg, ppo: penalise a Gaussian policy's mean beyond the action bounds, this "
                                "coefficient times the squared excess summed over action dims, averaged over steps "
                                "(not given: 0, no penalty). A mean far past a bound is a joint whose samples "
                                "almost all clip, so the policy gradient barely moves it back.",
                                check="optional_non_negative")
    max_grad_norm: float = _f(0.0, "Clip the policy gradient to this global norm (0: no clipping).",
                             check="non_negative")
    algorithm: str = _f("pg", "Update rule: 'pg' (one step along the policy gradient, the seed's method), 'npg' "
                        "(natural policy gradient, step set by --max-kl), 'trpo' (npg plus a backtracking line "
                        "search enforcing --max-kl), 'ppo' (clipped surrogate, epochs x minibatches). Every "
                        "estimator and baseline feeds each one the same weights Psi.", choices=ALGORITHMS)
    clip_range: float = _f(None, "PPO: clip the probability ratio to [1-c, 1+c] (not given: 0.2).",
                           check="optional_positive")
    epochs: int = _f(None, "PPO: passes over each batch (not given: 10).", check="optional_positive_int")
    minibatch_size: int = _f(None, "PPO: steps per minibatch (not given: 64).", check="optional_positive_int")
    value_clip: float = _f(None, "PPO: clip each value prediction to within this of its value before the fit "
                           "(not given: no value clipping).", check="optional_positive")
    normalize_minibatch_advantages: bool = _f(None, "PPO: rescale Psi to zero mean, unit variance within each "
                                              "minibatch (not given: no; --normalize-advantages does the batch).",
                                              check="optional_bool")
    target_kl: float = _f(None, "PPO: stop the epochs of an iteration once a minibatch's approximate KL to the "
                          "sampling policy exceeds 1.5 x this (not given: never).", check="optional_positive")
    desired_kl: float = _f(None, "PPO: adapt the learning rate to the measured KL (rsl_rl's schedule: /1.5 above "
                           "2 x this, x1.5 below half of it; not given: the --lr-schedule).",
                           check="optional_positive")
    recompute_advantages: bool = _f(None, "PPO: before each epoch, compute Psi and V's targets afresh with the "
                                    "value function as it is then, and fit V by one pass of --value-minibatches "
                                    "steps after each epoch (instead of --value-epochs passes after the last); "
                                    "Tianshou's recompute_adv (not given: no).", check="optional_bool")
    max_kl: float = _f(None, "NPG/TRPO: the KL radius of each step, mean KL(old || new) over the batch's states "
                       "(not given: 0.01).", check="optional_positive")
    cg_iters: int = _f(None, "NPG/TRPO: conjugate-gradient iterations solving F x = g (not given: 10).",
                       check="optional_positive_int")
    cg_damping: float = _f(None, "NPG/TRPO: damping added to the Fisher matrix, F + d I (not given: 0.1).",
                           check="optional_non_negative")
    backtracks: int = _f(None, "TRPO: line-search halvings (x0.8) before the step is given up for this "
                         "iteration (not given: 10).", check="optional_positive_int")
    hidden_sizes: list = _f([64, 64], "Hidden layer sizes of the policy and value networks.", check="sizes")
    activation: str = _f("tanh", "Hidden activation.", choices=ACTIVATIONS)
    init_log_std: float = _f(-0.5, "Initial log standard deviation of the Gaussian policy.", check="finite")
    action_gain: str = _f("fixed", "Gaussian policies: 'learned' multiplies the mean action by a gain, "
                          "exp(g(x)) per joint with g linear in the network's input (the observation, its "
                          "history and, with --policy-obs estimated, the physics estimate) and bounded to "
                          "[1/3, 3]; g starts at 0, so the policy starts as it would without it. A policy can "
                          "then scale its actions with the robot it finds itself on (docs/robustness.md). 'held': "
                          "the gain is its --action-gain-start (a power of the physics estimate), never trained.",
                          choices=ACTION_GAINS)
    action_gain_start: str = _f("", "With --action-gain learned or held and --policy-obs estimated: start the gain "
                                "as a power of the estimated physics instead of 1, e.g. mass=0.5 for a gain of about "
                                "mass^0.5 (0.71 on a robot half as heavy, 1.22 on one 1.5 times as heavy; NAME=P,..., "
                                "names from --randomize). The gain's weights on the estimate's log factors start at "
                                "P, so the policy starts at the nominal robot as it would without the gain and "
                                "scales its actions with the robot it estimates (docs/robustness.md). Empty: 1.",
                                check="gain_start")
    log_std_cap: float = _f(None, "Gaussian policies: cap the log standard deviation with a bound that falls "
                            "linearly from --init-log-std at --log-std-cap-from env steps to this value at --steps; "
                            "after every update the policy's log std is clipped under it. Training's samples then "
                            "come near the mean action that eval and robustness run (not given: no cap).",
                            check="optional_finite")
    log_std_cap_from: int = _f(0, "With --log-std-cap: the env steps at which the cap starts to fall (before them, "
                               "no cap).", check="count")
    vectorization: str = _f("sync", "Gymnasium vector env: 'sync' (one process) or 'async' (subprocesses).",
                            role="runtime", choices=VECTORIZATION)
    env_backend: str = _f("auto", "Simulator backend: 'gymnasium' vector envs, or 'native' (robopg's batched MuJoCo "
                          "robots, same tasks as Gymnasium v5). 'auto' picks native where it supports the id.",
                          choices=ENV_BACKENDS)
    env_threads: int = _f(0, "Threads for the native backend's batched MuJoCo stepping (0: the cores available).",
                          role="runtime", check="count")
    env_kwargs: dict = _f({}, "Keyword arguments for the environment's constructor, as KEY=VALUE (values read as YAML: "
                          "2, 0.5, true, a text; a value with commas is a list), e.g. --env-kwargs reward_scale=2 "
                          "target=0.5,0.1. Saved with the run, so resume, eval, video and Ray workers rebuild the "
                          "same env. Runs on the gymnasium backend.", check="kwargs")
    flatten_observations: bool = _f(False, "Flatten Dict/Tuple observations into one vector (Gymnasium's "
                                    "FlattenObservation) so robopg's policies can take them.")
    workers: int = _f(0, "Ray rollout workers sampling in parallel, each with its own vector env and a copy of "
                      "the policy (0: sample in this process). Needs: pip install -e '.[ray]'.", check="count")
    envs_per_worker: int = _f(8, "Environments in each Ray worker's vector env (with --workers).", check="positive_int")
    ray_address: str = _f("", "Ray cluster to join, e.g. ray://head:10001 or auto (default: start a local Ray "
                          "instance for the run).", check="text")
    worker_timeout: float = _f(300.0, "Seconds a Ray worker may take to sample its share of one batch; one that "
                               "takes longer is treated as dead: killed, restarted, its share sampled again.",
                               check="positive")
    on_env_error: str = _f("stop", "When an environment raises in step or reset: 'stop' the run (checkpoint kept, "
                           "resumable), or 'reset' that env, drop its unfinished episode from the batch and go on "
                           "(counted in metrics.csv as env_errors).", role="runtime", choices=ON_ENV_ERROR)
    max_env_errors: int = _f(10, "With --on-env-error reset: stop the run once this many episodes were dropped.",
                             role="runtime", check="count")
    torch_threads: int = _f(1, "Torch intra-op threads (1 is fastest for small networks and reproducible).",
                       role="runtime", check="positive_int")
    checkpoint_every: int = _f(20, "Write checkpoints/latest.pt every this many iterations (and at the end "
                               "and on interruption).", role="runtime", check="positive_int")
    eval_every: int = _f(0, "Every this many env steps (and at the end), run the deterministic policy on "
                         "--eval-episodes held-out episodes, each on its own robot drawn once from the full "
                         "--randomize physics ranges (the nominal robot without them), and keep the best-scoring "
                         "policy as checkpoints/best-eval.pt; the scores go into metrics.csv (0: off).",
                         role="runtime", check="count")
    eval_episodes: int = _f(16, "With --eval-every: held-out episodes (robots) per evaluation.", role="runtime",
                            check="positive_int")
    eval_keep: bool = _f(False, "With --eval-every: also keep every evaluated policy, as "
                         "checkpoints/eval-<env steps>.pt (for a look at how the policy changed over the run).",
                         role="runtime")
    eval_score: str = _f("mean", "With --eval-every: what best-eval.pt maximises: 'mean' (the mean return) or "
                         "'worst-quarter' (the mean of the lowest quarter of the episodes' returns).",
                         role="runtime", choices=EVAL_SCORES)
    log_every: float = _f(10.0, "Seconds between plain log lines when the output is not a terminal.",
                         role="runtime", check="positive")
    log_grad_stats: int = _f(0, "Every this many iterations, record the policy gradient's variance and "
                             "signal-to-noise ratio from within-batch splits (0: off).", check="count")
    randomize: str = _f("", "Domain randomisation: per-env physics scale factors drawn at every episode start, "
                        "e.g. mass=0.7:1.3,friction=0.5:1.5 (NAME=LO:HI, uniform; NAME=LO:HI:log, log-uniform). "
                        "Names: " + ", ".join(RANDOMIZE_PARAMS) + ". Seeded from --seed; empty: the nominal robot.",
                        check="randomize")
    randomize_ramp: int = _f(0, "Env steps over which the --randomize ranges widen linearly from the nominal robot "
                             "(every factor 1; or --randomize-start's) to their full width: a curriculum (0: full "
                             "width from the start).",
                             check="count")
    randomize_after: int = _f(0, "Env steps of the nominal robot (or --randomize-start's) before the --randomize "
                              "ranges open (then at full width, or widening over --randomize-ramp): pretraining "
                              "where the robot learns its gait "
                              "(0: randomised from the start).", check="count")
    randomize_start: str = _f("", "The robot before the --randomize ranges open (--randomize-after) and that they "
                              "widen from (--randomize-ramp): scale factors of --randomize's parameters, e.g. "
                              "mass=1.5 (NAME=S,...; the others 1), or several robots separated by ';', each episode "
                              "one of them; ROBOT@STEPS joins them from that env step on (a schedule: "
                              "'mass=1.5;mass=0.5@1000000'). Empty: the nominal robot.", check="start")
    randomize_focus: float = _f(0.0, "Worst-case focus: this fraction of episode starts draws its robot by rank from "
                                "the cells of the --randomize ranges where recent episodes returned least, the rest "
                                "uniformly (0: uniform draws, as without it; docs/robustness.md).", check="unit")
    randomize_nominal: float = _f(0.0, "This fraction of episode starts is the nominal robot (every --randomize factor "
                                  "1), the rest drawn from the ranges: the nominal robot stays in the mix however "
                                  "wide they are (0: every start drawn, as without it).", check="unit")
    randomize_bins: int = _f(4, "With --randomize-focus: cells per randomised parameter (the ranges are cut into "
                             "bins ** parameters cells).", check="positive_int")
    balance_regions: str = _f("", "Weigh the regions of the --randomize ranges evenly in every update: NAME=BINS,... "
                              "cuts each named parameter's range into BINS equal parts (in log space for a :log "
                              "range) and scales the weights Psi of each resulting region's steps so that every "
                              "region in the batch carries the same share of the policy gradient, as multi-task "
                              "RL weighs its tasks. Robots whose episodes are short (they fall) otherwise hold few "
                              "of a batch's steps (docs/robustness.md). Empty: every step weighs the same.",
                              check="balance")
    balance_power: float = _f(1.0, "With --balance-regions: how evenly the regions are weighed. Region b's share of "
                              "the gradient goes as n_b^(1 - P) for its n_b steps in the batch: 1 gives every region "
                              "the same share, 0 the plain batch mean, 0.5 shares in proportion to the square root of "
                              "the steps (temperature sampling's middle way in multi-task learning).", check="unit")
    balance_nominal: str = _f("region", "With --balance-regions: 'region' counts the nominal robots of "
                              "--randomize-nominal in the region they fall in; 'apart' leaves their steps' weights as "
                              "they are and balances the drawn robots among themselves, so the mix keeps the nominal "
                              "robot's share of the gradient.", choices=("region", "apart"))
    balance_from: int = _f(0, "With --balance-regions: the env step it starts at (before it, every step weighs the "
                           "same), e.g. --randomize-after's, so that the gait of the start robots is learned from "
                           "the plain mean (0: from the first step).", check="count")
    obs_noise: float = _f(0.0, "Std of Gaussian noise added to every observation the policy sees (0: none).",
                          check="non_negative")
    action_noise: float = _f(0.0, "Std of Gaussian noise added to every action sent to the robot (0: none).",
                             check="non_negative")
    action_delay: str = _f("0", "Control steps an action waits before it reaches the robot: K, or LO:HI for a delay "
                           "drawn per episode (uniform integers).", check="delay")
    obs_history: int = _f(0, "The policy and value function also see the last K observations and actions, newest "
                          "first and zeros before an episode's start: [o_t, ..., o_{t-K}, a_{t-1}, ..., a_{t-K}] "
                          "(0: the observation alone).", check="count")
    critic_obs: str = _f("obs", "What the value function sees: 'obs', or 'privileged' (the observation and the "
                         "randomised physics factors of its episode; never the policy), or 'blind' (a control for "
                         "experiments: the privileged network, its physics inputs held at zero). Needs --randomize.",
                         choices=CRITIC_OBS)
    policy_obs: str = _f("obs", "What the policy sees: 'obs', or 'estimated' (the observation and an estimate of "
                         "its episode's randomised physics factors, made from the observation by a network fit each "
                         "iteration by regression on the true factors, which only training knows; the policy "
                         "gradient never moves it). Use it with --obs-history, from which the factors can be "
                         "told; or 'privileged' (the observation and the true log physics factors: a teacher, "
                         "which a robot cannot be given outside simulation; --distill-from turns it into a policy "
                         "that estimates them). Needs --randomize with physics ranges (docs/robustness.md).",
                         choices=POLICY_OBS)
    physics_estimate_lr: float = _f(None, f"With --policy-obs estimated: the learning rate (Adam) of the network "
                                    f"that estimates the physics (not given: {PHYSICS_ESTIMATE_LR}).",
                                    check="optional_positive")
    physics_estimate_epochs: int = _f(None, f"With --policy-obs estimated: passes over each batch when the physics "
                                      f"estimate is fit (not given: {PHYSICS_ESTIMATE_EPOCHS}).",
                                      check="optional_positive_int")
    physics_estimate_replay: int = _f(None, "With --policy-obs estimated: fit the physics estimate on the last N "
                                      "batches, not only the newest (DAgger's aggregation: the true factors label "
                                      "a step rightly whichever policy sampled it; not given: 1).",
                                      check="optional_positive_int")
    physics_estimate_regions: str = _f("", "With --policy-obs estimated: weigh the regions of the --randomize ranges "
                                       "evenly in the physics estimate's regression, NAME=BINS,... as "
                                       "--balance-regions cuts them (the nominal robots in the region they fall "
                                       "in). Robots that fall early hold few of the steps it is fit on, and an "
                                       "estimate fit on every step alike reads them as robots nearer the nominal "
                                       "one (docs/robustness.md). Empty: every step weighs the same.",
                                       check="balance")
    distill_from: str = _f("", "A --policy-obs privileged run (the teacher) to distil into a policy a robot can run: "
                           "this run's policy is the teacher's, its true physics inputs replaced by an estimate "
                           "from the observation (--policy-obs estimated), fit by regression on the teacher's "
                           "inputs over this run's own rollouts; nothing else learns. The robot, ranges, history "
                           "and network are the teacher's; --steps is the student's own budget.", check="text")
    critic_context_noise: float = _f(None, "Std of Gaussian noise added to a privileged value function's context "
                                     "inputs (log physics factors) while it is fit, drawn afresh each epoch; the "
                                     "values Psi is computed from stay noise-free. It keeps the critic from telling "
                                     "episodes apart by their exact factors (not given: 0.1 with --critic-obs "
                                     "privileged; docs/robustness.md).", check="optional_non_negative")
    tensorboard: bool = _f(True, "Write TensorBoard event files into the run directory.", role="runtime")
    run_dir: str = _f("", "Where the run is written (default runs/<env>/<name>).", role="run")
    name: str = _f("", "Run name (default <estimator>-<baseline>-s<seed>-<time>).", role="run")

    # ----------------------------------------------------------------------------------------------
    def resolved_num_envs(self) -> int:
        """With Ray workers the batch is laid out [T, workers * envs_per_worker], as one vector env that size."""
        return self.workers * self.envs_per_worker if self.workers else self.num_envs

    def resolved_batch_mode(self) -> str:
        if self.batch_mode != "auto":
            return self.batch_mode
        return "steps" if self.baseline == "value" else "episodes"

    def option(self, name: str) -> Any:
        """An algorithm-specific option's value: as given, else the algorithm's default (ALGORITHM_DEFAULTS)."""
        value = getattr(self, name)
        return ALGORITHM_DEFAULTS[name] if value is None else value

    def validate(self) -> Config:
        """Raise ConfigError naming the first option that cannot work; return self. Never changes a field."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if "choices" in f.metadata and value not in f.metadata["choices"]:
                raise _bad(f.name, f"{value!r} is not one of {', '.join(f.metadata['choices'])}")
            why = CHECKS[f.metadata["check"]](value) if "check" in f.metadata else None
            if why:
                raise _bad(f.name, why)
        self._check_combinations()
        self._check_algorithm()
        self._check_log_std_cap()
        return self

    def context_noise(self) -> float:
        """--critic-context-noise as given, else its default: 0.1 for a privileged critic, 0 for any other."""
        if self.critic_context_noise is not None:
            return float(self.critic_context_noise)
        return PRIVILEGED_CONTEXT_NOISE if self.critic_obs == "privileged" else 0.0

    def log_std_cap_at(self, env_steps: int) -> float | None:
        """--log-std-cap's bound after ``env_steps`` env steps, None while there is none."""
        if self.log_std_cap is None or env_steps < self.log_std_cap_from:
            return None
        done = min(1.0, (env_steps - self.log_std_cap_from) / (self.steps - self.log_std_cap_from))
        return self.init_log_std + (self.log_std_cap - self.init_log_std) * done

    def gamma_at(self, env_steps: int) -> float:
        """The discount of the batch sampled after ``env_steps`` env steps: --gamma, or --gamma-schedule's."""
        gamma = self.gamma
        for scheduled, at in parse_gamma_schedule(self.gamma_schedule):
            if env_steps >= at:
                gamma = scheduled
        return gamma

    def randomized(self) -> bool:
        """Whether sampling differs from the nominal robot (physics draws, noise or delay)."""
        return bool(self.randomize) or self.obs_noise > 0 or self.action_noise > 0 or parse_delay(
            self.action_delay) != (0, 0)

    def _check_combinations(self) -> None:
        if self.critic_obs != "obs" and not self.randomize:
            raise _bad("critic_obs", f"'{self.critic_obs}' gives the value function the randomised physics factors' "
                       "inputs: it needs --randomize")
        self._check_randomization()
        if self.eval_keep and not self.eval_every:
            raise _bad("eval_keep", "keeps every policy --eval-every evaluates: it needs --eval-every")
        if self.policy_obs != "obs" and not parse_randomize(self.randomize):
            raise _bad("policy_obs", f"'{self.policy_obs}' gives the policy the randomised physics factors (or an "
                       "estimate of them): it needs --randomize with physics ranges")
        if self.policy_obs == "privileged" and len(set(parse_delay(self.action_delay))) > 1:
            raise _bad("policy_obs", "'privileged' gives the policy the physics factors, not a drawn action delay: "
                       "use a fixed --action-delay")
        if self.distill_from and self.policy_obs != "estimated":
            raise _bad("distill_from", "replaces the teacher's true physics inputs by an estimate: it needs "
                       "--policy-obs estimated")
        late = max((at for _, at in parse_gamma_schedule(self.gamma_schedule)), default=0)
        if late >= self.steps:
            raise _bad("gamma_schedule", f"changes the discount at env step {late:,}, when the run's {self.steps:,} "
                       "steps are over: give a step before --steps")
        if self.distill_from and self.gamma_schedule:
            raise _bad("gamma_schedule", "changes the discount of the policy's updates, and a --distill-from run "
                       "makes none: leave it out")
        self._check_action_gain_start()
        self._check_balance_regions()
        for name in ("physics_estimate_lr", "physics_estimate_epochs", "physics_estimate_replay",
                     "physics_estimate_regions"):
            if getattr(self, name) not in (None, "") and self.policy_obs != "estimated":
                raise _bad(name, "sets the fit of the policy's physics estimate: it needs --policy-obs estimated")
        if self.critic_context_noise and self.critic_obs != "privileged":  # (0 is no noise: allowed anywhere)
            raise _bad("critic_context_noise", "blurs a privileged value function's context inputs: it needs "
                       "--critic-obs privileged")
        if self.critic_obs != "obs" and self.baseline != "value":
            raise _bad("critic_obs", f"'{self.critic_obs}' is an input of the value function: it needs --baseline "
                       "value")
        if self.ray_address and self.workers == 0:
            raise _bad("ray_address", "sampling runs on a Ray cluster only with --workers N (N > 0)")
        if self.batch_size < self.resolved_num_envs():
            envs = (f"--workers {self.workers} x --envs-per-worker {self.envs_per_worker} = "
                    f"{self.resolved_num_envs()} envs" if self.workers else f"--num-envs {self.num_envs}")
            raise _bad("batch_size", f"{self.batch_size} is smaller than {envs}: every env must contribute at least "
                       "one step")
        if self.steps < self.batch_size:
            raise _bad("steps", f"{self.steps} is smaller than one batch (--batch-size {self.batch_size})")
        if self.estimator == "gae" and self.baseline != "value":
            raise _bad("estimator", "gae needs a value function: use --baseline value (or --estimator rtg)")
        mode = self.resolved_batch_mode()
        if mode == "steps" and self.baseline != "value":
            raise _bad("batch_mode", "'steps' cuts episodes at the batch end, which needs a value function to "
                       "bootstrap from: use --baseline value or --batch-mode episodes")
        if self.estimator == "reinforce" and mode != "episodes":
            raise _bad("estimator", "reinforce weights every step by its whole episode's return, so it needs "
                       "whole episodes: use --batch-mode episodes")

    def _check_randomization(self) -> None:
        """The --randomize-* curriculum and focus options, each of which needs physics ranges to act on."""
        if self.randomize_ramp and not self.randomize:
            raise _bad("randomize_ramp", "widens the --randomize ranges: it needs --randomize")
        if self.randomize_after and not parse_randomize(self.randomize):
            raise _bad("randomize_after", "opens the --randomize physics ranges after the run's first steps: it needs "
                       "--randomize with physics ranges")
        if self.randomize_after and self.randomize_after >= self.steps:
            raise _bad("randomize_after", f"{self.randomize_after:,} env steps of the nominal robot leave none of the "
                       f"run's {self.steps:,} randomised: give fewer than --steps")
        if self.randomize_start:
            if not (self.randomize_after or self.randomize_ramp):
                raise _bad("randomize_start", "is the robot before the --randomize ranges open or widen: it needs "
                           "--randomize-after or --randomize-ramp")
            late = max(joins for _, joins in parse_start_schedule(self.randomize_start))
            if late >= self.randomize_after + self.randomize_ramp:
                raise _bad("randomize_start", f"has a robot joining at env step {late:,}, when the ranges are already "
                           "fully open and start robots are no longer drawn: give a step before --randomize-after "
                           "(+ --randomize-ramp)")
            extra = {n for robot in parse_start(self.randomize_start) for n in robot} - set(parse_randomize(
                self.randomize))
            if extra:
                raise _bad("randomize_start", f"scales {_short_names(extra)}, which --randomize does not "
                           "randomise: name only its parameters")
        if self.randomize_focus and not self.randomize:
            raise _bad("randomize_focus", "focuses the --randomize physics draws: it needs --randomize")
        if self.randomize_nominal and not parse_randomize(self.randomize):
            raise _bad("randomize_nominal", "mixes the nominal robot into the --randomize physics draws: it needs "
                       "--randomize with physics ranges")
        if self.randomize_focus and self.randomize_bins < 2:
            raise _bad("randomize_bins", f"{self.randomize_bins} cell per parameter cannot focus on anything: use 2 "
                       "or more")
        if self.randomize_focus and self.randomize_bins ** len(parse_randomize(self.randomize)) > MAX_FOCUS_CELLS:
            raise _bad("randomize_bins", f"{self.randomize_bins} per parameter makes more than {MAX_FOCUS_CELLS:,} "
                       "cells, too many to score: use fewer bins")

    def _check_action_gain_start(self) -> None:
        if self.action_gain == "held" and not self.action_gain_start:
            raise _bad("action_gain", "held keeps the gain where --action-gain-start puts it: give --action-gain-start "
                       "(without it the gain would be 1 throughout, as with fixed)")
        if not self.action_gain_start:
            return
        if self.action_gain == "fixed":
            raise _bad("action_gain_start", "is where the gain starts: it needs --action-gain learned or held")
        if self.policy_obs != "estimated" or self.distill_from:
            raise _bad("action_gain_start", "starts the gain as a power of the policy's physics estimate: it needs "
                       "--policy-obs estimated (and no --distill-from, whose policy is its teacher's)")
        extra = set(parse_gain_start(self.action_gain_start)) - set(parse_randomize(self.randomize))
        if extra:
            raise _bad("action_gain_start", f"names {_short_names(extra)}, which --randomize does not randomise and "
                       "the policy does not estimate: name only its parameters")

    def _check_balance_regions(self) -> None:
        for name, what in (("balance_power", "how evenly"), ("balance_from", "from which env step"),
                           ("balance_nominal", "where the nominal robots are when")):
            if getattr(self, name) != BALANCE_DEFAULTS[name] and not self.balance_regions:
                raise _bad(name, f"sets {what} --balance-regions weighs the regions: it needs --balance-regions")
        if self.balance_nominal == "apart" and not self.randomize_nominal:
            raise _bad("balance_nominal", "'apart' keeps --randomize-nominal's robots out of the balance: it needs "
                       "--randomize-nominal")
        if self.balance_regions and self.distill_from:
            raise _bad("balance_regions", "weighs the policy's updates, and a --distill-from run makes none: leave it "
                       "out")
        if self.balance_from >= self.steps:
            raise _bad("balance_from", f"starts at env step {self.balance_from:,}, when the run's {self.steps:,} steps "
                       "are over: give a step before --steps")
        for name in ("balance_regions", "physics_estimate_regions"):
            extra = set(parse_balance(getattr(self, name))) - set(parse_randomize(self.randomize))
            if extra:
                raise _bad(name, f"names {_short_names(extra)}, which --randomize does not randomise: name only its "
                           "parameters")

    def _check_algorithm(self) -> None:
        a = self.algorithm
        for name, users in ALGORITHM_OPTIONS.items():
            if getattr(self, name) is not None and a not in users:
                raise _bad(name, f"is an option of {'/'.join(users)}, not of --algorithm {a}")
        if a == "ppo":
            if self.option("minibatch_size") > self.batch_size:
                raise _bad("minibatch_size", f"{self.minibatch_size} is larger than the batch (--batch-size "
                           f"{self.batch_size})")
            if self.recompute_advantages and self.baseline != "value":
                raise _bad("recompute_advantages", "recomputes Psi with the value function as it is fitted: it needs "
                           "--baseline value")
            if self.desired_kl is not None and self.lr_schedule != "constant":
                raise _bad("desired_kl", f"adapts the learning rate itself: drop --lr-schedule {self.lr_schedule}")
        if a != "pg" and self.baseline == "optimal":
            raise _bad("baseline", f"'optimal' is one constant per parameter, not a weight per step, so {a}'s "
                       "ratio and surrogate cannot use it: use it with --algorithm pg, or --baseline value/mean")
        if a in ("npg", "trpo"):
            if self.max_grad_norm > 0:
                raise _bad("max_grad_norm", f"{a}'s step length is set by --max-kl, there is no gradient step to clip")
            if self.lr_schedule != "constant":
                raise _bad("lr_schedule", f"{a} has no learning rate: its step is set by --max-kl")

    def _check_log_std_cap(self) -> None:
        if self.log_std_cap is None:
            if self.log_std_cap_from:
                raise _bad("log_std_cap_from", "is where --log-std-cap's bound starts to fall: it needs --log-std-cap")
            return
        if self.log_std_cap >= self.init_log_std:
            raise _bad("log_std_cap", f"{self.log_std_cap} is not below --init-log-std {self.init_log_std}, so the "
                       "cap never falls under where the policy starts: give a smaller value")
        if self.log_std_cap_from >= self.steps:
            raise _bad("log_std_cap_from", f"{self.log_std_cap_from:,} env steps leave none of the run's "
                       f"{self.steps:,} to lower the cap over: give fewer than --steps")

    # ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "") -> Config:
        """A config from a mapping (a config.yaml, a YAML file of options): unknown keys and values of the
        wrong type are errors naming the key (and ``source``, the file)."""
        where = f" in {source}" if source else ""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown config key{'s' if len(unknown) > 1 else ''}{where}: {', '.join(unknown)}")
        for key, value in data.items():
            if value is None and known[key].default is None:
                continue  # an option whose default None means "decided elsewhere" (the algorithm's default)
            expected = _TYPES[known[key].type if isinstance(known[key].type, str) else known[key].type.__name__]
            if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
                raise ConfigError(f"{key}{where}: {value!r} is not of type {known[key].type}")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        """Through a temporary file and a rename: a process killed mid-write leaves the old file whole."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise StorageError(e.errno, f"cannot write {path}: {e.strerror or e}") from e

    @classmethod
    def load(cls, path: str | Path) -> Config:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except OSError as e:
            raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from e
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            at = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"{path}{at}: not valid YAML ({problem})") from e
        if not isinstance(data, dict):
            raise ConfigError(f"{path} does not hold a config mapping")
        return cls.from_dict(data, source=str(path))


# The YAML types a field of each declared type accepts (an int is a float; a bool is not an int).
_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "list": (list,), "dict": (dict,)}


def _bad(name: str, why: str) -> ConfigError:
    return ConfigError(f"--{name.replace('_', '-')}: {why}")


def fields(*roles: str) -> list[dataclasses.Field]:
    """Config's fields, in declaration order; only those of ``roles`` if given."""
    return [f for f in dataclasses.fields(Config) if not roles or f.metadata["role"] in roles]


def names(*roles: str) -> tuple[str, ...]:
    return tuple(f.name for f in fields(*roles))


def _reason(parse, value) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, got {value!r}"
    try:
        parse(value)
    except ValueError as e:
        return str(e)
    return None


def parse_randomize(text: str) -> dict[str, tuple[float, float, str]]:
    """'mass=0.7:1.3,friction=0.5:2:log' -> {'body_mass': (0.7, 1.3, 'uniform'), 'geom_friction': (0.5, 2.0,
    'log')}, in the order written. ValueError (its message names the part) for an unknown name, a range that is
    not LO:HI[:uniform|log], lo > hi, or a scale that is not positive and finite."""
    out: dict[str, tuple[float, float, str]] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, eq, rng = part.partition("=")
        name = name.strip()
        param = _param(name, part)
        bits = rng.split(":")
        if not eq or len(bits) not in (2, 3) or (len(bits) == 3 and bits[2] not in ("uniform", "log")):
            raise ValueError(f"cannot read {part!r}: write NAME=LO:HI or NAME=LO:HI:log")
        try:
            lo, hi = float(bits[0]), float(bits[1])
        except ValueError:
            raise ValueError(f"cannot read {part!r}: LO and HI must be numbers") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo > 0 and hi > 0):
            raise ValueError(f"{part!r}: scale factors must be positive and finite")
        if lo > hi:
            raise ValueError(f"{part!r}: lo {lo:g} > hi {hi:g}")
        if param in out:
            raise ValueError(f"{name!r} is given twice")
        out[param] = (lo, hi, bits[2] if len(bits) == 3 else "uniform")
    return out


def _short_names(params) -> str:
    """MuJoCo's parameter names as the options write them: {'geom_friction', 'body_mass'} -> 'friction, mass'."""
    short = {param: name for name, param in RANDOMIZE_PARAMS.items()}
    return ", ".join(sorted(short[p] for p in params))


def _param(name: str, part: str) -> str:
    """The physics parameter a --randomize-style ``name`` (short or MuJoCo's) stands for, in ``part`` of an option;
    ValueError naming the part if it is none."""
    param = RANDOMIZE_PARAMS.get(name, name if name in RANDOMIZE_PARAMS.values() else None)
    if param is None:
        raise ValueError(f"unknown parameter {name!r} in {part!r}; the parameters are {', '.join(RANDOMIZE_PARAMS)}")
    return param


def parse_start(text: str) -> list[dict[str, float]]:
    """'mass=1.5,friction=0.8' -> [{'body_mass': 1.5, 'geom_friction': 0.8}]: one robot, a scale factor per named
    parameter; robots separated by ';' ('mass=1.5;mass=0.5' -> two). ValueError (its message names the part) for
    an unknown name, a part that is not NAME=S, or a scale that is not positive and finite."""
    return [robot for robot, _ in parse_start_schedule(text)]


def parse_gamma_schedule(text: str) -> list[tuple[float, int]]:
    """'0.995@1500000;0.999@2500000' -> [(0.995, 1500000), (0.999, 2500000)]: each discount from that env step on.
    ValueError (naming the part) for a discount outside [0, 1], a step that is not an integer >= 0, or steps out of
    increasing order."""
    schedule: list[tuple[float, int]] = []
    for part in (p.strip() for p in text.split(";") if p.strip()):
        value, at, steps = (x.strip() for x in part.partition("@"))
        try:
            gamma, start = float(value), int(steps.replace("_", ""))
        except ValueError:
            gamma, start = math.nan, -1
        if not at or start < 0 or not 0.0 <= gamma <= 1.0:
            raise ValueError(f"cannot read {part!r}: write GAMMA@STEPS, a discount in [0, 1] from an env step >= 0")
        if schedule and start <= schedule[-1][1]:
            raise ValueError(f"{part!r} starts at or before the step of the discount before it: list them in "
                             "increasing order of their steps")
        schedule.append((gamma, start))
    return schedule


def parse_start_schedule(text: str) -> list[tuple[dict[str, float], int]]:
    """parse_start's robots, each with the env step it joins the start robots from: 'mass=1.5;mass=0.5@1000000'
    -> the heavy robot from the run's first step, the light one from step 1,000,000 on (no '@': from 0). At least
    one robot is there from the first step."""
    schedule = []
    for robot in (r for r in text.split(";") if r.strip()):
        body, at, steps = robot.partition("@")
        try:
            joins = int(steps.replace("_", "")) if at else 0
        except ValueError:
            joins = -1
        if joins < 0:
            raise ValueError(f"cannot read {robot.strip()!r}: the env step after '@' must be an integer >= 0")
        schedule.append((_parse_robot(body), joins))
    if schedule and min(j for _, j in schedule) > 0:
        raise ValueError("no robot from the run's first step: give one without '@' (or @0)")
    return schedule


def _parse_robot(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, eq, value = (x.strip() for x in part.partition("="))
        try:
            scale = float(value)
        except ValueError:
            scale = None
        if not eq or scale is None:
            raise ValueError(f"cannot read {part!r}: write NAME=SCALE")
        # One factor is a range from itself to itself: parse_randomize's names and checks.
        (param, _), = parse_randomize(f"{name}={value}:{value}").items()
        if param in out:
            raise ValueError(f"{name!r} is given twice")
        out[param] = scale
    return out


def parse_gain_start(text: str) -> dict[str, float]:
    """'mass=0.5,gear=-0.5' -> {'body_mass': 0.5, 'actuator_gear': -0.5}: the power of each estimated factor the
    learned action gain starts as. ValueError (naming the part) for an unknown name, a name given twice, or a power
    that is not a finite number."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, eq, value = (x.strip() for x in part.partition("="))
        param = _param(name, part)
        try:
            power = float(value)
        except ValueError:
            power = math.nan
        if not eq or not math.isfinite(power):
            raise ValueError(f"cannot read {part!r}: write NAME=POWER, a finite number")
        if param in out:
            raise ValueError(f"{name!r} is given twice")
        out[param] = power
    return out


def parse_balance(text: str) -> dict[str, int]:
    """'mass=3,friction=2' -> {'body_mass': 3, 'geom_friction': 2}: the parts each named parameter's range is cut
    into for --balance-regions. ValueError (naming the part) for an unknown name, a name given twice, or a count of
    parts that is not an integer >= 2."""
    out: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, eq, value = (x.strip() for x in part.partition("="))
        param = _param(name, part)
        bins = int(value) if value.isdigit() else 0
        if not eq or bins < 2:
            raise ValueError(f"cannot read {part!r}: write NAME=BINS, an integer >= 2")
        if param in out:
            raise ValueError(f"{name!r} is given twice")
        out[param] = bins
    return out


def parse_delay(text: str) -> tuple[int, int]:
    """'2' -> (2, 2); '0:1' -> (0, 1): the range of an episode's action delay in control steps."""
    bits = str(text).split(":")
    try:
        lo, hi = (int(bits[0]), int(bits[-1])) if len(bits) <= 2 else (None, None)
    except ValueError:
        lo = hi = None
    if lo is None:
        raise ValueError(f"cannot read {text!r}: write K or LO:HI (integers)")
    if lo < 0:
        raise ValueError(f"{text!r}: a delay must be >= 0")
    if lo > hi:
        raise ValueError(f"{text!r}: lo {lo} > hi {hi}")
    return lo, hi


def parse_estimator_spec(spec: str, privileged: bool = False) -> tuple[str, str]:
    """'rtg+value' -> ('rtg', 'value'); a bare estimator takes no baseline, except gae (value).

    The short form used by ``robopg sweep --estimators`` and ``robopg variance --estimators`` (which, with
    ``privileged``, also takes the baseline 'privileged': a value function that sees the randomised physics).
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
    if baseline not in BASELINES + (("privileged",) if privileged else ()):
        raise ConfigError(f"--estimators: unknown baseline {baseline!r} in {spec!r} (one of {', '.join(BASELINES)})")
    return estimator, baseline
