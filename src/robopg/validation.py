"""Held-out evaluation during training (``--eval-every``): the best policy by a deterministic score.

A training batch's return is a poor guide to which policy to keep: it is the sampling policy's, with its noise,
on whichever robots the batch happened to draw. Every ``--eval-every`` env steps (and at the end) the
deterministic policy runs ``--eval-episodes`` held-out episodes, each on its own robot drawn once, at the start,
from the full ``--randomize`` physics ranges (the nominal robot without them), with episode seeds of their own
(``EVAL_SEED``, ``EVAL_SEED + 1``, ...: neither training's nor ``robopg eval``'s). The same robots and seeds every
time, so the scores compare across the run. The best score's policy is ``checkpoints/best-eval.pt``.

The score (``--eval-score``): the mean return, or the mean of the lowest quarter of the episodes (the robots the
policy does worst on: for a policy meant to hold up off the nominal robot). Evaluation never touches training's
generators or envs: a run gives the same training numbers with or without it (tests/test_validation.py).
"""

from __future__ import annotations

import math

import numpy as np

from .config import Config, parse_randomize
from .randomization import seeded_generator

EVAL_SEED = 20_000
_EVAL_STREAM = 0xE7A1  # keeps the held-out robots' generator apart from training's (robopg.randomization)


def held_out_robots(config: Config) -> list[dict[str, float]]:
    """One robot (``{physics parameter: scale factor}``; ``{}`` is the nominal robot) per evaluation episode,
    drawn from the full --randomize ranges with a generator of the run's seed that training never uses."""
    ranges = parse_randomize(config.randomize)
    rng = seeded_generator(config.seed, _EVAL_STREAM)
    robots = []
    for _ in range(config.eval_episodes):
        robot = {}
        for name, (lo, hi, dist) in ranges.items():
            robot[name] = float(np.exp(rng.uniform(np.log(lo), np.log(hi))) if dist == "log" else rng.uniform(lo, hi))
        robots.append(robot)
    return robots


def score(returns: list[float], how: str) -> float:
    """``mean``: the mean return; ``worst-quarter``: the mean of the lowest ceil(n / 4) returns."""
    if how == "mean":
        return float(np.mean(returns))
    k = math.ceil(len(returns) / 4)
    return float(np.mean(np.sort(returns)[:k]))


class Validation:
    """When to evaluate, the evaluation itself, and the best score so far (checkpointed with the run)."""

    def __init__(self, config: Config):
        self.config = config
        self.robots = held_out_robots(config)
        self.next_at = config.eval_every
        self.best_score = -math.inf

    def due(self, env_steps: int) -> bool:
        return env_steps >= self.next_at or env_steps >= self.config.steps

    def evaluate(self, policy, env_steps: int) -> dict[str, float]:
        """Run the held-out episodes; the columns of metrics.csv they fill. Moves the next evaluation on."""
        returns = episode_returns_on(policy, self.config, self.robots)
        self.next_at = (env_steps // self.config.eval_every + 1) * self.config.eval_every
        return {"eval_score": score(returns, self.config.eval_score), "eval_mean": float(np.mean(returns)),
                "eval_min": float(np.min(returns))}

    def improved(self, eval_score: float) -> bool:
        if math.isfinite(eval_score) and eval_score > self.best_score:
            self.best_score = eval_score
            return True
        return False

    def state_dict(self) -> dict:
        return {"next_at": self.next_at, "best_score": self.best_score}

    def load_state_dict(self, state: dict) -> None:
        self.next_at, self.best_score = int(state["next_at"]), float(state["best_score"])


def episode_returns_on(policy, config: Config, robots: list[dict[str, float]]) -> list[float]:
    """One deterministic episode on each robot, all in one vector env of the run's backend, the policy acting on
    the whole batch at once."""
    from .envs import make_vector_env
    from .episodes import episode_returns
    from .physics import set_physics
    from .randomization import policy_context

    venv = make_vector_env(config.env_id, len(robots), backend=config.env_backend, threads=config.env_threads,
                           env_kwargs=config.env_kwargs, flatten_observations=config.flatten_observations,
                           obs_history=config.obs_history, physics_context=policy_context(config))
    try:
        names = list(dict.fromkeys(n for robot in robots for n in robot))
        if names:  # set before the reset, which is when the factors take effect
            set_physics(venv, {n: np.array([robot.get(n, 1.0) for robot in robots]) for n in names})
        per_env = episode_returns(venv, policy, [EVAL_SEED + i for i in range(len(robots))],
                                  np.ones(len(robots), dtype=int), True, block=len(robots))
    finally:
        venv.close()
    return [r[0] for r in per_env]


def make_validation(config: Config) -> Validation | None:
    return Validation(config) if config.eval_every else None
