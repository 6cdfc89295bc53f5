"""Teacher and student (``--policy-obs privileged``, then ``--distill-from``): the two phases of Rapid Motor
Adaptation (Kumar et al., 2021), on robopg's randomiser.

1. The teacher is trained as any policy is, reading ``[o, c]``: its observation (with ``--obs-history``, the last
   few observations and actions) and c, the true log physics factors of the robot it drives, which only
   simulation knows.
2. The student is the teacher's network with c replaced by an estimate e(o) (``--policy-obs estimated``). Nothing
   of the teacher moves; e is fit by regression on the teacher's own normalised c, over the student's own
   rollouts, so it learns the robots and states the deployed policy meets. A robot then needs only o.

Unlike ``--policy-obs estimated`` alone, where the policy and its estimate learn at once, the student's target
never moves: the teacher has already learned what to do with each robot.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .config import Config, ConfigError, parse_randomize
from .normalization import ObsNormalizer

# What the student takes from its teacher, whatever its own options say: the robot, what the policy reads, the
# network. (The rest is the student's own run: seed, steps, envs, batch size, the estimate's fit.)
TEACHER_KEYS = ("env_id", "env_kwargs", "flatten_observations", "obs_history", "randomize", "obs_noise",
                "action_noise", "action_delay", "hidden_sizes", "activation", "init_log_std",
                "normalize_observations", "action_gain")


def student_values(teacher: Config, teacher_run: str | Path) -> dict:
    """The config values a student of ``teacher_run`` (whose config is ``teacher``) starts from, before its file's
    and command line's: the teacher's, as a distillation run of it, the teacher's curriculum and focus left
    behind."""
    _check_teacher(teacher, teacher_run)
    values = {k: v for k, v in teacher.to_dict().items() if k not in ("run_dir", "name", "steps")}
    return {**values, "policy_obs": "estimated", "distill_from": str(teacher_run), "randomize_ramp": 0,
            "randomize_after": 0, "randomize_start": "", "randomize_focus": 0.0, "critic_obs": "obs",
            "critic_context_noise": None, "log_std_cap": None, "log_std_cap_from": 0,
            "gamma_schedule": ""}


def init_student(policy, fit, config, teacher) -> None:
    """Make ``policy`` (a --policy-obs estimated one) the student of ``teacher`` (``robopg.load(
    config.distill_from)``): the teacher's weights and observation statistics, and ``fit``'s targets the teacher's
    normalised physics inputs."""
    path = config.distill_from
    tc = teacher.config
    _check_teacher(tc, path)
    for key in TEACHER_KEYS:
        mine, theirs = getattr(config, key), getattr(tc, key)
        if key == "randomize":
            mine, theirs = tuple(parse_randomize(mine)), tuple(parse_randomize(theirs))
        if mine != theirs:
            raise ConfigError(f"--{key.replace('_', '-')}: the student of {path} needs its teacher's ({theirs!r}), "
                              f"got {mine!r}")
    obs_dim = policy.normalizer.mean.numel()
    state = policy.state_dict()
    for key, value in teacher.state_dict().items():
        if key.startswith("normalizer.") and key != "normalizer.count":
            value = value[:obs_dim]
        state[key] = value.clone()
    policy.load_state_dict(state)
    fit.target.load_state_dict(normalizer_columns(teacher.normalizer, slice(obs_dim, None)).state_dict())


def _check_teacher(config, path) -> None:
    if config.policy_obs != "privileged":
        raise ConfigError(f"--distill-from: {path} was trained with --policy-obs {config.policy_obs}, not "
                          "privileged: only a policy that reads the true physics has inputs to replace")


def normalizer_columns(normalizer: ObsNormalizer, columns: slice) -> ObsNormalizer:
    """A frozen copy of ``normalizer`` for some of its columns: the same shift, scale and clip."""
    mean = normalizer.mean[columns]
    out = ObsNormalizer(mean.numel(), normalizer.enabled, normalizer.clip)
    with torch.no_grad():
        out.load_state_dict({"mean": mean.clone(), "var": normalizer.var[columns].clone(),
                             "count": normalizer.count.clone()})
    return out
