"""ident.py RUN K1,K2,...: how well a longer history tells the robot's mass and friction. Rolls the run's policy
(sampling, as in training) on robots drawn from its --randomize ranges with a 16-step stack, then fits the same
estimate network (the policy's hidden sizes, Adam) from the newest K steps of the stack for each K; held-out R^2."""
import sys
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(1)
import robopg
from robopg.config import parse_randomize
from robopg.envs import make_vector_env
from robopg.physics import set_physics
from robopg.policies.networks import mlp


def history_columns(stacked_dim, width, k, keep):
    """The columns of a k-step stack [o_t, ..., o_(t-k), a_(t-1), ..., a_(t-k)] that hold its newest keep steps."""
    obs_dim = (stacked_dim - k * width) // (k + 1)
    actions = (k + 1) * obs_dim
    return np.concatenate([np.arange((keep + 1) * obs_dim), np.arange(actions, actions + keep * width)])


run = Path(sys.argv[1]); ks = [int(k) for k in sys.argv[2].split(",")]; K = max(ks)
policy = robopg.load(run / "checkpoints" / "latest.pt"); c = policy.config
n, T = 64, 1000
venv = make_vector_env(c.env_id, n, backend="native", env_kwargs=c.env_kwargs, obs_history=K)
dim = venv.single_observation_space.shape[0]; w = venv.single_action_space.shape[0]
own = torch.as_tensor(history_columns(dim, w, K, c.obs_history))
rng = np.random.default_rng(0)
X, Y = [], []
for rep in range(3):
    m = np.exp(rng.uniform(np.log(0.4), np.log(1.8), n)); f = rng.uniform(0.4, 1.6, n)
    set_physics(venv, {"body_mass": m, "geom_friction": f})
    obs, _ = venv.reset(seed=100 + rep)
    for t in range(T):
        o = torch.as_tensor(obs, dtype=torch.float32)
        with torch.no_grad():
            a = policy.sample(o[:, own]).numpy()
        X.append(obs.copy()); Y.append(np.stack([np.log(m), np.log(f)], 1))
        obs, r, term, trunc, info = venv.step(np.clip(a, -1, 1))
        # robots are fixed per env for the rollout: a new episode keeps its env's robot
X = torch.as_tensor(np.concatenate(X)); Y = torch.as_tensor(np.concatenate(Y), dtype=torch.float32)
mu, sd = X.mean(0), X.std(0) + 1e-6; X = ((X - mu) / sd).clamp(-10, 10)
idx = torch.randperm(len(X), generator=torch.Generator().manual_seed(0)); tr, te = idx[:int(0.8 * len(X))], idx[int(0.8 * len(X)):]
for k in ks:
    cols = torch.as_tensor(history_columns(dim, w, K, k))
    torch.manual_seed(0)
    net = mlp([len(cols), *c.hidden_sizes, 2], c.activation, out_gain=0.01)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for epoch in range(8):
        for b in tr[torch.randperm(len(tr))].split(512):
            loss = ((net(X[b][:, cols]) - Y[b]) ** 2).mean(); opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        err = ((net(X[te][:, cols]) - Y[te]) ** 2).mean(0); var = Y[te].var(0)
    print(f"K={k}: held-out R^2 mass {1 - err[0] / var[0]:.2f} friction {1 - err[1] / var[1]:.2f}", flush=True)
