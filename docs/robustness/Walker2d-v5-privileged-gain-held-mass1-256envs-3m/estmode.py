"""estmode.py RUN MASS FRICTION EPISODES MODE...: the deterministic policy of a --policy-obs estimated run with a held
(or learned) gain on one Walker2d robot, its physics estimate replaced by MODE: own (as trained: checks that this
loop is the policy's), true (the robot's log factors), truemass (the true mass, its own friction estimate), mean
(the episode's running mean of its own estimate). Prints per mode the mean return, each episode's return and
length, and the mass the policy was given (geometric mean over the live steps)."""
import sys

import numpy as np
import torch

import robopg
from robopg.api import trained_env_options
from robopg.envs import make_vector_env, resolve_backend
from robopg.physics import set_physics

run, mass, friction, episodes = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
policy = robopg.load(run)
env_id = "Walker2d-v5"
options = trained_env_options(policy, env_id)
for mode in sys.argv[5:]:
    venv = make_vector_env(env_id, episodes, backend=resolve_backend(env_id, "auto", options["env_kwargs"]), **options)
    set_physics(venv, {"body_mass": np.full(episodes, mass), "geom_friction": np.full(episodes, friction)},
                np.arange(episodes))
    obs, _ = venv.reset(seed=[10_000 + i for i in range(episodes)])
    alive, returns, lengths = np.ones(episodes, bool), np.zeros(episodes), np.zeros(episodes, int)
    truth = torch.tensor([[np.log(mass), np.log(friction)]] * episodes, dtype=torch.float32)
    total, given = torch.zeros(episodes, 2), []
    for t in range(1000):
        with torch.no_grad():
            x = policy.normalizer(torch.as_tensor(obs, dtype=torch.float32))
            estimate = policy.physics_estimate(x)
            total += estimate
            estimate = {"own": estimate, "true": truth, "mean": total / (t + 1),
                        "truemass": torch.cat([truth[:, :1], estimate[:, 1:]], 1)}[mode]
            inputs = torch.cat([x, estimate], -1)
            mean = policy.mean_net(inputs) * policy.action_gain(inputs)  # GaussianPolicy.forward after net_inputs
            actions = torch.max(torch.min(mean, policy.high), policy.low).numpy()
        given.append(np.where(alive, estimate[:, 0].numpy(), np.nan))
        obs, reward, terminated, truncated, _ = venv.step(actions)
        returns += reward * alive
        lengths += alive
        alive &= ~(terminated | truncated)
        if not alive.any():
            break
    venv.close()
    print(f"  {mode:9s} return {returns.mean():6.0f}  per episode {np.round(returns).astype(int).tolist()}  "
          f"lengths {lengths.tolist()}  mass given {np.exp(np.nanmean(given)):.2f}")
