"""sat.py RUN MASS FRICTION [EPISODES]: a Walker2d run's deterministic policy on one robot (twenty-sixth session;
robopg's src on PYTHONPATH): mean return and length, and the share of its control steps at the actuators' bound
(|action| >= 0.99 after the policy's gain and the clip to the action space), per joint."""
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
alive, ret, length = np.ones(eps, bool), np.zeros(eps), np.zeros(eps, int)
at_bound, steps = np.zeros(6), 0
for _ in range(1000):
    a = policy.act(obs)
    at_bound += (np.abs(a) >= 0.99)[alive].sum(0)
    steps += alive.sum()
    obs, r, term, trunc, _ = venv.step(a)
    ret += r * alive
    length += alive
    alive &= ~(term | trunc)
    if not alive.any():
        break
venv.close()
print(f"{run.split('/')[-1]} mass {mass} friction {fr}: return {ret.mean():.0f} length {length.mean():.0f}  "
      f"at bound {np.round(at_bound / steps, 2)} (all {at_bound.sum() / steps / 6:.2f})")
