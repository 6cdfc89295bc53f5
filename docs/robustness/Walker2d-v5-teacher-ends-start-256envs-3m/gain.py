"""The twenty-first session's diagnostic of a pocket: the deterministic policy of RUN on one robot, its actions
clipped to the bounds, scaled by K and low-pass filtered (a_t <- ALPHA * a_t + (1 - ALPHA) * a_(t-1); 1: off).
Prints each episode's return and length (the first episode of each of N envs, episode seeds 10000, ...).

    python gain.py RUN MASS FRICTION K [N] [ALPHA]
"""
import sys
from pathlib import Path

import numpy as np
import torch

import robopg
from robopg.envs import make_vector_env
from robopg.physics import set_physics
from robopg.randomization import policy_context

torch.set_num_threads(1)
run, mass, friction, k = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
n = int(sys.argv[5]) if len(sys.argv) > 5 else 4
alpha = float(sys.argv[6]) if len(sys.argv) > 6 else 1.0
policy = robopg.load(run / "checkpoints" / "latest.pt")
c = policy.config
venv = make_vector_env(c.env_id, n, backend="native", env_kwargs=c.env_kwargs, obs_history=c.obs_history,
                       physics_context=policy_context(c))
set_physics(venv, {"body_mass": np.full(n, mass), "geom_friction": np.full(n, friction)})
obs, _ = venv.reset(seed=10_000)
returns, lengths, done = np.zeros(n), np.zeros(n, int), np.zeros(n, bool)
for t in range(1000):
    a = np.clip(policy.act(obs.astype(np.float32), deterministic=True), -1, 1) * k
    action = a if t == 0 else alpha * a + (1 - alpha) * action
    obs, r, term, trunc, _ = venv.step(action)
    returns += r * ~done
    lengths += ~done
    done |= term | trunc
    if done.all():
        break
print(f"mass {mass} friction {friction} K {k} ALPHA {alpha}: returns {np.round(returns).astype(int)} "
      f"lengths {lengths}")
