"""The estimator lab: bias, variance, cosine similarity and signal-to-noise of policy-gradient estimators,
measured on the same sampled trajectories (paired), on exact problems or on a robot's policy.

    result = measure("exact:chain", ["reinforce", "rtg", "rtg+value", "rtg+optimal"], batches=200,
                     batch_size=500)
    result = measure("Hopper-v5", [...], batches=50, batch_size=5000)        # a freshly initialised policy
    result = measure("runs/Hopper-v5/x/checkpoints/best.pt", [...])         # a trained one

Every estimate is the seed's estimator, (1/#episodes) sum_episodes sum_t grad log pi(a_t|s_t) Psi_t, over
batches of whole episodes (at least ``batch_size`` steps each), with gamma = 1 by default: then REINFORCE,
reward-to-go and every state-dependent baseline estimate the same gradient, of the undiscounted return.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import estimators as est
from . import exact, losses, stats
from .config import PRIVILEGED_CONTEXT_NOISE, ConfigError, parse_estimator_spec
from .gradients import optimal_baseline_gradient, per_step_scores
from .value_fit import fit_value, make_value_optimizer


@dataclass
class Batch:
    """Whole episodes in the [T, N] layout, with per-step score vectors of the valid steps (mask order)."""

    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    mask: np.ndarray
    scores: torch.Tensor                 # [n_valid, P] float64
    values: np.ndarray | None = None     # V(s_t), [T, N]
    next_values: np.ndarray | None = None
    # What the gradient itself costs, beyond Psi: one backward pass for an estimator that only reweights
    # log pi, per-step score vectors for the optimal baseline (zero for exact problems: closed form).
    backward_seconds: float = 0.0
    score_seconds: float = 0.0
    # A privileged V(s_t, c) that also sees the episode's randomised physics (``--randomize``), [T, N]
    priv_values: np.ndarray | None = None
    priv_next_values: np.ndarray | None = None
    # What the update-rule lab (``measure_algorithms``) re-evaluates log pi on: states [T, N] (int, or [T, N, n]
    # for the LQR) and actions [T, N] (the LQR's: its noise eps [T, N, m]).
    states: np.ndarray | None = None
    actions: np.ndarray | None = None

    @property
    def num_steps(self) -> int:
        return int(self.mask.sum())


# --- problems ------------------------------------------------------------------------------------------

class TabularProblem:
    """Batches hold a fixed number of episodes, about ``batch_size`` steps' worth: a batch closed by a
    stopping rule on its step count would make 1/#episodes a random ratio, biased by O(1/#episodes)."""

    def __init__(self, mdp: exact.TabularMDP, seed: int):
        self.mdp = mdp
        self.name = f"exact:{mdp.name}"
        self.gamma = mdp.gamma
        self.theta = np.random.default_rng(seed).normal(0, 0.5, size=(mdp.num_states, mdp.num_actions))
        self.true_gradient = mdp.gradient(self.theta).reshape(-1)
        self.layers = [("theta", mdp.num_states * mdp.num_actions)]
        self._v = mdp.values(self.theta)
        self.value_note = "exact state values (the best state-only baseline)"
        pilot = mdp.sample(self.theta, 4000, np.random.default_rng(seed + 12345))
        self.mean_length = float(pilot.mask.sum(0).mean())

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        eps = self.mdp.sample(self.theta, _episodes_for(batch_size, self.mean_length), rng)
        # grad_theta log pi(a|s) is onehot(a) - pi(.|s) in row s of theta, zero elsewhere.
        pi = exact._softmax(self.theta)
        s, a = eps.states[eps.mask], eps.actions[eps.mask]
        rows = np.arange(len(s))
        full = np.zeros((len(s), self.mdp.num_states, self.mdp.num_actions))
        full[rows, s] = -pi[s]
        full[rows, s, a] += 1.0
        flat = torch.as_tensor(full.reshape(len(s), -1))
        v = self._v
        return Batch(eps.rewards, eps.terminated, eps.truncated, eps.mask, flat, v[eps.states],
                     np.where(eps.truncated, 0.0, v[eps.next_states]), states=eps.states, actions=eps.actions)


class LQRProblem:
    def __init__(self, lqr: exact.LQR, seed: int):
        self.lqr = lqr
        self.name = f"exact:{lqr.name}"
        self.gamma = 1.0
        m, n = lqr.shape
        rng = np.random.default_rng(seed)
        # A stabilising but timid gain (the optimum is near [1, 1.5]), perturbed by the seed: the gradient is
        # large enough (|grad| ~ 27) that its direction can be seen through the noise.
        self.K = np.array([[0.5, 0.5]])[:m, :n] + rng.normal(0, 0.1, size=(m, n))
        self.true_gradient = lqr.gradient(self.K).reshape(-1)
        self.layers = [("K", m * n)]
        self.value_note = ("exact quadratic values of the episodic LQR" if lqr.horizon is None else
                           "the episodic LQR's quadratic values (a good, not exact, baseline)")
        self.mean_length = float(lqr.horizon or 1.0 / lqr.p_end)  # geometric episode length

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        b = _as_episodes(self.lqr.sample(self.K, _episodes_for(batch_size, self.mean_length), rng))
        scores = self.lqr.step_scores(self.K, {"eps": b.actions, "states": b.states})
        v = self.lqr.values(self.K, b.states)
        nv = np.where(b.truncated, 0.0, self.lqr.values(self.K, b.next_states))
        return Batch(b.rewards, b.terminated, b.truncated, b.mask, torch.as_tensor(scores[b.mask]), v, nv,
                     states=b.states, actions=b.actions)


class PolicyProblem:
    """A robot: a Gymnasium env with a robopg policy (freshly initialised from ``seed``, or loaded)."""

    def __init__(self, env_id: str, policy, seed: int, gamma: float, value_batches: int, batch_size: int,
                 name: str, num_envs: int = 8, backend: str = "auto", randomize: str = "",
                 context_noise: float = 0.0):
        from .api import trained_env_options
        from .envs import make_vector_env, resolve_backend
        from .policies import ObsNormalizer, ValueFunction
        from .randomization import Randomizer
        from .sampler import Sampler

        self.name, self.gamma, self.policy = name, gamma, policy
        self.true_gradient = None
        self.layers = [(n, p.numel()) for n, p in policy.named_parameters()]
        kw = trained_env_options(policy, env_id)  # a trained policy's env kwargs and flattening, if it has them
        # --randomize: physics factors drawn per episode, as in training; a second, privileged value function
        # sees them (fit on the same batches as the plain one, so the two baselines differ only in that input).
        randomizer = Randomizer(randomize, 0.0, 0.0, "0", num_envs, seed) if randomize else None
        # A --policy-obs privileged policy reads the true factors: from the draws, as in training, when this
        # randomises them; else from the env (the nominal robot).
        context_obs = bool(kw["physics_context"]) and randomizer is not None
        if context_obs:
            if tuple(randomizer.names) != kw.pop("physics_context"):
                raise ConfigError(f"--randomize: the policy reads the factors of {policy.config.randomize!r}: "
                                  "randomise those parameters, in that order")
        self.venv = make_vector_env(env_id, num_envs, backend=resolve_backend(env_id, backend, kw["env_kwargs"]),
                                    **kw)
        if randomizer is not None:
            randomizer.check_env(self.venv)
            self.name += f", randomised {randomize}"
        self.sampler = Sampler(self.venv, policy, batch_size, "episodes", seed, randomizer=randomizer,
                               context_obs=context_obs)
        self.value = self.priv = None
        self.value_note = "none (value_batches=0)"
        if value_batches > 0:
            # V gets its own normaliser so that fitting it leaves the measured policy untouched.
            # (the observations the sampler stores: a privileged policy's end with its factors)
            obs_dim, hidden = self.sampler.obs_dim, list(getattr(policy, "hidden_sizes", [64, 64]))
            self.value = ValueFunction(ObsNormalizer(obs_dim), hidden, "tanh")
            if randomizer is not None:
                self.priv = ValueFunction(ObsNormalizer(obs_dim), hidden, "tanh", randomizer.context_dim)
            self._fit_value(value_batches, context_noise)
            self.value_note = (f"a value network fit to reward-to-go (gamma={gamma}) on {value_batches} "
                               f"independent batches before measuring")
            if self.priv is not None and context_noise > 0:
                self.value_note += f"; the privileged one's context inputs blurred by N(0, {context_noise}^2) as it fit"

    def _fit_value(self, batches: int, context_noise: float) -> None:
        from .algorithms.weights import privileged_inputs

        obs_all, tgt_all, ctx_all = [], [], []
        for _ in range(batches):
            ro = self.sampler.collect()
            g = est.reward_to_go(ro.rewards, ro.terminated, ro.truncated, None, self.gamma)
            obs_all.append(ro.obs[ro.mask])
            tgt_all.append(g[ro.mask])
            if self.priv is not None:
                ctx_all.append(ro.context[ro.mask])
        obs = np.concatenate(obs_all)
        targets = np.concatenate(tgt_all)
        self._scale = float(targets.std()) or 1.0
        y = torch.as_tensor(targets / self._scale, dtype=torch.float32)
        rng_state = torch.get_rng_state()
        after_plain = None
        for value, x in ((self.value, obs), (self.priv, None if self.priv is None else privileged_inputs(
                obs, np.concatenate(ctx_all)))):
            if value is not None:
                torch.set_rng_state(rng_state)  # both fits shuffle alike (the plain one as it always did)
                getattr(value.normalizer, "inner", value.normalizer).update(obs)
                fit_value(value, make_value_optimizer(value, lr=1e-3), torch.as_tensor(x), y, epochs=30,
                          minibatch_size=512, context_noise=context_noise)
                after_plain = torch.get_rng_state() if after_plain is None else after_plain
        # The measured batches are sampled as they would be without the privileged critic or its noise.
        torch.set_rng_state(after_plain)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        ro = self.sampler.collect()
        obs = torch.as_tensor(ro.obs[ro.mask])
        actions = torch.as_tensor(ro.actions[ro.mask])
        t0 = time.perf_counter()
        log_prob, _ = self.policy.log_prob_entropy(obs, actions)
        torch.autograd.grad(log_prob.mean(), list(self.policy.parameters()))
        t1 = time.perf_counter()
        scores = per_step_scores(self.policy, obs, actions).double()
        t2 = time.perf_counter()
        from .algorithms.weights import privileged_inputs

        v, nv = self._values(self.value, ro.obs, ro.next_obs, ro.truncated)
        pv = pnv = None
        if self.priv is not None:
            pv, pnv = self._values(self.priv, privileged_inputs(ro.obs, ro.context),
                                   privileged_inputs(ro.next_obs, ro.context), ro.truncated)
        return Batch(ro.rewards, ro.terminated, ro.truncated, ro.mask, scores, v, nv, t1 - t0, t2 - t1, pv, pnv)

    def _values(self, value, obs, next_obs, truncated):
        if value is None:
            return None, None
        with torch.no_grad():
            v = value(torch.as_tensor(obs)).double().numpy() * self._scale
            nv = value(torch.as_tensor(next_obs)).double().numpy() * self._scale
        # Time-limit ends are the end of the measured (finite-horizon) objective: no bootstrap.
        return v, np.where(truncated, 0.0, nv)


def _as_episodes(d: dict) -> exact.Episodes:
    # LQR batches reuse the Episodes container: states are vectors, "actions" carry the noise eps.
    return exact.Episodes(d["states"], d["eps"], d["rewards"], d["next_states"], d["terminated"],
                          d["truncated"], d["mask"])


def _episodes_for(batch_size: int, mean_length: float) -> int:
    return max(2, round(batch_size / mean_length))


def make_problem(target: str, seed: int = 0, gamma: float = 1.0, value_batches: int = 10,
                 batch_size: int = 5000, backend: str = "auto", randomize: str = "",
                 context_noise: float = PRIVILEGED_CONTEXT_NOISE):
    """``exact:{chain,gridworld,random,lqr}[-H<steps>]``, a Gymnasium id, a run dir, or a checkpoint file."""
    if target.startswith("exact:"):
        spec = target[len("exact:"):]
        base, _, h = spec.partition("-H")
        horizon = int(h) if h else None
        if base == "chain":
            return TabularProblem(exact.chain(5, horizon=horizon), seed)
        if base == "gridworld":
            return TabularProblem(exact.gridworld(4, horizon=horizon), seed)
        if base == "random":
            return TabularProblem(exact.random_mdp(seed, horizon=horizon), seed)
        if base == "lqr":
            return LQRProblem(exact.lqr(horizon=horizon), seed)
        raise ConfigError(f"unknown exact problem {target!r}: use exact:chain, exact:gridworld, exact:random or "
                          "exact:lqr, optionally with -H<steps> for the time-limited variant")
    path = Path(target)
    if path.exists():
        from .api import load

        policy = load(path)
        torch.manual_seed(seed)  # the policy's action noise and V's shuffles: --seed decides them, as for an env id
        env_id = policy.config.env_id
        policy.hidden_sizes = list(policy.config.hidden_sizes)
        name = f"{env_id} ({path})"
        randomize = randomize or policy.config.randomize  # a randomised run is measured on its own randomisation
    else:
        from .envs import check_env_id, make_vector_env
        from .policies import make_policy
        from .presets import make_config

        check_env_id(target)
        env_id = target
        torch.manual_seed(seed)
        config = make_config(target, algorithm="pg")  # pg's network for the robot, whatever its default rule
        venv = make_vector_env(target, 1)
        policy = make_policy(config, venv.single_observation_space, venv.single_action_space)
        venv.close()
        policy.hidden_sizes = list(config.hidden_sizes)
        name = f"{env_id} (initial policy, seed {seed})"
    for p in policy.parameters():
        p.requires_grad_(True)
    if randomize and target.startswith("exact:"):
        raise ConfigError("--randomize: randomises a robot's physics, not an exact problem")
    return PolicyProblem(env_id, policy, seed, gamma, value_batches, batch_size, name, backend=backend,
                         randomize=randomize, context_noise=context_noise)


# --- estimates -----------------------------------------------------------------------------------------

def estimate(batch: Batch, estimator: str, baseline: str, gamma: float, lam: float) -> np.ndarray:
    """One gradient estimate from one batch: (1/#episodes) sum_t grad log pi(a_t|s_t) Psi_t."""
    values, next_values = batch.values, batch.next_values
    if baseline == "privileged":  # the value baseline, from the critic that also sees the physics
        if batch.priv_values is None:
            raise ConfigError(f"{estimator}+privileged needs a robot sampled with --randomize")
        baseline, values, next_values = "value", batch.priv_values, batch.priv_next_values
    needs_v = baseline == "value" or estimator == "gae"
    if needs_v and values is None:
        raise ConfigError(f"{estimator}+{baseline} needs a value function, which this problem has none of")
    psi, _ = est.weights(estimator, baseline, batch.rewards, batch.terminated, batch.truncated, batch.mask,
                         gamma, lam, values if needs_v else None, next_values if needs_v else None)
    ids = est.episode_ids(batch.terminated, batch.truncated)
    ids_valid = ids[batch.mask]
    num_episodes = len(np.unique(ids_valid))
    psi_t = torch.as_tensor(psi[batch.mask], dtype=torch.float64)
    if baseline == "optimal":
        # Re-number the episodes of this (sub-)batch 0..E-1 for the per-episode sums.
        _, dense = np.unique(ids_valid, return_inverse=True)
        g = optimal_baseline_gradient(batch.scores, psi_t, torch.as_tensor(dense))
    else:
        g = batch.scores.T @ psi_t
    return (g / num_episodes).numpy()


def _sub_batches(batch: Batch, size: int) -> list[Batch]:
    """Split a batch into groups of consecutive whole episodes, each of the same count, about ``size``
    steps' worth (a fixed count keeps 1/#episodes a constant; see TabularProblem)."""
    ids = est.episode_ids(batch.terminated, batch.truncated)
    order = np.unique(ids[batch.mask])
    per_group = max(1, round(len(order) * size / batch.num_steps))
    out = []
    for start in range(0, len(order) - per_group + 1, per_group):
        sub_mask = batch.mask & np.isin(ids, order[start:start + per_group])
        rows = torch.as_tensor(sub_mask[batch.mask])
        out.append(Batch(batch.rewards, batch.terminated, batch.truncated, sub_mask, batch.scores[rows],
                         batch.values, batch.next_values, priv_values=batch.priv_values,
                         priv_next_values=batch.priv_next_values))
    return out


# --- the measurement -----------------------------------------------------------------------------------

@dataclass
class Row:
    estimator: str
    batch_size: int
    num_estimates: int
    bias_norm: float
    bias_upper: float          # upper 1-alpha bound on ||E[estimate] - true gradient||
    bias_detected: bool        # a coordinate's error is significant (Bonferroni, alpha)
    total_variance: float      # trace of the covariance of one batch's estimate
    cosine_mean: float         # cosine(one batch's estimate, true gradient)
    cosine_std: float
    snr: float                 # ||true gradient||^2 / total variance
    seconds_per_estimate: float
    layer_variance: dict = field(default_factory=dict)


@dataclass
class Result:
    target: str
    truth: str                 # "exact" or how the reference was made
    value_baseline: str
    gamma: float
    lam: float
    rows: list[Row]
    true_gradient_norm: float

    def table(self) -> str:
        head = (f"{'estimator':<14}{'batch':>7}{'n':>5}{'total var':>12}{'var ratio':>10}{'bias':>10}"
                f"{'bias<=':>10}{'cos':>7}{'±':>6}{'SNR':>8}{'ms/est':>8}  biased?")
        main = max(r.batch_size for r in self.rows)
        rows = [r for r in self.rows if r.batch_size == main]
        ref = rows[0].total_variance
        lines = [f"target: {self.target}   true gradient: {self.truth} (norm {self.true_gradient_norm:.4g})",
                 f"value baseline: {self.value_baseline}   gamma={self.gamma} lam={self.lam}", head]
        for r in rows:
            lines.append(f"{r.estimator:<14}{r.batch_size:>7}{r.num_estimates:>5}{r.total_variance:>12.4g}"
                         f"{r.total_variance / ref:>10.3f}{r.bias_norm:>10.3g}{r.bias_upper:>10.3g}"
                         f"{r.cosine_mean:>7.3f}{r.cosine_std:>6.2f}{r.snr:>8.3g}"
                         f"{1000 * r.seconds_per_estimate:>8.2f}  {'YES' if r.bias_detected else 'no'}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)


def measure(target: str, estimator_specs: list[str], batches: int = 50, batch_size: int = 5000,
            batch_sizes: list[int] | None = None, gamma: float = 1.0, lam: float = 0.95, seed: int = 0,
            reference_batches: int | None = None, value_batches: int = 10, alpha: float = 1e-3,
            backend: str = "auto", randomize: str = "", context_noise: float = PRIVILEGED_CONTEXT_NOISE) -> Result:
    """Bias, variance, cosine and SNR of each estimator, on the same sampled batches (paired).

    ``batch_sizes``: smaller sizes measured by splitting each sampled batch into groups of whole episodes.
    ``reference_batches``: where no exact gradient exists, a reference is the mean of the lowest-variance
    unbiased estimator over this many *independent* batches (default 2 x ``batches``).
    """
    specs = [(s, *parse_estimator_spec(s, privileged=True)) for s in estimator_specs]
    if batches < 2:
        raise ConfigError("--batches: at least 2 batches are needed to measure a variance")
    if batch_size <= 0:
        raise ConfigError(f"--batch-size: must be positive, got {batch_size}")
    sizes = sorted({batch_size, *(batch_sizes or [])}, reverse=True)
    if sizes[-1] <= 0 or sizes[0] > batch_size:
        raise ConfigError(f"--batch-sizes: must lie in (0, --batch-size={batch_size}]")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: threads only add overhead (index_add_ is 50x slower on 2)
    try:
        return _measure(specs, sizes, target, batches, batch_size, gamma, lam, seed, reference_batches,
                        value_batches, alpha, backend, randomize, context_noise)
    finally:
        torch.set_num_threads(threads)


def _measure(specs, sizes, target, batches, batch_size, gamma, lam, seed, reference_batches, value_batches,
             alpha, backend, randomize="", context_noise=PRIVILEGED_CONTEXT_NOISE) -> Result:
    problem = make_problem(target, seed, gamma, value_batches, batch_size, backend, randomize, context_noise)
    if hasattr(problem, "gamma") and target.startswith("exact:"):
        gamma = problem.gamma
    rng = np.random.default_rng(seed + 1)
    est_by = {(s, b): [] for s, *_ in specs for b in sizes}
    seconds = {s: 0.0 for s, *_ in specs}
    for _ in range(batches):
        batch = problem.sample(batch_size, rng)
        for s, e, b in specs:
            t0 = time.perf_counter()
            est_by[(s, batch_size)].append(estimate(batch, e, b, gamma, lam))
            seconds[s] += time.perf_counter() - t0
            seconds[s] += batch.score_seconds if b == "optimal" else batch.backward_seconds
        for size in sizes[1:]:
            for sub in _sub_batches(batch, size):
                for s, e, b in specs:
                    est_by[(s, size)].append(estimate(sub, e, b, gamma, lam))

    truth = problem.true_gradient
    truth_se = None
    if truth is not None:
        truth_label = "exact"
    else:
        unbiased = [t for t in specs if t[1] != "gae" or lam == 1.0]
        if not unbiased:
            raise ConfigError("no unbiased estimator in the list to build a reference gradient from; add rtg")
        best = min(unbiased, key=lambda t: np.var(np.array(est_by[(t[0], batch_size)]), 0, ddof=1).sum())
        n_ref = reference_batches or 2 * batches
        ref = np.array([estimate(problem.sample(batch_size, rng), best[1], best[2], gamma, lam)
                        for _ in range(n_ref)])
        truth = ref.mean(0)
        truth_se = ref.std(0, ddof=1) / math.sqrt(n_ref)
        truth_label = f"reference: mean of {best[0]} over {n_ref} independent batches of {batch_size} steps"

    rows = []
    for s, *_ in specs:
        for size in sizes:
            G = np.array(est_by[(s, size)])
            rows.append(summarize(s, size, G, truth, truth_se, alpha, seconds[s] / batches,
                             problem.layers if size == batch_size else None))
    if hasattr(problem, "venv"):
        problem.venv.close()
    return Result(problem.name, truth_label, problem.value_note, gamma, lam, rows, float(np.linalg.norm(truth)))


def summarize(name: str, size: int, G: np.ndarray, truth: np.ndarray, truth_se: np.ndarray | None = None,
              alpha: float = 1e-3, secs: float = 0.0, layers: list | None = None) -> Row:
    """Bias (with its bound and a Bonferroni test), variance, cosine and SNR of estimates G [M, d]
    against ``truth`` (whose own standard error ``truth_se`` widens the bound when it is a reference)."""
    m, _ = G.shape
    bias = stats.bias_test(G, truth, alpha, truth_se)
    var = G.var(0, ddof=1)
    tn = float(np.linalg.norm(truth))
    cos = (G @ truth) / (np.linalg.norm(G, axis=1) * tn + 1e-300)
    layer_var = {}
    if layers:
        offset = 0
        for lname, n in layers:
            layer_var[lname] = float(var[offset:offset + n].sum())
            offset += n
    total = float(var.sum())
    return Row(name, size, m, bias.bias_norm, bias.bias_norm_upper, not bias.passed, total, float(cos.mean()),
               float(cos.std()), tn ** 2 / total if total > 0 else math.inf, secs, layer_var)


# --- files ---------------------------------------------------------------------------------------------

def write_outputs(result: Result, out_dir: str | Path) -> list[Path]:
    """summary.csv (one row per estimator and batch size), layers.csv, result.json and two figures."""
    import csv
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    cols = [f for f in Row.__dataclass_fields__ if f != "layer_variance"]
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in result.rows:
            w.writerow([getattr(r, c) for c in cols])
    written.append(out / "summary.csv")
    with open(out / "layers.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["estimator", "layer", "variance"])
        for r in result.rows:
            for k, v in r.layer_variance.items():
                w.writerow([r.estimator, k, v])
    written.append(out / "layers.csv")
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=1))
    written.append(out / "result.json")

    names = list(dict.fromkeys(r.estimator for r in result.rows))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), dpi=100)
    for name in names:
        rs = sorted((r for r in result.rows if r.estimator == name), key=lambda r: r.batch_size)
        x = [r.batch_size for r in rs]
        axes[0].plot(x, [r.total_variance for r in rs], "o-", label=name)
        axes[1].errorbar(x, [r.cosine_mean for r in rs], yerr=[r.cosine_std for r in rs], fmt="o-", capsize=3,
                         label=name)
        axes[2].plot(x, [r.bias_upper for r in rs], "o-", label=name)
    axes[0].set(xscale="log", yscale="log", xlabel="batch size (steps)", ylabel="total variance of the estimate",
                title="variance")
    axes[1].set(xscale="log", xlabel="batch size (steps)", ylabel="cosine to the true (or reference) gradient",
                title="direction (mean ± std over batches)")
    axes[2].set(xscale="log", yscale="log", xlabel="batch size (steps)",
                ylabel="upper bound on ||bias||", title=f"bias bound ({result.truth.split(':')[0]})")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    fig.suptitle(result.target)
    fig.tight_layout()
    fig.savefig(out / "batch_size.png")
    plt.close(fig)
    written.append(out / "batch_size.png")
    return written


# --- the update rules: how far one batch's step points from the exact gradient and natural gradient ----------

@dataclass
class AlgorithmRow:
    algorithm: str               # pg, npg, or ppo
    clip_range: float | None     # PPO's
    epochs: int                  # PPO: the step after this many epochs; pg and npg: 1
    cos_gradient_mean: float     # cosine(one batch's step, exact gradient)
    cos_gradient_std: float
    cos_natural_mean: float      # cosine(one batch's step, exact natural gradient F^+ grad J)
    cos_natural_std: float
    direction_variance: float    # trace of the covariance of the step's unit vector over batches


@dataclass
class AlgorithmResult:
    target: str
    estimator: str
    batch_size: int
    batches: int
    settings: str                # the rules' settings, as measured
    gradient_natural_cosine: float  # cosine(exact gradient, exact natural gradient): how different they are
    rows: list[AlgorithmRow]

    def table(self) -> str:
        lines = [f"target: {self.target}   Psi: {self.estimator}   {self.batches} batches of {self.batch_size} steps",
                 f"settings: {self.settings}",
                 f"cosine(exact gradient, exact natural gradient) = {self.gradient_natural_cosine:.3f}",
                 f"{'algorithm':<10}{'clip':>6}{'epochs':>7}{'cos grad':>10}{'±':>6}{'cos natural':>13}{'±':>6}"
                 f"{'var(unit step)':>16}"]
        for r in self.rows:
            clip = f"{r.clip_range:g}" if r.clip_range is not None else "-"
            lines.append(f"{r.algorithm:<10}{clip:>6}{r.epochs:>7}{r.cos_gradient_mean:>10.3f}{r.cos_gradient_std:>6.2f}"
                         f"{r.cos_natural_mean:>13.3f}{r.cos_natural_std:>6.2f}{r.direction_variance:>16.4g}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)


PPO_LAB = dict(lr=0.01, minibatches=4)  # the lab's PPO: Adam on the problem's own parameters


def measure_algorithms(target: str, algorithms: list[str], estimator_spec: str = "gae", batches: int = 50,
                       batch_size: int = 2000, clip_ranges: tuple[float, ...] = (0.1, 0.2, 0.3), epochs: int = 10,
                       damping: float = 0.1, cg_iters: int = 10, lam: float = 0.95, seed: int = 0) -> AlgorithmResult:
    """For each rule, the step one batch gives, against the exact gradient and natural gradient of an exact
    problem (``exact:...``): pg's estimate g; npg's CG(F_batch + damping I, g) with robopg's
    ``conjugate_gradient`` and the batch's per-step Fisher; PPO's parameter change after each of ``epochs``
    epochs of minibatch Adam on ``losses.clipped_surrogate_loss``, per clip range. Psi: ``estimator_spec``."""
    if not target.startswith("exact:"):
        raise ConfigError("--algorithms: the update rules are measured against exact gradients: use an exact:... "
                          "target")
    unknown = sorted(set(algorithms) - {"pg", "npg", "ppo"})
    if unknown:
        raise ConfigError(f"--algorithms: unknown {', '.join(unknown)} (measured: pg, npg, ppo)")
    problem = make_problem(target, seed)
    estimator, baseline = parse_estimator_spec(estimator_spec)
    truth, natural = problem.true_gradient, _exact_natural_gradient(problem)
    rng = np.random.default_rng(seed + 1)
    steps: dict[tuple[str, float | None, int], list[np.ndarray]] = {}
    for _ in range(batches):
        batch = problem.sample(batch_size, rng)
        psi, _ = est.weights(estimator, baseline, batch.rewards, batch.terminated, batch.truncated, batch.mask,
                             problem.gamma, lam, batch.values, batch.next_values)
        psi_t = torch.as_tensor(psi[batch.mask], dtype=torch.float64)
        g = (batch.scores.T @ psi_t / batch.num_steps).numpy()  # per step, as the update rules average
        if "pg" in algorithms:
            steps.setdefault(("pg", None, 1), []).append(g)
        if "npg" in algorithms:
            steps.setdefault(("npg", None, 1), []).append(_npg_step(problem, batch, g, damping, cg_iters))
        if "ppo" in algorithms:
            for clip in clip_ranges:
                for e, step in enumerate(_ppo_steps(problem, batch, psi_t, clip, epochs, rng), 1):
                    steps.setdefault(("ppo", clip, e), []).append(step)
    rows = [_algorithm_row(name, clip, e, np.array(d), truth, natural) for (name, clip, e), d in steps.items()]
    settings = (f"npg: damping {damping}, {cg_iters} CG iterations; ppo: Adam lr {PPO_LAB['lr']}, "
                f"{PPO_LAB['minibatches']} minibatches per epoch, clip ranges {', '.join(map(str, clip_ranges))}")
    return AlgorithmResult(problem.name, estimator_spec, batch_size, batches, settings, _cosine(truth, natural), rows)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))


def _algorithm_row(name, clip, epochs, D: np.ndarray, truth: np.ndarray, natural: np.ndarray) -> AlgorithmRow:
    cg = np.array([_cosine(d, truth) for d in D])
    cn = np.array([_cosine(d, natural) for d in D])
    unit = D / np.maximum(np.linalg.norm(D, axis=1, keepdims=True), 1e-300)
    return AlgorithmRow(name, clip, epochs, float(cg.mean()), float(cg.std()), float(cn.mean()), float(cn.std()),
                        float(unit.var(0, ddof=1).sum()))


def _exact_natural_gradient(problem) -> np.ndarray:
    """F^+ grad J with F weighted by the exact visitation (tabular) or state moments (LQR)."""
    if isinstance(problem, TabularProblem):
        F = problem.mdp.fisher(problem.theta)
    else:
        F = problem.lqr.fisher(problem.K)
    return np.linalg.pinv(F) @ problem.true_gradient


def _batch_fisher(problem, batch: Batch):
    """v -> F_batch v: the mean over the batch's steps of each state's exact Fisher (the expectation over
    actions in closed form, as robopg's KL-Hessian products compute it)."""
    if isinstance(problem, TabularProblem):
        pi = torch.as_tensor(exact._softmax(problem.theta))
        counts = torch.as_tensor(np.bincount(batch.states[batch.mask], minlength=pi.shape[0]), dtype=torch.float64)
        w = counts[:, None] / batch.num_steps

        def product(v: torch.Tensor) -> torch.Tensor:
            V = v.reshape(pi.shape)
            return (w * (pi * V - pi * (pi * V).sum(-1, keepdim=True))).reshape(-1)
        return product
    x = torch.as_tensor(batch.states[batch.mask])
    moment = x.T @ x / batch.num_steps / problem.lqr.sigma ** 2
    m, n = problem.lqr.shape
    return lambda v: (v.reshape(m, n) @ moment).reshape(-1)


def _npg_step(problem, batch: Batch, g: np.ndarray, damping: float, iters: int) -> np.ndarray:
    from .algorithms.natural import conjugate_gradient

    fisher = _batch_fisher(problem, batch)
    return conjugate_gradient(lambda v: fisher(v) + damping * v, torch.as_tensor(g), iters).numpy()


def _log_prob_of(problem, batch: Batch):
    """params -> log pi(a_t|s_t) [n] over the batch's steps, and the problem's parameters (flat, float64)."""
    if isinstance(problem, TabularProblem):
        s, a = torch.as_tensor(batch.states[batch.mask]), torch.as_tensor(batch.actions[batch.mask])
        shape = problem.theta.shape
        return (lambda p: torch.log_softmax(p.reshape(shape), -1)[s, a]), problem.theta.reshape(-1)
    x = torch.as_tensor(batch.states[batch.mask])
    sigma, K = problem.lqr.sigma, problem.K
    u = -x @ torch.as_tensor(K).T + sigma * torch.as_tensor(batch.actions[batch.mask])
    return (lambda p: -((u + x @ p.reshape(K.shape).T) ** 2).sum(-1) / (2 * sigma ** 2)), K.reshape(-1)


def _ppo_steps(problem, batch: Batch, psi: torch.Tensor, clip: float, epochs: int, rng) -> list[np.ndarray]:
    """theta_e - theta_old after each of ``epochs`` epochs of PPO from theta_old on this batch."""
    log_prob_of, start = _log_prob_of(problem, batch)
    theta = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    old = log_prob_of(theta).detach()
    optimizer = torch.optim.Adam([theta], lr=PPO_LAB["lr"])
    torch_rng = torch.Generator().manual_seed(int(rng.integers(2 ** 31)))
    out = []
    for _ in range(epochs):
        for rows in torch.randperm(len(psi), generator=torch_rng).tensor_split(PPO_LAB["minibatches"]):
            loss, _ = losses.clipped_surrogate_loss(log_prob_of(theta)[rows], old[rows], psi[rows], clip)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        out.append((theta.detach() - torch.as_tensor(start)).numpy())
    return out


def write_algorithm_outputs(result: AlgorithmResult, out_dir: str | Path) -> list[Path]:
    """algorithms.csv, algorithms.json and algorithms.png (PPO's drift over epochs per clip range, with pg's and
    npg's one-step cosines as lines)."""
    import csv
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cols = list(AlgorithmRow.__dataclass_fields__)
    with open(out / "algorithms.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in result.rows:
            w.writerow([getattr(r, c) for c in cols])
    (out / "algorithms.json").write_text(json.dumps(result.to_dict(), indent=1))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    for ax, key, title in ((axes[0], "cos_gradient_mean", "cosine to the exact gradient"),
                           (axes[1], "cos_natural_mean", "cosine to the exact natural gradient")):
        for clip in sorted({r.clip_range for r in result.rows if r.algorithm == "ppo"}):
            rs = [r for r in result.rows if r.algorithm == "ppo" and r.clip_range == clip]
            ax.plot([r.epochs for r in rs], [getattr(r, key) for r in rs], "o-", label=f"ppo, clip {clip:g}")
        for r in result.rows:
            if r.algorithm != "ppo":
                ax.axhline(getattr(r, key), ls="--", color="k" if r.algorithm == "pg" else "tab:red",
                           label=f"{r.algorithm} (one step)")
        ax.set(xlabel="PPO epochs on the batch", ylabel=f"mean {title}", title=title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{result.target}: one batch of {result.batch_size} steps, Psi = {result.estimator}")
    fig.tight_layout()
    fig.savefig(out / "algorithms.png")
    plt.close(fig)
    return [out / "algorithms.csv", out / "algorithms.json", out / "algorithms.png"]
