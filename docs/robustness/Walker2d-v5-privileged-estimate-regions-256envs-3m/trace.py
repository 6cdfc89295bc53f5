"""trace.py RUN MASS FRICTION [EPISODES]: a Walker2d run's deterministic policy on one robot (twenty-fourth session;
robopg's src on PYTHONPATH): per episode its length and return, the estimate's mass and friction over the episode,
the action gain's mean per joint, the mean forward speed and height."""
import sys

import numpy as np
import torch

import robopg
from robopg.api import trained_env_options
from robopg.envs import make_vector_env, resolve_backend
from robopg.physics import set_physics

run, mass, fr = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
eps = int(sys.argv[4]) if len(sys.argv) > 4 else 3
policy = robopg.load(run)
env_id = "Walker2d-v5"
own = trained_env_options(policy, env_id)
venv = make_vector_env(env_id, eps, backend=resolve_backend(env_id, "auto", own["env_kwargs"]), **own)
set_physics(venv, {"body_mass": np.full(eps, mass), "geom_friction": np.full(eps, fr)}, np.arange(eps))
obs, _ = venv.reset(seed=[10_000 + i for i in range(eps)])
alive = np.ones(eps, bool)
ret = np.zeros(eps)
L = np.zeros(eps, int)
est, gain, speed, height = [], [], [], []
for _ in range(1000):
    with torch.no_grad():
        o = torch.as_tensor(obs, dtype=torch.float32)
        x = policy.normalizer(o)
        e = policy.physics_estimate(x) if policy.physics_estimate is not None else torch.zeros(eps, 2)
        has_gain = getattr(policy, "action_gain", None) is not None
        g = policy.action_gain(policy.net_inputs(x)) if has_gain else torch.ones(eps, 6)
    a = policy.act(obs)
    obs, r, term, trunc, info = venv.step(a)
    est.append(np.where(alive[:, None], e.numpy(), np.nan))
    gain.append(np.where(alive[:, None], g.numpy(), np.nan))
    height.append(np.where(alive, obs[:, 0], np.nan))
    speed.append(np.where(alive, obs[:, 8], np.nan))
    ret += r * alive
    L += alive
    alive &= ~(term | trunc)
    if not alive.any():
        break
venv.close()
est, gain = np.array(est), np.array(gain)
for i in range(eps):
    print(f"ep {i}: len {L[i]} return {ret[i]:.0f}  est mass {np.exp(np.nanmean(est[:, i, 0])):.2f} "
          f"(sd log {np.nanstd(est[:, i, 0]):.2f}) "
          f"friction {np.exp(np.nanmean(est[:, i, 1])):.2f}  gain {np.round(np.nanmean(gain[:, i], 0), 2)}  "
          f"speed {np.nanmean(np.array(speed)[:, i]):.2f} height {np.nanmean(np.array(height)[:, i]):.2f}")
