"""fall.py RUN MASS FRICTION: how the deterministic policy's first episode ends at one robot: z and angle over time."""
import sys
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(1)
import robopg
from robopg.envs import make_vector_env
from robopg.physics import set_physics
run = Path(sys.argv[1]); m = float(sys.argv[2]); f = float(sys.argv[3]); n = 1
policy = robopg.load(run / "checkpoints" / "latest.pt"); c = policy.config
venv = make_vector_env(c.env_id, n, backend="native", env_kwargs=c.env_kwargs, obs_history=c.obs_history)
set_physics(venv, {"body_mass": np.full(n, m), "geom_friction": np.full(n, f)})
obs, _ = venv.reset(seed=10_000); zs = []; angs = []; xv = []
for t in range(1000):
    a = policy.act(obs.astype(np.float32), deterministic=True)
    zs.append(obs[0, 0]); angs.append(obs[0, 1]); xv.append(obs[0, 8])
    obs, r, term, trunc, info = venv.step(a)
    if term[0] or trunc[0]: break
zs, angs, xv = map(np.array, (zs, angs, xv))
print(f"{run.name} m{m} f{f}: steps {t + 1}, last z {zs[-1]:.2f} angle {angs[-1]:.2f}; z mean by 50 steps",
      np.round([zs[i:i + 50].mean() for i in range(0, len(zs), 50)], 2), "xvel", np.round([xv[i:i + 50].mean() for i in range(0, len(xv), 50)], 1))
