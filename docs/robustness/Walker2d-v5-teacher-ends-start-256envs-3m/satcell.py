"""satcell.py RUN MASS FRICTION: saturation of the deterministic policy's actions at one robot, per joint, and the
gain the policy's own ActionGain gives there; returns and lengths."""
import sys
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(1)
import robopg
from robopg.envs import make_vector_env
from robopg.physics import set_physics
from robopg.randomization import policy_context
run = Path(sys.argv[1]); m = float(sys.argv[2]); f = float(sys.argv[3]); n = 4
policy = robopg.load(run / "checkpoints" / "latest.pt"); c = policy.config
venv = make_vector_env(c.env_id, n, backend="native", env_kwargs=c.env_kwargs, obs_history=c.obs_history,
                       physics_context=policy_context(c))
set_physics(venv, {"body_mass": np.full(n, m), "geom_friction": np.full(n, f)})
obs, _ = venv.reset(seed=10_000)
ret = np.zeros(n); done = np.zeros(n, bool); length = np.zeros(n, int); sat = []; gains = []; est = []
for t in range(1000):
    a = policy.act(obs.astype(np.float32), deterministic=True)
    with torch.no_grad():
        x = policy.net_inputs(policy.normalizer(torch.as_tensor(obs, dtype=torch.float32)))
        if policy.action_gain is not None:
            gains.append(policy.action_gain(x)[~done].numpy())
        if policy.physics_estimate is not None:
            est.append(np.exp(x[~done, -2:].numpy()))
    sat.append(np.abs(a[~done]) >= 0.98)
    obs, r, term, trunc, info = venv.step(a)
    ret += r * ~done; length += ~done; done |= term | trunc
    if done.all(): break
sat = np.concatenate(sat)
print(f"{run.name} mass {m} friction {f}: returns {np.round(ret).astype(int)} lengths {length}")
print("  saturated per joint", np.round(sat.mean(0), 2))
if gains: print("  gain per joint", np.round(np.concatenate(gains).mean(0), 2))
if est: e = np.concatenate(est); print("  estimate mass/friction mean", np.round(e.mean(0), 2), "sd", np.round(e.std(0), 2))
