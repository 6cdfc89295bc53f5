"""Whole episodes of a policy in a vector env, each env's episodes seeded and counted: what ``robopg eval``,
``robopg robustness`` and held-out evaluation during training (``--eval-every``) all run."""

from __future__ import annotations

import numpy as np
import torch


def episode_returns(venv, policy, seeds: list[int], quota, deterministic: bool,
                    block: int) -> list[list[float]]:
    """Each env's first ``quota[i]`` episode returns, its episodes seeded from ``seeds[i]``. The policy acts on
    blocks of ``block`` envs: a matrix product's last bits can depend on how many rows it has, so grids of
    cells (``robopg robustness``) call it on eval's batch size and get eval's numbers exactly."""
    obs, _ = venv.reset(seed=seeds)
    running = np.zeros(len(seeds))
    done_count = np.zeros(len(seeds), dtype=int)
    per_env: list[list[float]] = [[] for _ in seeds]
    threads = torch.get_num_threads()
    # One torch thread, as training runs: the blocks are a few rows, and with more threads on a busy machine
    # (a sweep's other jobs, another run) each small product waits for threads that are not running: 8 ms
    # for a 16-row layer against 4 us on one thread (measured on 2 cores), a 49-cell grid minutes instead of
    # seconds. The numbers are the same (tests/test_robustness.py).
    torch.set_num_threads(1)
    try:
        while (done_count < quota).any():
            obs = np.asarray(obs, dtype=np.float32)
            with torch.no_grad():
                action = np.concatenate([policy.act(obs[k:k + block], deterministic=deterministic)
                                         for k in range(0, len(seeds), block)])
            obs, reward, terminated, truncated, _ = venv.step(action)
            running += reward
            for i in np.flatnonzero(terminated | truncated):
                if done_count[i] < quota[i]:
                    per_env[i].append(float(running[i]))
                    done_count[i] += 1
                running[i] = 0.0
    finally:
        torch.set_num_threads(threads)
    return per_env
