# RMA phase-2 pilot: a frozen true-factor policy (oracle run, wt-oracle code) with its factor inputs replaced by an
# estimate from the history, fit by regression on the true factors over rollouts of that student (DAgger rounds).
import sys, numpy as np, torch
from robopg.api import load
from robopg.envs import make_vector_env
from robopg.physics import set_physics
from robopg.robustness import evaluate_cells, grid_cells, parse_grid
torch.manual_seed(0); rng = np.random.default_rng(0)
run, env_id = sys.argv[1], sys.argv[2]
pol = load(run); teacher_mode = pol.mode
d = pol.normalizer.mean.numel() - 2
mu, sd = None, None
est = torch.nn.Sequential(torch.nn.Linear(d, 128), torch.nn.Tanh(), torch.nn.Linear(128, 128), torch.nn.Tanh(), torch.nn.Linear(128, 2))
opt = torch.optim.Adam(est.parameters(), 1e-3)
def student_mode(obs):
    x = obs.clone()
    if mu is not None:
        with torch.no_grad():
            x[:, -2:] = est((x[:, :-2] - mu) / sd)
    else:
        x[:, -2:] = 0.0
    return teacher_mode(x)
pol.mode = student_mode
X, Y = [], []
N, T, steps = 256, 400, 0
for rnd in range(4):
    venv = make_vector_env(env_id, N, obs_history=3)
    set_physics(venv, {"body_mass": rng.uniform(0.5, 1.5, N), "geom_friction": rng.uniform(0.5, 1.5, N)})
    obs, _ = venv.reset(seed=int(rng.integers(1 << 30)))
    for t in range(T):
        X.append(obs[:, :-2].copy()); Y.append(obs[:, -2:].copy())
        obs, *_ = venv.step(pol.act(obs)); steps += N
    venv.close()
    xs, ys = torch.tensor(np.concatenate(X)), torch.tensor(np.concatenate(Y))
    if mu is None:
        mu, sd = xs.mean(0), xs.std(0) + 1e-6
    for it in range(4000):
        idx = torch.randint(0, len(xs), (1024,))
        loss = (est((xs[idx] - mu) / sd) - ys[idx]).pow(2).mean(); opt.zero_grad(); loss.backward(); opt.step()
    print(f"round {rnd}: {steps} env steps, fit loss {loss.item():.4f} (target var {ys.var(0).mean().item():.4f})", flush=True)
cells = grid_cells(parse_grid(["mass=0.5:1.5:7", "friction=0.5:1.5:7"]))
res = evaluate_cells(pol, env_id, [{}] + cells, 10)
m = np.array([r["mean_return"] for r in res[1:]]).reshape(7, 7)
print("student: nominal", round(res[0]["mean_return"]), "worst", round(m.min()), "grid mean", round(m.mean()))
print(np.round(m).astype(int))
