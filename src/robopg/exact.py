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

    def visitation(self, theta: np.ndarray) -> np.ndarray:
        """d(s) = E[number of steps taken in s per episode] (undiscounted, terminal states 0): the state
        distribution, unnormalised, that a batch of sampled steps averages over; sum(d) = E[length]."""
        pi = _softmax(theta)
        live = ~self.terminal
        P_live = np.einsum("sa,sat->st", pi, self.P) * live[None, :] * live[:, None]
        mu = self.mu0 * live
        if self.horizon is None:
            return np.linalg.solve((np.eye(self.num_states) - P_live).T, mu)
        d, total = mu, np.zeros(self.num_states)
        for _ in range(self.horizon):
            total += d
            d = d @ P_live
        return total

    def fisher(self, theta: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """[S*A, S*A]: sum_s w(s) E_{a~pi(.|s)}[grad log pi grad log pi'], block-diagonal with blocks
        w(s) (diag(pi_s) - pi_s pi_s'); ``weights`` w default to the visitation d (then F^+ grad J is the
        natural gradient of Kakade, 2002)."""
        pi = _softmax(theta)
        w = self.visitation(theta) if weights is None else np.asarray(weights, dtype=np.float64)
        S, A = self.num_states, self.num_actions
        F = np.zeros((S * A, S * A))
        for s in range(S):
            F[s * A:(s + 1) * A, s * A:(s + 1) * A] = w[s] * (np.diag(pi[s]) - np.outer(pi[s], pi[s]))
        return F

    def kl(self, theta_old: np.ndarray, theta_new: np.ndarray, weights: np.ndarray | None = None) -> float:
        """sum_s w(s) KL(pi_old(.|s) || pi_new(.|s)) / sum_s w(s), exactly; w defaults to the old policy's
        visitation d (the mean KL over the states it visits, TRPO's constraint)."""
        p, q = _softmax(theta_old), _softmax(theta_new)
        w = self.visitation(theta_old) if weights is None else np.asarray(weights, dtype=np.float64)
        per_state = (p * (np.log(p) - np.log(q))).sum(-1)
        return float((w * per_state).sum() / w.sum())

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


def gridworld(size: int = 4, slip: float = 0.1, horizon: int | None = None) -> TabularMDP:
    """A size x size grid; start at the top-left corner, the goal (terminal, +10) at the bottom-right, a
    pit (terminal, -10) beside it; every step costs 1. Actions up/right/down/left slip to a random
    other direction with probability ``slip``."""
    n = size * size
    S = n + 2  # two absorbing terminal states: goal and pit
    goal, pit = n, n + 1
    goal_cell, pit_cell = n - 1, n - 2
    moves = [(-1, 0), (0, 1), (1, 0), (0, -1)]

    def dest(cell: int, move: int) -> int:
        r, c = divmod(cell, size)
        dr, dc = moves[move]
        r2, c2 = min(max(r + dr, 0), size - 1), min(max(c + dc, 0), size - 1)
        nxt = r2 * size + c2
        return goal if nxt == goal_cell else pit if nxt == pit_cell else nxt

    P = np.zeros((S, 4, S))
    R = np.full((S, 4), -1.0)
    for cell in range(n):
        for a in range(4):
            for m in range(4):
                P[cell, a, dest(cell, m)] += (1 - slip) if m == a else slip / 3
            R[cell, a] += 10.0 * P[cell, a, goal] - 10.0 * P[cell, a, pit]
    for t in (goal, pit):
        P[t, :, t] = 1.0
        R[t] = 0.0
    mu0 = np.zeros(S)
    mu0[0] = 1.0
    terminal = np.zeros(S, dtype=bool)
    terminal[[goal, pit]] = True
    name = f"gridworld{size}" + (f"-H{horizon}" if horizon else "")
    return TabularMDP(P, R, mu0, terminal, 1.0, horizon, 0.0, name)


@dataclass
class LQR:
    """Linear-quadratic regulator with a linear Gaussian policy u = -K x + sigma * eps.

    x_{t+1} = A x_t + B u_t + w_t, w ~ N(0, W); reward r_t = -(x'Qx + u'Ru); x_0 ~ N(0, X0).
    Episodic variant: after every step the episode terminates with probability ``p_end`` (a
    state-independent termination). Time-limited variant: ``horizon`` H steps.
    J(K) in closed form: with M = A - BK, the second moment S_t = E[x_t x_t'] follows
    S_{t+1} = M S_t M' + sigma^2 BB' + W, and E[cost_t] = tr((Q + K'RK) S_t) + sigma^2 tr(R).
    Episodic: J = -sum_t c^t E[cost_t] with c = 1 - p_end, summed in closed form through the discrete
    Lyapunov equation P = (Q + K'RK) + c M'PM (solved as a linear system; scipy checks it in the tests).
    """

    A: np.ndarray
    B: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    W: np.ndarray
    X0: np.ndarray
    sigma: float = 0.5
    p_end: float = 0.05
    horizon: int | None = None
    name: str = "lqr"
    gamma: float = 1.0

    @property
    def shape(self) -> tuple[int, int]:
        return self.B.shape[1], self.A.shape[0]  # K is [m, n]

    def objective(self, K: torch.Tensor) -> torch.Tensor:
        t = lambda x: torch.as_tensor(x, dtype=K.dtype)  # noqa: E731
        A, B, Q, R, W, X0 = map(t, (self.A, self.B, self.Q, self.R, self.W, self.X0))
        M = A - B @ K
        C = Q + K.T @ R @ K
        noise = self.sigma ** 2 * B @ B.T + W
        u_cost = self.sigma ** 2 * torch.trace(R)
        if self.horizon is not None:
            total, S = K.new_zeros(()), X0
            for _ in range(self.horizon):
                total = total + torch.trace(C @ S) + u_cost
                S = M @ S @ M.T + noise
            return -total
        c = 1.0 - self.p_end
        n = A.shape[0]
        # vec(P) = (I - c M'(x)M')^{-1} vec(C): the Lyapunov equation as one linear solve.
        P = torch.linalg.solve(torch.eye(n * n, dtype=K.dtype) - c * torch.kron(M.T, M.T),
                               C.reshape(-1, 1)).reshape(n, n)
        # With P = C + c M'PM: sum_t c^t tr(C S_t) = tr(P X0) + c/(1-c) tr(P noise), since S_t grows by the
        # same noise every step and tr(C M^k S M'^k) sums to tr(P S).
        return -(torch.trace(P @ X0) + c / (1 - c) * torch.trace(P @ noise) + u_cost / (1 - c))

    def gradient(self, K: np.ndarray) -> np.ndarray:
        k = torch.tensor(K, dtype=torch.float64, requires_grad=True)
        self.objective(k).backward()
        return k.grad.numpy()

    def sample(self, K: np.ndarray, num_episodes: int, rng: np.random.Generator, max_steps: int = 10_000):
        """Episodes in the [T, N] layout; also returns states [T, N, n] and noise eps [T, N, m]."""
        n_x = self.A.shape[0]
        x = rng.multivariate_normal(np.zeros(n_x), self.X0, size=num_episodes)
        chol_w = np.linalg.cholesky(self.W + 1e-12 * np.eye(n_x))
        cols = {k: [] for k in ("states", "eps", "rewards", "next_states", "terminated", "truncated", "mask")}
        active = np.ones(num_episodes, dtype=bool)
        limit = self.horizon or max_steps
        for t in range(limit):
            eps = rng.standard_normal((num_episodes, self.B.shape[1]))
            u = -x @ K.T + self.sigma * eps
            r = -(np.einsum("ni,ij,nj->n", x, self.Q, x) + np.einsum("ni,ij,nj->n", u, self.R, u))
            x2 = x @ self.A.T + u @ self.B.T + rng.standard_normal((num_episodes, n_x)) @ chol_w.T
            if self.horizon is None:
                term = (rng.random(num_episodes) < self.p_end) & active
                trunc = np.zeros(num_episodes, dtype=bool)
            else:
                term = np.zeros(num_episodes, dtype=bool)
                trunc = active & (t == limit - 1)
            for k, v in (("states", x), ("eps", eps), ("rewards", np.where(active, r, 0.0)), ("next_states", x2),
                         ("terminated", term), ("truncated", trunc), ("mask", active.copy())):
                cols[k].append(v)
            active = active & ~term & ~trunc
            x = x2
            if not active.any():
                break
        if active.any():
            raise RuntimeError(f"{self.name}: episodes did not end within {max_steps} steps")
        return {k: np.stack(v) for k, v in cols.items()}

    def state_moment(self, K: np.ndarray) -> tuple[np.ndarray, float]:
        """(D, T): D = sum_t c^t E[x_t x_t'] (c = 1 - p_end, each step's survival), the second moment of
        the states a batch visits, unnormalised, and T = sum_t c^t = E[length]. Episodic variant only.
        From S_{t+1} = M S_t M' + N: D = X0 + c M D M' + c/(1-c) N, one linear solve."""
        if self.horizon is not None:
            raise ValueError("state_moment is for the episodic LQR")
        c, n = 1.0 - self.p_end, self.A.shape[0]
        M = self.A - self.B @ K
        N = self.sigma ** 2 * self.B @ self.B.T + self.W
        rhs = self.X0 + c / (1 - c) * N
        D = np.linalg.solve(np.eye(n * n) - c * np.kron(M, M), rhs.reshape(-1)).reshape(n, n)
        return D, 1.0 / (1 - c)

    def fisher(self, K: np.ndarray) -> np.ndarray:
        """[m*n, m*n]: sum_t c^t E[grad_K log pi grad_K log pi'] = kron(I_m, D) / sigma^2 (K flattened row by
        row): the score is -(eps / sigma) x', and E[eps eps'] = I."""
        D, _ = self.state_moment(K)
        return np.kron(np.eye(self.B.shape[1]), D) / self.sigma ** 2

    def step_scores(self, K: np.ndarray, batch: dict) -> np.ndarray:
        """[T, N, m*n]: grad_K log pi(u|x) = (eps / sigma) outer (-x)... for u = -Kx + sigma*eps:
        log pi = -|u + Kx|^2 / (2 sigma^2) + const, so d/dK = -((u + Kx) / sigma^2) x' = -(eps / sigma) x'."""
        g = -np.einsum("tni,tnj->tnij", batch["eps"] / self.sigma, batch["states"])
        return g.reshape(*g.shape[:2], -1)

    def values(self, K: np.ndarray, states: np.ndarray) -> np.ndarray:
        """V(x) of the episodic LQR: -(x'Px + const), exact; for the time-limited variant, the same
        quadratic form of the episodic problem (a good state-only baseline, not exact)."""
        Kt = torch.as_tensor(K, dtype=torch.float64)
        A, B = torch.as_tensor(self.A), torch.as_tensor(self.B)
        M = A - B @ Kt
        C = torch.as_tensor(self.Q) + Kt.T @ torch.as_tensor(self.R) @ Kt
        c = 1.0 - self.p_end
        n = A.shape[0]
        P = torch.linalg.solve(torch.eye(n * n, dtype=torch.float64) - c * torch.kron(M.T, M.T),
                               C.reshape(-1, 1)).reshape(n, n).numpy()
        noise = self.sigma ** 2 * self.B @ self.B.T + self.W
        const = c / (1 - c) * np.trace(P @ noise) + self.sigma ** 2 * np.trace(self.R) / (1 - c)
        return -(np.einsum("...i,ij,...j->...", states, P, states) + const)


def lqr(horizon: int | None = None, p_end: float = 0.05, sigma: float = 0.5) -> LQR:
    """A 2-D point mass (position, velocity) pushed by one force: a classic continuous-control LQR."""
    dt = 0.1
    A = np.array([[1.0, dt], [0.0, 1.0]])
    B = np.array([[0.0], [dt]])
    name = "lqr" + (f"-H{horizon}" if horizon else "")
    return LQR(A, B, np.eye(2), 0.1 * np.eye(1), 0.01 * np.eye(2), np.eye(2), sigma, p_end, horizon, name)


# --- a hidden per-episode context (the robot's randomised physics, in miniature) --------------------------
@dataclass
class HiddenContextMDP:
    """Each episode first draws a hidden context c ~ ``probs`` (one of ``mdps``: same states and actions, other
    dynamics and rewards), then runs in that MDP; the tabular policy pi(a|s) never sees c. Exactly,
    J(theta) = sum_c p(c) J_c(theta), and V(s, c) = V_c(s) is each context's own value: the privileged
    baseline a critic given the randomised physics learns. A baseline may depend on s and c (anything but the
    action), so sum_t grad log pi(a_t|s_t) (G_t - V_c(s_t)) stays unbiased."""

    mdps: list[TabularMDP]
    probs: np.ndarray
    name: str = "hidden-context"

    def __post_init__(self):
        first = self.mdps[0]
        assert all(m.P.shape == first.P.shape and m.gamma == first.gamma and m.horizon == first.horizon
                   for m in self.mdps), "contexts must share states, actions, gamma and horizon"
        self.probs = np.asarray(self.probs, dtype=np.float64)

    @property
    def gamma(self) -> float:
        return self.mdps[0].gamma

    def objective(self, theta: torch.Tensor) -> torch.Tensor:
        return sum(float(p) * m.objective(theta) for p, m in zip(self.probs, self.mdps))

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
        self.objective(t).backward()
        return t.grad.numpy()

    def context_values(self, theta: np.ndarray) -> np.ndarray:
        """[C, S]: V_c(s) under pi_theta."""
        return np.stack([m.values(theta) for m in self.mdps])

    def sample(self, theta: np.ndarray, num_episodes: int, rng: np.random.Generator) -> tuple[Episodes, np.ndarray]:
        """Episodes ``[T, N]`` and each episode's context ``[N]`` (drawn first, then its episode)."""
        contexts = rng.choice(len(self.mdps), size=num_episodes, p=self.probs)
        parts = [self.mdps[c].sample(theta, int((contexts == c).sum()), rng) for c in range(len(self.mdps))]
        horizon = max(p.states.shape[0] for p in parts)
        cols = {}
        for k in ("states", "actions", "rewards", "next_states", "terminated", "truncated", "mask"):
            arrays = [getattr(p, k) for p in parts]
            arrays = [np.concatenate([a, np.zeros((horizon - a.shape[0], a.shape[1]), a.dtype)]) for a in arrays]
            cols[k] = np.concatenate(arrays, axis=1)
        order = np.concatenate([np.flatnonzero(contexts == c) for c in range(len(self.mdps))])
        inverse = np.argsort(order)  # back to the order the contexts were drawn in
        return Episodes(**{k: v[:, inverse] for k, v in cols.items()}), contexts

    def episode_gradients(self, theta: np.ndarray, episodes: Episodes, psi: np.ndarray) -> np.ndarray:
        return self.mdps[0].episode_gradients(theta, episodes, psi)  # the policy, hence its score, ignores c


def hidden_context_chain(n: int = 5, reward_noise: float = 0.5) -> HiddenContextMDP:
    """Two corridors the policy cannot tell apart: a light robot (slip 0.1, goal 10, step cost -1) and a heavy,
    slippery one (slip 0.3, goal 40, step cost -4), each half the episodes."""
    return HiddenContextMDP([chain(n, 0.1, -1.0, 10.0, reward_noise=reward_noise),
                             chain(n, 0.3, -4.0, 40.0, reward_noise=reward_noise)], np.array([0.5, 0.5]),
                            f"hidden-context-chain{n}")
