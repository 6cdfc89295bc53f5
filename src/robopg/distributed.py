"""Distributed sampling on Ray: the learner broadcasts the weights, rollout workers sample, the learner gathers.

``RaySampler`` has the interface of ``Sampler`` (``collect() -> Rollout``, ``state_dict``, ``load_state_dict``),
so the training loop does not know where its batch came from. Per iteration:

1. the policy's state dict (weights *and* observation-normaliser statistics) goes into the object store once;
2. every worker loads it and samples its share: in steps mode ``ceil(batch_size / num_envs)`` steps on each of
   its envs, exactly the shape one vector env of ``workers * envs_per_worker`` envs would give; in episodes mode
   its part of ``batch_size`` in whole episodes;
3. the learner concatenates the shares along the env axis in worker order (never completion order, so a
   seeded run is reproducible), padding shorter whole-episode shares with masked steps.

The normaliser is updated only by the learner, from the gathered batch, exactly as in single-process
training: one update from every worker's observations is the merge.

Faults: a worker whose process dies, whose node is lost, or whose share takes longer than ``worker_timeout``
(then it is killed) is restarted by Ray (``max_restarts``); it comes back in a new *incarnation* with fresh
deterministic seeds and samples its whole share again with the current weights. A share is taken from one
attempt only, so no partial or duplicated trajectory enters the update.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from .config import Config
from .errors import ConfigError, EnvFailure, WorkerError
from .sampler import Rollout

RAY_MISSING = "--workers: sampling on Ray needs Ray, an optional extra: pip install -e '.[ray]'"
# A (re)starting worker imports torch and builds its envs before it can sample: seconds, not part of the
# time a share of the batch may take.
START_TIMEOUT_S = 120.0
# Failures of one worker within one iteration before the run stops: a worker that dies every time it
# samples (an env that crashes the process) is a bug to report, not a fault to retry forever.
MAX_ATTEMPTS = 5


def require_ray():
    try:
        import ray
    except ImportError as e:
        raise ConfigError(RAY_MISSING) from e
    return ray


def connect(config: Config) -> bool:
    """Join ``config.ray_address``, or start a local Ray instance; True if this call started Ray."""
    ray = require_ray()
    if ray.is_initialized():  # a caller (a test, a notebook) already chose the cluster
        return False
    quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
    if config.ray_address:
        _check_reachable(config.ray_address)
        try:
            ray.init(address=config.ray_address, **quiet)
        except (ConnectionError, TimeoutError, RuntimeError, ValueError, ray.exceptions.RayError) as e:
            raise ConfigError(f"--ray-address: cannot join the Ray cluster at {config.ray_address}: "
                              f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}") from e
        return True
    # Every worker asks for one CPU; a local instance offers at least one per worker, so --workers 8 on a
    # 4-core laptop runs (oversubscribed) instead of waiting forever for CPUs that do not exist.
    # address="local": a new instance, never a cluster some earlier `ray start` left on this machine.
    ray.init(address="local", num_cpus=max(os.cpu_count() or 1, config.workers), include_dashboard=False,
             **quiet)
    return True


def _check_reachable(address: str) -> None:
    """Fail in seconds on an address nobody listens at (Ray itself retries for minutes)."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise ConfigError(f"--ray-address: nothing answers at {address} ({e.strerror or e}); start the "
                          f"cluster with `ray start --head`, or check the address") from e


def worker_shares(batch_size: int, workers: int, envs_per_worker: int, mode: str) -> list[int]:
    """Steps each worker samples per iteration (at least; whole episodes run to their end)."""
    if mode == "steps":
        steps_per_env = -(-batch_size // (workers * envs_per_worker))
        return [steps_per_env * envs_per_worker] * workers
    return [batch_size // workers + (i < batch_size % workers) for i in range(workers)]


def concatenate(parts: list[Rollout]) -> Rollout:
    """Shares side by side along the env axis, in the given order; shorter ones padded with masked steps
    (zeros, no episode flags), which follow their env's last episode end, as the estimators require."""
    horizon = max(p.obs.shape[0] for p in parts)

    def cat(name: str) -> np.ndarray:
        arrays = []
        for p in parts:
            a = getattr(p, name)
            if a.shape[0] < horizon:
                a = np.concatenate([a, np.zeros((horizon - a.shape[0], *a.shape[1:]), a.dtype)])
            arrays.append(a)
        return np.concatenate(arrays, axis=1)

    # The privileged critic's inputs (each step's randomised physics) come along when every share has them.
    context = cat("context") if all(p.context is not None for p in parts) else None
    factors = None
    if all(p.episode_factors is not None for p in parts):
        factors = np.concatenate([p.episode_factors for p in parts])
    return Rollout(cat("obs"), cat("actions"), cat("rewards"), cat("terminated"), cat("truncated"),
                   cat("next_obs"), cat("mask"), [r for p in parts for r in p.episode_returns],
                   [n for p in parts for n in p.episode_lengths], sum(p.env_errors for p in parts), context, factors)


class RaySampler:
    def __init__(self, config: Config, policy, say: Callable[[str], None] = print):
        ray = require_ray()
        from .rollout_worker import RolloutWorker

        self._ray = ray
        self._lost = (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError,
                      ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError)
        self.config, self.policy, self.say = config, policy, say
        self.num_envs = config.resolved_num_envs()
        self.mode = config.resolved_batch_mode()
        self.shares = worker_shares(config.batch_size, config.workers, config.envs_per_worker, self.mode)
        self.incarnations = [0] * config.workers
        self.restarts_total = 0
        self.env_steps = 0  # the run's, for the workers' --randomize-ramp
        self.cell_probs = None  # this iteration's --randomize-focus probabilities, for the workers
        self._stats: dict[str, float] = {}
        self.workers: list = []
        self._started_ray = connect(config)
        try:
            # max_task_retries=0: a lost share is re-sampled by collect(), seeded anew and logged, not
            # replayed silently by Ray. SPREAD puts workers on different nodes while there are any.
            actor = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0,
                               scheduling_strategy="SPREAD")(RolloutWorker)
            spec = gym.spec(config.env_id.rpartition(":")[2])  # "module:EnvId": the trainer imported module
            self.workers = [actor.remote(config.to_dict(), spec, i, self.shares[i], 0)
                            for i in range(config.workers)]
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self) -> None:
        ray = self._ray
        try:
            nodes = ray.get([w.node_id.remote() for w in self.workers], timeout=START_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError as e:
            cpus = ray.cluster_resources().get("CPU", 0)
            raise WorkerError(f"{self.config.workers} Ray workers did not start within {START_TIMEOUT_S:.0f} s "
                              f"(each needs 1 CPU; the cluster has {cpus:g})") from e
        except ray.exceptions.RayActorError as e:
            raise WorkerError(f"a Ray worker failed to start: {str(e).strip().splitlines()[-1][:300]}") from e
        self.say(f"ray: {len(self.workers)} workers x {self.config.envs_per_worker} envs on {len(set(nodes))} "
                 f"node(s)")

    # ------------------------------------------------------------------------------------------------
    def advance(self, env_steps: int, cell_probs: np.ndarray | None = None) -> None:
        self.env_steps, self.cell_probs = env_steps, cell_probs

    def collect(self) -> Rollout:
        t0 = time.perf_counter()
        gather = _Gather(self, self._ray.put(self.policy.state_dict()))
        results = gather.run()
        rollout = concatenate([r for r, _, _ in results])
        slowest = max(wall for _, wall, _ in results)
        self._stats = {"worker_restarts": float(gather.restarts),
                       "sync_ms": 1000.0 * max(time.perf_counter() - t0 - slowest, 0.0),
                       "worker_sample_s": slowest, "worker_cpu_s": sum(cpu for _, _, cpu in results)}
        return rollout

    def iteration_stats(self) -> dict[str, float]:
        """``worker_restarts`` in the last collect; ``sync_ms``: the learner's time beyond the slowest
        worker's sampling (weight broadcast, calls, result transfer, concatenation, restarts); and, not in
        metrics.csv, ``worker_sample_s`` (the slowest worker's sampling) and ``worker_cpu_s`` (all workers'
        CPU seconds sampling)."""
        return dict(self._stats)

    def worker_pids(self) -> list[int]:
        return self._ray.get([w.pid.remote() for w in self.workers], timeout=START_TIMEOUT_S)

    # --- state, for resume ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        # The envs live in the workers' processes: only the seeding state is the learner's to save.
        return {"ray_incarnations": list(self.incarnations), "restarts_total": self.restarts_total}

    def load_state_dict(self, state: dict) -> None:
        saved = state["ray_incarnations"]
        if len(saved) != len(self.workers):
            raise ValueError(f"the checkpoint has {len(saved)} Ray workers, this run {len(self.workers)}")
        # A resumed run starts every worker's episodes afresh, in a new incarnation (new seeds): not the
        # bit-identical continuation a single-process resume gives, whose env states are in the checkpoint.
        self.incarnations = [k + 1 for k in saved]
        self.restarts_total = int(state["restarts_total"])

    def close(self) -> None:
        ray = self._ray
        if self.workers:
            try:
                ray.get([w.close.remote() for w in self.workers], timeout=10)
            except Exception:  # closing is best effort; the kill below ends the processes regardless
                pass
            for w in self.workers:
                ray.kill(w, no_restart=True)
            self.workers = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False


class _Gather:
    """One iteration's calls: every worker samples its share with the broadcast ``weights``; a worker that is
    lost or takes longer than --worker-timeout is restarted (a new incarnation) and samples its whole share
    again, at most MAX_ATTEMPTS times."""

    def __init__(self, sampler: RaySampler, weights):
        self.sampler, self.weights, self.ray = sampler, weights, sampler._ray
        n = len(sampler.workers)
        self.results: list = [None] * n
        self.attempts = [0] * n
        self.pending: dict = {}  # ObjectRef -> (worker index, "collect" or "probe", deadline)
        self.restarts = 0

    def run(self) -> list:
        for i in range(len(self.results)):
            self.submit(i)
        while self.pending:
            soonest = min(deadline for _, _, deadline in self.pending.values())
            ready, _ = self.ray.wait(list(self.pending), num_returns=1,
                                     timeout=max(0.0, soonest - time.monotonic()))
            for ref in ready:
                self.receive(ref)
            self.expire(time.monotonic())
        return self.results

    def submit(self, i: int) -> None:
        s = self.sampler
        self.attempts[i] += 1
        call = s.workers[i].collect.remote(self.weights, s.incarnations[i], s.env_steps, s.cell_probs)
        self.pending[call] = (i, "collect", time.monotonic() + s.config.worker_timeout)

    def probe(self, i: int, deadline: float) -> None:
        # Until Ray has noticed the death, calls still go to the dead process and fail at once; a probe
        # that answers comes from the new process, and the calls after it reach it too.
        self.pending[self.sampler.workers[i].ready.remote()] = (i, "probe", deadline)

    def restart(self, i: int, why: str, kill: bool) -> None:
        s = self.sampler
        if self.attempts[i] >= MAX_ATTEMPTS:
            raise WorkerError(f"Ray worker {i} failed {self.attempts[i]} times in one iteration; last: {why}")
        if kill:
            self.ray.kill(s.workers[i], no_restart=False)  # Ray starts a fresh process in its place
        s.incarnations[i] += 1
        s.restarts_total += 1
        self.restarts += 1
        s.say(f"ray worker {i} {why}: restarted (incarnation {s.incarnations[i]}); its share of the batch is "
              f"sampled again with the current weights")
        self.probe(i, time.monotonic() + START_TIMEOUT_S)

    def receive(self, ref) -> None:
        i, kind, deadline = self.pending.pop(ref)
        try:
            value = self.ray.get(ref)
        except EnvFailure as e:  # the env failed, not the worker: restarting it would fail again
            raise EnvFailure(str(getattr(e, "cause", e))) from None
        except self.ray.exceptions.ActorUnavailableError as e:
            if kind == "probe":
                time.sleep(0.05)
                self.probe(i, deadline)
            else:
                self.restart(i, f"was lost ({type(e).__name__})", kill=False)
            return
        except self.sampler._lost as e:
            if kind == "probe":  # not restartable: its __init__ failed, or restarts are disabled
                raise WorkerError(f"Ray worker {i} could not be restarted: "
                                  f"{str(e).strip().splitlines()[-1][:300]}") from e
            self.restart(i, f"was lost ({type(e).__name__})", kill=False)
            return
        if kind == "probe":
            self.submit(i)
        else:
            self.results[i] = value

    def expire(self, now: float) -> None:
        for ref, (i, kind, deadline) in list(self.pending.items()):
            if now < deadline:
                continue
            del self.pending[ref]
            if kind == "probe":
                cpus = self.ray.cluster_resources().get("CPU", 0)
                raise WorkerError(f"Ray worker {i} did not come back within {START_TIMEOUT_S:.0f} s of its "
                                  f"restart (each worker needs 1 CPU; the cluster has {cpus:g})")
            self.restart(i, f"took longer than --worker-timeout {self.sampler.config.worker_timeout:g} s: killed",
                         kill=True)
