"""estmode.py RUN mass friction episodes MODE...: the deterministic policy on one robot with its physics estimate
replaced: own (as trained; checks the loop), true (the robot's log factors), mean (the episode's running mean of
the estimate so far), truemass (true mass, own friction). Prints mean return and lengths per mode."""
import sys
import numpy as np, torch
import robopg
from robopg.api import trained_env_options
from robopg.envs import make_vector_env, resolve_backend
from robopg.physics import set_physics
run, mass, fr, eps = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
policy = robopg.load(run); env_id = "Walker2d-v5"
own = trained_env_options(policy, env_id)
low, high = policy.low, policy.high
for mode in sys.argv[5:]:
    venv = make_vector_env(env_id, eps, backend=resolve_backend(env_id, "auto", own["env_kwargs"]), **own)
    set_physics(venv, {"body_mass": np.full(eps, mass), "geom_friction": np.full(eps, fr)}, np.arange(eps))
    obs, _ = venv.reset(seed=[10_000 + i for i in range(eps)])
    alive = np.ones(eps, bool); ret = np.zeros(eps); L = np.zeros(eps, int); total = torch.zeros(eps, 2); est = []
    truth = torch.tensor([[np.log(mass), np.log(fr)]] * eps, dtype=torch.float32)
    for t in range(1000):
        with torch.no_grad():
            x = policy.normalizer(torch.as_tensor(obs, dtype=torch.float32))
            e = policy.physics_estimate(x)
            total += e
            e2 = {"own": e, "true": truth, "mean": total / (t + 1),
                  "truemass": torch.cat([truth[:, :1], e[:, 1:]], 1)}[mode]
            inp = torch.cat([x, e2], -1)
            mean = policy.mean_net(inp) * policy.action_gain(inp)
            a = torch.max(torch.min(mean, high), low).numpy()
        est.append(np.where(alive, e2[:, 0].numpy(), np.nan))
        obs, r, term, trunc, _ = venv.step(a)
        ret += r * alive; L += alive
        alive &= ~(term | trunc)
        if not alive.any():
            break
    venv.close()
    print(f"  {mode:9s} return {ret.mean():6.0f}  per ep {np.round(ret).astype(int).tolist()}  len {L.tolist()}  "
          f"mass read {np.exp(np.nanmean(est)):.2f}")
