"""The training loop: sample -> weights -> update -> log -> checkpoint."""

from __future__ import annotations

import math
import pickle
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import checkpoint, estimators
from .config import Config
from .envs import make_vector_env
from .gradients import chunk_gradient_stats, optimal_baseline_gradient, per_step_scores
from .metrics import MetricsLog, Progress
from .optim import adam_step
from .policies import ValueFunction, make_policy
from .sampler import Rollout, Sampler


class TrainingInterrupted(Exception):
    """Raised by ``train`` after SIGINT/SIGTERM, once the checkpoint and metrics are written."""

    def __init__(self, run_dir: Path, iteration: int):
        super().__init__(f"interrupted at iteration {iteration}; resume with: robopg resume {run_dir}")
        self.run_dir, self.iteration = run_dir, iteration


class NonFiniteError(Exception):
    """Raised when the loss, gradient or parameters stop being finite; the last good checkpoint is kept."""


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


class RewardScaler:
    """Divides rewards by the running std of the discounted return (as SB3's VecNormalize does), so the
    value function sees targets of order one whatever the robot's reward scale."""

    def __init__(self, num_envs: int, gamma: float):
        self.gamma = gamma
        self.ret = np.zeros(num_envs)
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4

    def scale(self, rollout: Rollout) -> np.ndarray:
        for t in range(rollout.rewards.shape[0]):
            self.ret = self.ret * self.gamma + rollout.rewards[t]
            valid = self.ret[rollout.mask[t]]
            if valid.size:
                self._update(valid)
            self.ret[rollout.terminated[t] | rollout.truncated[t]] = 0.0
        return rollout.rewards / math.sqrt(self.var + 1e-8)

    def _update(self, x: np.ndarray) -> None:
        n, mean, var = x.size, x.mean(), x.var()
        delta, total = mean - self.mean, self.count + n
        self.mean += delta * n / total
        self.var = (self.var * self.count + var * n + delta ** 2 * self.count * n / total) / total
        self.count = total

    def state_dict(self) -> dict:
        return {"ret": torch.as_tensor(self.ret), "mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, s: dict) -> None:
        self.ret = s["ret"].numpy().copy()
        self.mean, self.var, self.count = s["mean"], s["var"], s["count"]


def policy_gradient_loss(log_prob: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """-mean(log pi(a|s) * Psi): its gradient is the (negated, per-step averaged) policy gradient."""
    return -(log_prob * psi).mean()


class Trainer:
    def __init__(self, config: Config, run_dir: Path):
        self.config = config.validate()
        self.run_dir = Path(run_dir)
        c = self.config
        torch.set_num_threads(c.torch_threads)
        _seed_everything(c.seed)
        # With Ray workers the envs live in the workers; one local env gives the spaces for the policy.
        self.venv = make_vector_env(c.env_id, 1 if c.workers else c.num_envs, c.vectorization, c.env_backend,
                                    c.env_threads)
        self.policy = make_policy(c, self.venv.single_observation_space, self.venv.single_action_space)
        # fused: one kernel for all parameters; for these small networks Adam's per-tensor dispatch
        # otherwise costs more than the arithmetic (0.95 -> 0.23 ms per step, measured).
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=c.lr, fused=True)
        self.value = None
        if c.baseline == "value":
            self.value = ValueFunction(self.policy.normalizer, list(c.hidden_sizes), c.activation)
            self.value_optimizer = torch.optim.Adam(self.value.net.parameters(), lr=c.value_lr, fused=True)
        self.say = print  # the progress display's, while train() runs
        if c.workers:
            from .distributed import RaySampler
            self.sampler = RaySampler(c, self.policy, say=lambda msg: self.say(msg))
        else:
            self.sampler = Sampler(self.venv, self.policy, c.batch_size, c.resolved_batch_mode(), c.seed)
        self.reward_scaler = RewardScaler(c.num_envs, c.gamma) if c.normalize_rewards else None
        self.iteration = 0
        self.env_steps = 0
        self.best_return = -math.inf
        self._unsaved_best: dict | None = None  # best.pt's payload, until the next checkpoint writes it
        self.last_return = math.nan
        self.wall_s = 0.0
        self._stop_signal: int | None = None

    # --- one iteration -------------------------------------------------------------------------------
    def update(self, rollout: Rollout) -> dict[str, float]:
        c, m = self.config, rollout.mask
        obs = torch.as_tensor(rollout.obs[m])
        actions = torch.as_tensor(rollout.actions[m])
        rewards = self.reward_scaler.scale(rollout) if self.reward_scaler else rollout.rewards
        values = next_values = None
        if self.value is not None:
            with torch.no_grad():
                values = self.value(torch.as_tensor(rollout.obs)).double().numpy()
                next_values = self.value(torch.as_tensor(rollout.next_obs)).double().numpy()
        psi, targets = estimators.weights(c.estimator, c.baseline, rewards, rollout.terminated,
                                          rollout.truncated, m, c.gamma, c.lam, values, next_values)
        if c.normalize_advantages:
            psi = estimators.normalize(psi, m, center=c.baseline != "optimal")
        psi_t = torch.as_tensor(psi[m], dtype=torch.float32)

        self.optimizer.zero_grad(set_to_none=True)
        log_prob, entropy = self.policy.log_prob_entropy(obs, actions)
        loss = policy_gradient_loss(log_prob, psi_t) - c.entropy_coef * entropy.mean()
        if not torch.isfinite(loss):
            raise NonFiniteError(f"non-finite policy loss ({loss.item()}) at iteration {self.iteration + 1}")
        grad_stats = {}
        if c.log_grad_stats and (self.iteration + 1) % c.log_grad_stats == 0:
            grad_stats = self._grad_stats(rollout, obs, actions, psi_t)
        if c.baseline == "optimal":
            self._optimal_baseline_step(rollout, obs, actions, psi_t)
            (-c.entropy_coef * entropy.mean()).backward()  # adds to the .grad the baseline step left
        else:
            loss.backward()
        params = [p for p in self.policy.parameters() if p.grad is not None]
        max_norm = c.max_grad_norm if c.max_grad_norm > 0 else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        if not math.isfinite(grad_norm):
            raise NonFiniteError(f"non-finite policy gradient at iteration {self.iteration + 1}")
        self.optimizer.step()

        out = {"policy_loss": loss.item(), "entropy": entropy.mean().item(), "grad_norm": grad_norm,
               "lr": self.optimizer.param_groups[0]["lr"], **grad_stats}
        if self.value is not None:
            out.update(self._fit_value(obs, torch.as_tensor(targets[m], dtype=torch.float32),
                                       torch.as_tensor(values[m], dtype=torch.float32)))
        # After the update, so the batch's log-probs were those of the policy that sampled it.
        self.policy.normalizer.update(rollout.obs[m])
        return out

    def _optimal_baseline_step(self, rollout: Rollout, obs, actions, psi_t) -> None:
        """Leave the loss gradient with the optimal per-parameter baseline in ``.grad``."""
        ids = estimators.episode_ids(rollout.terminated, rollout.truncated)[rollout.mask]
        scores = per_step_scores(self.policy, obs, actions)
        g = optimal_baseline_gradient(scores, psi_t, torch.as_tensor(ids)) / psi_t.shape[0]
        offset = 0
        for p in self.policy.parameters():
            n = p.numel()
            p.grad = -g[offset:offset + n].reshape(p.shape).to(p.dtype)  # the loss is the negated objective
            offset += n

    def _grad_stats(self, rollout: Rollout, obs, actions, psi_t) -> dict[str, float]:
        num_chunks = min(8, rollout.mask.shape[1])
        env_of_step = np.broadcast_to(np.arange(rollout.mask.shape[1]), rollout.mask.shape)[rollout.mask]
        return chunk_gradient_stats(self.policy, obs, actions, psi_t, torch.as_tensor(env_of_step % num_chunks),
                                    num_chunks)

    def _fit_value(self, obs: torch.Tensor, targets: torch.Tensor, old_values: torch.Tensor) -> dict:
        c = self.config
        n = obs.shape[0]
        size = max(1, n // c.value_minibatches)
        with torch.no_grad():
            x = self.value.normalizer(obs)  # once: the normaliser does not change while V fits
        losses = []
        for _ in range(c.value_epochs):
            # One gather per epoch; the minibatches are then contiguous slices of it (the same rows, in
            # the same order, as indexing each minibatch by its slice of the permutation).
            perm = torch.randperm(n)
            x_epoch, targets_epoch = x[perm], targets[perm]
            for start in range(0, n, size):
                rows = slice(start, start + size)
                losses.append(self.value.squared_error_grad(x_epoch[rows], targets_epoch[rows]))
                adam_step(self.value_optimizer)
        # Checked once, not per step (each check waits for the value): a non-finite loss raises before
        # the parameters it spoiled can reach a checkpoint.
        losses = torch.stack(losses)
        if not torch.isfinite(losses).all():
            raise NonFiniteError(f"non-finite value loss at iteration {self.iteration + 1}")
        var = float(targets.var())
        explained = 1.0 - float((targets - old_values).var()) / var if var > 0 else math.nan
        return {"value_loss": float(losses.mean()), "explained_variance": explained}

    # --- the loop ------------------------------------------------------------------------------------
    def train(self) -> Run:
        c = self.config
        resuming = self.iteration > 0
        log = MetricsLog(self.run_dir, c.tensorboard, keep_until=self.iteration if resuming else None)
        progress = Progress(c.steps, self.env_steps, c.log_every, c.env_id)
        self.say = progress.say
        where = f" on {c.workers} Ray workers" if c.workers else ""
        progress.say(f"{'resuming' if resuming else 'training'} {c.env_id} ({c.env_backend} backend, "
                     f"{c.num_envs} envs{where}, {c.estimator}+{c.baseline}) into {self.run_dir}")
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        wall_before, session_start = self.wall_s, time.monotonic()
        try:
            while self.env_steps < c.steps:
                t0 = time.monotonic()
                self._set_lr()
                rollout = self.sampler.collect()
                stats = self.update(rollout)
                self._check_finite()
                self.iteration += 1
                self.env_steps += rollout.num_steps
                self.wall_s = wall_before + time.monotonic() - session_start
                row = self._row(rollout, stats, time.monotonic() - t0)
                log.write(row)
                progress.update(row, rollout.num_steps)
                self._after_iteration(row)
                if self._stop_signal is not None:
                    self.save_checkpoint()
                    raise TrainingInterrupted(self.run_dir, self.iteration)
            self.save_checkpoint()
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
            self.say = print
            progress.close()
            log.close()
            self.close()
        from .plotting import plot_learning_curve
        plot_learning_curve(self.run_dir / "metrics.csv", self.run_dir / "learning_curve.png", c.env_id)
        return Run(self.run_dir, c, self.iteration, self.env_steps, self.last_return)

    def close(self) -> None:
        """Release the envs, and the Ray workers (and a Ray instance started for the run)."""
        self.sampler.close()
        if self.config.workers:
            self.venv.close()  # the one local env that gave the policy its spaces

    def _set_lr(self) -> None:
        c = self.config
        frac = 1.0 - self.env_steps / c.steps if c.lr_schedule == "linear" else 1.0
        for g in self.optimizer.param_groups:
            g["lr"] = c.lr * max(frac, 0.0)

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
                "value_loss": math.nan, "explained_variance": math.nan, **self.sampler.iteration_stats(), **stats}

    def _after_iteration(self, row: dict) -> None:
        if math.isfinite(row["return_mean"]) and row["return_mean"] > self.best_return:
            self.best_return = row["return_mean"]
            # Kept in memory and written with the next checkpoint: early in training the return improves
            # nearly every iteration, and a synced file write each time (1-5 ms on this project's machines,
            # far more on network file systems) would be paid on the training loop's hot path.
            self._unsaved_best = {"policy": {k: v.clone() for k, v in self.policy.state_dict().items()},
                                  "iteration": self.iteration, "env_steps": self.env_steps,
                                  "return_mean": self.best_return}
        if self.iteration % self.config.checkpoint_every == 0:
            self.save_checkpoint()

    def _check_finite(self) -> None:
        modules = [self.policy] + ([self.value] if self.value is not None else [])
        for mod in modules:
            for name, p in mod.named_parameters():
                if not torch.isfinite(p).all():
                    raise NonFiniteError(f"parameter {name} became non-finite at iteration "
                                         f"{self.iteration + 1}")

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
            "optimizer": self.optimizer.state_dict(),
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "best_return": self.best_return,
            "last_return": self.last_return,
            "wall_s": self.wall_s,
            "torch_rng": torch.get_rng_state(),
            "python_rng": pickle.dumps(random.getstate()),
            "numpy_rng": pickle.dumps(np.random.get_state()),
            "sampler": pickle.dumps(self.sampler.state_dict()),
        }
        if self.value is not None:
            payload["value"] = self.value.net.state_dict()
            payload["value_optimizer"] = self.value_optimizer.state_dict()
        if self.reward_scaler is not None:
            payload["reward_scaler"] = pickle.dumps(self.reward_scaler.state_dict())
        checkpoint.save(self.run_dir / "checkpoints" / "latest.pt", payload)

    def load_checkpoint(self, data: dict) -> None:
        try:
            self.policy.load_state_dict(data["policy"])
            self.optimizer.load_state_dict(data["optimizer"])
            if self.value is not None:
                self.value.net.load_state_dict(data["value"])
                self.value_optimizer.load_state_dict(data["value_optimizer"])
            if self.reward_scaler is not None:
                self.reward_scaler.load_state_dict(pickle.loads(data["reward_scaler"]))
            self.sampler.load_state_dict(pickle.loads(data["sampler"]))
            torch.set_rng_state(data["torch_rng"])
            random.setstate(pickle.loads(data["python_rng"]))
            np.random.set_state(pickle.loads(data["numpy_rng"]))
        except (KeyError, RuntimeError, ValueError, pickle.UnpicklingError) as e:
            raise checkpoint.CheckpointError(f"checkpoint does not match this run's config: "
                                             f"{type(e).__name__}: {str(e).splitlines()[0][:200]}") from e
        self.iteration = int(data["iteration"])
        self.env_steps = int(data["env_steps"])
        self.best_return = float(data["best_return"])
        self.last_return = float(data["last_return"])
        self.wall_s = float(data["wall_s"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
