"""Small MDPs whose objective J(theta) and gradient are known exactly, to prove estimators unbiased.

A ``TabularMDP`` has a tabular softmax policy pi(a|s) = softmax(theta[s]). J(theta) is computed exactly:
by a linear solve (episodic: every episode ends in a terminal state) or by propagating the state
distribution for H steps (time-limited). The true gradient is J's autograd gradient. ``sample`` draws
episodes in robopg's ``[T, N]`` batch layout, so ``robopg.estimators`` runs on them unchanged, and
``episode_gradients`` turns the per-step weights Psi into one policy-gradient sample per episode,
sum_t grad log pi(a_t|s_t) * Psi_t, using the closed form grad_theta[s] log pi(a|s) = onehot(a) - pi(.|s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Episodes:
    """N sampled episodes, ``[T, N]``; ``mask`` is False after an episode's end."""

    states: np.ndarray       # [T, N] int
    actions: np.ndarray      # [T, N] int
    rewards: np.ndarray      # [T, N] float
    next_states: np.ndarray  # [T, N] int
    terminated: np.ndarray   # [T, N] bool
    truncated: np.ndarray    # [T, N] bool
    mask: np.ndarray         # [T, N] bool


@dataclass
class TabularMDP:
    """P[s, a, s'] over all states; terminal states are absorbing and end the episode on entry.

    ``horizon``: None for episodic (needs every policy to terminate with probability one), else a time
    limit H (episodes still running after H steps are truncated).
    """

    P: np.ndarray          # [S, A, S]
    R: np.ndarray          # [S, A] expected reward; the sampled reward is R + reward_noise * N(0, 1)
    mu0: np.ndarray        # [S]
    terminal: np.ndarray   # [S] bool
    gamma: float = 1.0
    horizon: int | None = None
    reward_noise: float = 0.0
    name: str = "tabular"

    @property
    def num_states(self) -> int:
        return self.P.shape[0]

    @property
    def num_actions(self) -> int:
        return self.P.shape[1]

    # --- exact quantities (differentiable in theta) --------------------------------------------------
    def objective(self, theta: torch.Tensor) -> torch.Tensor:
        """J(theta) = E[sum_t gamma^t r_t], exactly."""
        pi = torch.softmax(theta, -1)
        P = torch.as_tensor(self.P, dtype=theta.dtype)
        R = torch.as_tensor(self.R, dtype=theta.dtype)
        live = torch.as_tensor(~self.terminal)
        P_pi = torch.einsum("sa,sat->st", pi, P)[live][:, live]   # transitions among non-terminal states
        r_pi = (pi * R).sum(-1)[live]
        mu = torch.as_tensor(self.mu0, dtype=theta.dtype)[live]
        if self.horizon is None:
            eye = torch.eye(int(live.sum()), dtype=theta.dtype)
            v = torch.linalg.solve(eye - self.gamma * P_pi, r_pi)
            return mu @ v
        total, d = theta.new_zeros(()), mu
        for t in range(self.horizon):
            total = total + self.gamma ** t * (d @ r_pi)
            d = d @ P_pi
        return total

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """The exact policy gradient dJ/dtheta, [S, A]."""
        th = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
        self.objective(th).backward()
        return th.grad.numpy()

    def values(self, theta: np.ndarray) -> np.ndarray:
        """The best state-only baseline a fitted V(s) can reach (zero at terminal states).

        Episodic: V^pi(s) by a linear solve. Time-limited: the value depends on the time left, V_t(s); a
        function of s alone fit by least squares to reward-to-go converges to the visitation-weighted mean
        sum_t d_t(s) V_t(s) / sum_t d_t(s), which is what this returns.
        """
        pi = _softmax(theta)
        P_pi = np.einsum("sa,sat->st", pi, self.P)
        r_pi = (pi * self.R).sum(-1)
        live = ~self.terminal
        v = np.zeros(self.num_states)
        if self.horizon is None:
            A = np.eye(int(live.sum())) - self.gamma * P_pi[live][:, live]
            v[live] = np.linalg.solve(A, r_pi[live])
            return v
        P_live = P_pi * live[None, :]  # entering a terminal state ends the episode
        v_t = [np.zeros(self.num_states)]
        for _ in range(self.horizon):  # backward: V_t = r + gamma P V_{t+1}
            v_t.append(np.where(live, r_pi + self.gamma * P_live @ v_t[-1], 0.0))
        v_t = v_t[::-1][:-1]  # v_t[t] for t = 0..H-1
        d, num, den = self.mu0 * live, np.zeros(self.num_states), np.zeros(self.num_states)
        for t in range(self.horizon):
            num += d * v_t[t]
            den += d
            d = d @ P_live
        v[den > 0] = num[den > 0] / den[den > 0]
        return v

    # --- Monte Carlo ---------------------------------------------------------------------------------
    def sample(self, theta: np.ndarray, num_episodes: int, rng: np.random.Generator,
               max_steps: int = 10_000) -> Episodes:
        pi = _softmax(theta)
        cum_pi = np.cumsum(pi, -1)
        cum_P = np.cumsum(self.P, -1)
        n = num_episodes
        s = _draw(np.broadcast_to(np.cumsum(self.mu0), (n, self.num_states)), rng)
        cols = {k: [] for k in ("states", "actions", "rewards", "next_states", "terminated", "truncated", "mask")}
        active = np.ones(n, dtype=bool)
        limit = self.horizon or max_steps
        for t in range(limit):
            a = _draw(cum_pi[s], rng)
            s2 = _draw(cum_P[s, a], rng)
            r = self.R[s, a] + (self.reward_noise * rng.standard_normal(n) if self.reward_noise else 0.0)
            term = self.terminal[s2] & active
            trunc = (~term) & active & (t == limit - 1)
            for k, v in (("states", s), ("actions", a), ("rewards", np.where(active, r, 0.0)),
                         ("next_states", s2), ("terminated", term), ("truncated", trunc), ("mask", active.copy())):
                cols[k].append(v)
            active = active & ~term & ~trunc
            s = s2
            if not active.any():
                break
        if self.horizon is None and active.any():
            raise RuntimeError(f"{self.name}: episodes did not end within {max_steps} steps")
        return Episodes(**{k: np.stack(v) for k, v in cols.items()})

    def episode_gradients(self, theta: np.ndarray, episodes: Episodes, psi: np.ndarray) -> np.ndarray:
        """[N, S*A]: sum over each episode's valid steps of grad log pi(a_t|s_t) * Psi_t."""
        pi = _softmax(theta)
        T, n = episodes.states.shape
        g = np.zeros((n, self.num_states, self.num_actions))
        cols = np.arange(n)
        for t in range(T):
            w = np.where(episodes.mask[t], psi[t], 0.0)
            s, a = episodes.states[t], episodes.actions[t]
            g[cols, s, :] -= w[:, None] * pi[s]
            g[cols, s, a] += w
        return g.reshape(n, -1)


def _softmax(theta: np.ndarray) -> np.ndarray:
    z = np.exp(theta - theta.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def _draw(cumulative: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row of a cumulative-probability table."""
    u = rng.random(cumulative.shape[0])[:, None]
    return np.minimum((u > cumulative).sum(-1), cumulative.shape[-1] - 1)


# --- problems ----------------------------------------------------------------------------------------

def chain(n: int = 5, slip: float = 0.1, step_cost: float = -1.0, goal_reward: float = 10.0,
          horizon: int | None = None, reward_noise: float = 0.5) -> TabularMDP:
    """A corridor of n states; 'right' moves toward the goal at the far end (terminal), 'left' back.
    With probability ``slip`` the move goes the other way. Every step costs, reaching the goal pays."""
    S = n + 1  # the last state is the terminal goal
    P = np.zeros((S, 2, S))
    R = np.full((S, 2), step_cost)
    for s in range(n):
        left, right = max(s - 1, 0), s + 1
        P[s, 0, left] += 1 - slip
        P[s, 0, right] += slip
        P[s, 1, right] += 1 - slip
        P[s, 1, left] += slip
        R[s, :] += goal_reward * P[s, :, n]
    P[n, :, n] = 1.0
    R[n] = 0.0
    mu0 = np.zeros(S)
    mu0[0] = 1.0
    terminal = np.zeros(S, dtype=bool)
    terminal[n] = True
    name = f"chain{n}" + (f"-H{horizon}" if horizon else "")
    return TabularMDP(P, R, mu0, terminal, 1.0, horizon, reward_noise, name)


def random_mdp(seed: int, num_states: int = 6, num_actions: int = 3, terminate_prob: float = 0.15,
               horizon: int | None = None) -> TabularMDP:
    """A random MDP from a seed: dense transitions, and in every state a ``terminate_prob`` chance
    (at least) to reach the terminal state, so every policy ends."""
    rng = np.random.default_rng(seed)
    S = num_states + 1
    P = np.zeros((S, num_actions, S))
    P[:num_states, :, :num_states] = rng.dirichlet(np.ones(num_states), size=(num_states, num_actions))
    P[:num_states] *= 1 - terminate_prob
    P[:num_states, :, num_states] = terminate_prob
    P[num_states, :, num_states] = 1.0
    R = np.zeros((S, num_actions))
    R[:num_states] = rng.normal(1.0, 1.0, size=(num_states, num_actions))
    mu0 = np.zeros(S)
    mu0[:num_states] = rng.dirichlet(np.ones(num_states))
    terminal = np.zeros(S, dtype=bool)
    terminal[num_states] = True
    name = f"random{seed}" + (f"-H{horizon}" if horizon else "")
    return TabularMDP(P, R, mu0, terminal, 1.0, horizon, 0.0, name)
