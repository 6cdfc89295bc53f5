"""fall.py RUN MASS FRICTION [EPISODES]: how a Walker2d run's deterministic policy ends its episodes on one robot
(twenty-sixth session; robopg's src on PYTHONPATH): per episode its length, the torso's height and angle on its
last step and its mean forward speed; and the torso's mean height over the episodes by 50-step window."""
import sys

import numpy as np

import robopg
from robopg.api import trained_env_options
from robopg.envs import make_vector_env, resolve_backend
from robopg.physics import set_physics

run, mass, fr = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
eps = int(sys.argv[4]) if len(sys.argv) > 4 else 5
policy = robopg.load(run)
env_id = "Walker2d-v5"
own = trained_env_options(policy, env_id)
venv = make_vector_env(env_id, eps, backend=resolve_backend(env_id, "auto", own["env_kwargs"]), **own)
set_physics(venv, {"body_mass": np.full(eps, mass), "geom_friction": np.full(eps, fr)}, np.arange(eps))
obs, _ = venv.reset(seed=[10_000 + i for i in range(eps)])
alive, last, length, returns = np.ones(eps, bool), obs.copy(), np.zeros(eps, int), np.zeros(eps)
height, speed, actions = [], [], []
for _ in range(1000):
    step_obs = obs
    action = policy.act(step_obs)
    obs, r, term, trunc, _ = venv.step(action)
    actions.append(np.where(alive[:, None], action, np.nan))
    # the observation an episode ended from: the autoreset replaces it on the next step
    height.append(np.where(alive, step_obs[:, 0], np.nan))
    speed.append(np.where(alive, step_obs[:, 8], np.nan))
    returns += r * alive
    ended = alive & (term | trunc)
    last[ended] = step_obs[ended]
    length += alive
    alive &= ~(term | trunc)
    if not alive.any():
        break
venv.close()
height, speed, actions = np.array(height), np.array(speed), np.array(actions)
print(f"{run.rstrip('/').split('/')[-1]} mass {mass} friction {fr}: mean return {returns.mean():.0f}")
for i in range(eps):
    print(f"  ep {i}: return {returns[i]:.0f} length {length[i]}  height {last[i, 0]:.2f} angle {last[i, 1]:+.2f} "
          f"at its end  speed {np.nanmean(speed[:, i]):.2f}")
print("  mean height by 50-step window:",
      " ".join(f"{np.nanmean(height[k:k + 50]):.2f}" for k in range(0, len(height), 50)))
first = np.concatenate([actions[:100, i] for i in range(eps)])
last = np.concatenate([actions[max(length[i] - 80, 0):length[i], i] for i in range(eps)])
every = actions.reshape(-1, actions.shape[-1])
for name, part in (("all", every), ("first 100", first), ("last 80", last)):
    lived = ~np.isnan(part)  # the steps after an episode's end are NaN, and NaN >= 0.99 is False: leave them out
    share = (np.abs(np.nan_to_num(part)) >= 0.99).sum(0) / lived.sum(0)
    print(f"  at the bound, {name} steps: per joint {np.round(share, 2)}, all {share.mean():.2f}")
