"""Domain randomisation while sampling: physics scale factors drawn at every episode start, observation
noise, action noise and action delay.

What is drawn, and from which generator, never depends on the backend or on the order envs finish:

- each env has its own generator, seeded from (seed, env index in the run), advanced only when that env starts
  an episode: it draws one factor per randomised parameter (in the order ``--randomize`` names them), then the
  episode's action delay if a delay range is given;
- one generator for the per-step noise draws the whole batch's observation noise ``[N, obs_dim]`` (and action
  noise ``[N, act_dim]``) every step, and the noise of ended episodes' final observations in env order.

A factor is one number per env and parameter: every element of the field (every body's mass...) is scaled by
it, as ``robopg.physics`` does with a ``(num_envs,)`` factor. Factors reach the env through ``set_physics``,
after the env reset for its new episode (with SAME_STEP autoreset the reset happens inside the step that ended
the previous episode), so they act from the episode's first step on.

With ``--randomize-nominal P`` an episode start first draws one uniform number: below P, the episode is the
nominal robot (every factor 1) and nothing more is drawn for its physics; otherwise its factors are drawn as
without it. Without the option no such number is drawn, so every draw is what it was.

With ``--randomize-focus`` (``robopg.focus``) an episode start first draws its cell of the physics ranges, from the
probabilities the learner sent for this iteration, then its factors uniformly within that cell: one draw more per
episode start than without focus.

A ramp (``--randomize-ramp STEPS``) is a curriculum: the physics ranges widen linearly with the run's env steps,
from the nominal robot (every factor 1) to their full width at STEPS. The draw is the same uniform number, shrunk
towards 1 (for log-uniform ranges, in log space), so a ramp changes what is drawn, never how many draws are made.
``--randomize-after STEPS`` holds the width at 0 (the nominal robot, the same draws made) for the run's first STEPS
env steps, then opens the ranges: at once, or over the ramp's STEPS after it. Pretraining on the nominal robot, or
with ``--randomize-start mass=1.5`` on another: the ramp then widens the ranges from that robot's factors (1 for
the parameters it does not name), and before the ranges open every episode runs it. ``mass=1.5;mass=0.5`` names
several: while the ranges are not fully open an episode start draws one of them (one draw more), uniformly, and
widens from it. ``mass=1.5;mass=0.5@1000000`` is a schedule: the light robot joins the draw from env step 1,000,000
on (the width's clock, so Ray workers and resumed runs agree on it). The nominal mix (``--randomize-nominal``)
stays the nominal robot.

The delayed action: the robot receives the action chosen ``k`` control steps earlier; for an episode's first
``k`` steps, zeros (the motors at rest). The policy's own sample is what the rollout stores, so the policy
gradient stays that of the density it sampled from; noise, delay and clipping belong to the environment.
"""

from __future__ import annotations

import numpy as np

from .config import parse_balance, parse_delay, parse_gain_start, parse_randomize, parse_start_schedule
from .errors import EnvError
from .focus import Cells
from .physics import get_physics, set_physics

_ENV_STREAM, _NOISE_STREAM = 0x52D1, 0x4E01  # tags that keep these generators apart from any other seeded one


def seeded_generator(seed: int, *keys: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed & 0xFFFFFFFF, *keys])))


class Randomizer:
    """Draws and applies one vector env's randomisation. ``first_env_index`` is the index of its first env in
    the run (a Ray worker holds envs first_env_index, first_env_index + 1, ...)."""

    def __init__(self, spec: str, obs_noise: float, action_noise: float, action_delay: str, num_envs: int,
                 seed: int, first_env_index: int = 0, ramp_steps: int = 0, focus_bins: int = 0,
                 nominal: float = 0.0, after_steps: int = 0, start: str = ""):
        self.ranges = parse_randomize(spec)           # physics name -> (lo, hi, 'uniform' | 'log')
        self.names = tuple(self.ranges)
        self.obs_noise, self.action_noise = float(obs_noise), float(action_noise)
        self.delay_range = parse_delay(action_delay)
        self.num_envs, self.first_env_index = num_envs, first_env_index
        self.factors = np.ones((num_envs, len(self.names)))
        self.delay = np.full(num_envs, self.delay_range[0], dtype=np.int64)
        self._history: np.ndarray | None = None       # [N, max delay + 1, *action shape], newest last
        self._context: np.ndarray | None = None
        self.nominal = float(nominal) if self.names else 0.0  # the fraction of starts at the nominal robot
        # The fraction of each physics range that episodes starting now draw from (1 without a ramp or a start
        # after the run's first steps).
        self.ramp_steps, self.after_steps = int(ramp_steps), int(after_steps)
        self.width = self._width(0)
        # The robot the ranges widen from (--randomize-start), in each parameter's draw space (log for log-uniform).
        # One row per start robot ([R, params]; the nominal robot when none is given), and the env step each
        # joins the others from (ROBOT@STEPS).
        schedule = parse_start_schedule(start) or [({}, 0)]
        self.start_at = np.array([[np.log(robot.get(n, 1.0)) if self.ranges[n][2] == "log" else robot.get(n, 1.0)
                                   for n in self.names] for robot, _ in schedule])
        self.start_joins = np.array([joins for _, joins in schedule])
        self.start_pool = self._pool(0)
        # --randomize-focus: the cells episode starts draw from, and this iteration's probabilities (uniform
        # until the learner sends its own).
        self.cells = Cells(spec, focus_bins) if focus_bins and self.names else None
        self.cell_probs = None if self.cells is None else np.full(self.cells.count, 1.0 / self.cells.count)
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self._env_rngs = [seeded_generator(seed, _ENV_STREAM, self.first_env_index + i) for i in range(self.num_envs)]
        self._noise_rng = seeded_generator(seed, _NOISE_STREAM, self.first_env_index)

    @property
    def context_dim(self) -> int:
        """Inputs a privileged value function gets: the log of each factor (0 at nominal), and the delay if drawn."""
        return len(self.names) + (self.delay_range[0] != self.delay_range[1])

    def context(self) -> np.ndarray:
        """``[N, context_dim]`` float32: what each env's current episode was drawn with (a fresh array)."""
        if self._context is None:
            ctx = np.log(self.factors).astype(np.float32)
            if self.context_dim > len(self.names):
                ctx = np.concatenate([ctx, self.delay[:, None].astype(np.float32)], axis=1)
            self._context = ctx
        return self._context.copy()

    def check_env(self, venv) -> None:
        """EnvError naming --randomize if ``venv`` has no per-env physics (not MuJoCo, or async)."""
        if self.names:
            try:
                get_physics(venv)
            except EnvError as e:
                raise EnvError(f"--randomize: {e}") from None

    def advance(self, env_steps: int, cell_probs: np.ndarray | None = None) -> None:
        """The run has taken ``env_steps`` env steps: set the ranges' width for the episodes that start next, and
        (--randomize-focus) the probabilities they draw their cells with."""
        self.width = self._width(env_steps)
        self.start_pool = self._pool(env_steps)
        if cell_probs is not None and self.cells is not None:
            cell_probs = np.asarray(cell_probs, dtype=float)
            if cell_probs.shape != (self.cells.count,):
                raise ValueError(f"{cell_probs.shape[0]} cell probabilities for {self.cells.count} cells")
            self.cell_probs = cell_probs

    def _width(self, env_steps: int) -> float:
        opened = env_steps - self.after_steps
        if opened < 0:
            return 0.0
        return min(1.0, opened / self.ramp_steps) if self.ramp_steps else 1.0

    def _pool(self, env_steps: int) -> np.ndarray:
        """The rows of ``start_at`` that episodes starting now draw from: the start robots that have joined."""
        return np.flatnonzero(self.start_joins <= env_steps)

    # --- episode starts ---------------------------------------------------------------------------------
    def start(self, venv, ids: np.ndarray) -> None:
        """New episodes begin in envs ``ids`` (already reset): draw their factors and delays and apply them."""
        ids = np.asarray(ids)
        if not len(ids):
            return
        lo_d, hi_d, w = *self.delay_range, self.width
        cdf = None if self.cells is None else np.cumsum(self.cell_probs)
        for i in ids:
            rng = self._env_rngs[i]
            if self.nominal and rng.uniform() < self.nominal:
                self.factors[i] = 1.0
            else:
                # Several start robots: one more draw, only while the ranges are not fully open.
                pool = self.start_pool
                at = self.start_at[pool[rng.integers(len(pool))] if len(pool) > 1 and w < 1 else pool[0]]
                if cdf is not None:
                    self._draw_in_cell(i, rng, cdf, w, at)
                else:
                    self._draw(i, rng, w, at)
            if hi_d > lo_d:
                self.delay[i] = rng.integers(lo_d, hi_d + 1)
        if self._history is not None:
            self._history[ids] = 0.0
        self._context = None
        if self.names:
            try:
                set_physics(venv, {name: self.factors[ids, j] for j, name in enumerate(self.names)}, ids)
            except EnvError as e:
                raise EnvError(f"--randomize: {e}") from None

    def _draw(self, i: int, rng: np.random.Generator, w: float, at: np.ndarray) -> None:
        for j, name in enumerate(self.names):
            lo, hi, dist = self.ranges[name]
            if dist == "log":
                self.factors[i, j] = _shrunk(rng.uniform(np.log(lo), np.log(hi)), True, w, at[j])
            else:
                self.factors[i, j] = _shrunk(rng.uniform(lo, hi), False, w, at[j])

    def _draw_in_cell(self, i: int, rng: np.random.Generator, cdf: np.ndarray, w: float, at: np.ndarray) -> None:
        cell = min(int(np.searchsorted(cdf, rng.uniform(0.0, cdf[-1]), side="right")), len(cdf) - 1)
        low, high = self.cells.bounds(cell)
        for j in range(len(self.names)):
            self.factors[i, j] = _shrunk(rng.uniform(low[j], high[j]), self.cells.log[j], w, at[j])

    # --- every step ---------------------------------------------------------------------------------
    def observe(self, obs: np.ndarray) -> np.ndarray:
        """The observations the policy sees (float32, ``[N, obs_dim]``)."""
        if self.obs_noise > 0:
            obs = (obs + self.obs_noise * self._noise_rng.standard_normal(obs.shape)).astype(np.float32)
        return obs

    def observe_final(self, rows: np.ndarray) -> np.ndarray:
        """Ended episodes' final observations (``[k, obs_dim]``, in env order), with their own noise draws."""
        rows = np.asarray(rows, dtype=np.float64)
        if self.obs_noise > 0:
            rows = rows + self.obs_noise * self._noise_rng.standard_normal(rows.shape)
        return rows.astype(np.float32)

    def act(self, env_action: np.ndarray, low: np.ndarray | None, high: np.ndarray | None) -> np.ndarray:
        """The actions the robots receive now: the policy's (already clipped) actions of ``delay`` steps ago,
        plus noise, clipped to the action bounds (``low``/``high``; None for discrete actions)."""
        if self.delay_range[1] > 0:
            if self._history is None:
                self._history = np.zeros((self.num_envs, self.delay_range[1] + 1, *env_action.shape[1:]),
                                         env_action.dtype)
            h = self._history
            h[:, :-1] = h[:, 1:]
            h[:, -1] = env_action
            env_action = h[np.arange(self.num_envs), h.shape[1] - 1 - self.delay]
        if self.action_noise > 0 and low is not None:
            noise = self.action_noise * self._noise_rng.standard_normal(env_action.shape)
            env_action = np.clip(env_action + noise, low, high).astype(env_action.dtype)
        return env_action

    # --- exact state, for resume -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"env_rngs": [r.bit_generator.state for r in self._env_rngs],
                "noise_rng": self._noise_rng.bit_generator.state, "factors": self.factors.copy(),
                "delay": self.delay.copy(), "history": None if self._history is None else self._history.copy()}

    def load_state_dict(self, state: dict) -> None:
        if len(state["env_rngs"]) != self.num_envs or state["factors"].shape != self.factors.shape:
            raise ValueError("saved randomiser state does not match this run's --randomize and env count")
        for r, s in zip(self._env_rngs, state["env_rngs"]):
            r.bit_generator.state = s
        self._noise_rng.bit_generator.state = state["noise_rng"]
        self.factors[:] = state["factors"]
        self.delay[:] = state["delay"]
        self._context = None
        self._history = None if state["history"] is None else state["history"].copy()


def _shrunk(x: float, log: bool, w: float, start: float) -> float:
    """The factor of draw ``x`` at ramp width ``w``: shrunk towards the start robot's factor, ``start`` (both in
    log space for log-uniform ranges; the nominal robot: 0 there, 1 otherwise)."""
    # (s + (x - s) is not x in floating point: full width keeps the draws without a ramp to the bit; and for
    # the nominal start, 0 + w * (x - 0) is w * x, what it drew before --randomize-start existed.)
    if w == 1.0:
        return np.exp(x) if log else x
    return np.exp(start + w * (x - start)) if log else start + w * (x - start)


def context_dim(config) -> int:
    """Numbers in an episode's context (``Randomizer.context``): a log factor per randomised parameter, and the
    delay if one is drawn."""
    lo, hi = parse_delay(config.action_delay)
    return len(parse_randomize(config.randomize)) + (lo != hi)


def critic_context_dim(config) -> int:
    """Inputs a --critic-obs privileged (or blind) value function gets beyond the observation (0 for a plain one)."""
    return 0 if getattr(config, "critic_obs", "obs") == "obs" else context_dim(config)


def estimate_dim(config) -> int:
    """Numbers in a --policy-obs estimated policy's estimate of its episode's context (0 for a plain policy)."""
    return context_dim(config) if getattr(config, "policy_obs", "obs") == "estimated" else 0


def gain_start_powers(config) -> list[float]:
    """--action-gain-start as one power per number of the physics estimate, in its order (0 for a factor it does
    not name, and for a drawn delay); empty without the option."""
    start = parse_gain_start(getattr(config, "action_gain_start", ""))
    if not start:
        return []
    powers = [start.get(name, 0.0) for name in parse_randomize(config.randomize)]
    return powers + [0.0] * (estimate_dim(config) - len(powers))


def regions(config, context: np.ndarray, spec: str) -> np.ndarray | None:
    """The region of the ranges each context row's robot was drawn in, for ``spec`` in --balance-regions' form
    (--balance-regions, --physics-estimate-regions): ``context.shape[:-1]`` integers, None for an empty spec. Each
    named parameter's range is cut into its BINS equal parts, in the space it is drawn in (log for a :log range); a
    factor outside its range (a --randomize-start robot) counts in the part nearest to it."""
    balance = parse_balance(spec)
    if not balance:
        return None
    ranges = parse_randomize(config.randomize)
    region = np.zeros(context.shape[:-1], dtype=np.int64)
    for name, bins in balance.items():
        lo, hi, dist = ranges[name]
        log_factor = context[..., list(ranges).index(name)].astype(np.float64)
        x, a, b = (log_factor, np.log(lo), np.log(hi)) if dist == "log" else (np.exp(log_factor), lo, hi)
        part = np.floor((x - a) / (b - a) * bins) if b > a else np.zeros_like(x)
        region = region * bins + np.clip(part, 0, bins - 1).astype(np.int64)
    return region


def nominal(config, context: np.ndarray) -> np.ndarray:
    """``context.shape[:-1]`` booleans: the rows whose robot is the nominal one (every --randomize factor exactly 1,
    as --randomize-nominal starts it; a drawn robot is never exactly that)."""
    return np.all(context[..., :len(parse_randomize(config.randomize))] == 0, axis=-1)


def policy_context(config) -> tuple[str, ...]:
    """The physics parameters whose log factors a --policy-obs privileged policy reads after its observation, in
    order (none for any other policy): what its evaluation envs append (``robopg.envs.context``)."""
    return tuple(parse_randomize(config.randomize)) if getattr(config, "policy_obs", "obs") == "privileged" else ()


def make_randomizer(config, num_envs: int, seed: int, first_env_index: int = 0, venv=None) -> Randomizer | None:
    """The config's randomiser (checked against ``venv`` if given), or None when it samples the nominal robot
    (nothing then changes, to the bit)."""
    if not config.randomized():
        return None
    r = Randomizer(config.randomize, config.obs_noise, config.action_noise, config.action_delay, num_envs, seed,
                   first_env_index, config.randomize_ramp, config.randomize_bins if config.randomize_focus else 0,
                   config.randomize_nominal, config.randomize_after, config.randomize_start)
    if venv is not None:
        r.check_env(venv)
    return r
