"""A ceiling, not a method: RUN's deterministic policy on the 7 x 7 mass x friction grid with its actions (clipped
to the bounds) scaled by K = mass ** ALPHA, the cell's true mass factor: the gain schedule a policy would follow if
it knew its robot's mass and scaled its whole action by it. ALPHA 0 is the policy as it is. EPISODES per cell, the
grid's episode seeds (10000, ...). Prints nominal / worst / grid mean, one line per run.

    python oracle_gain.py ALPHA EPISODES RUN...
"""
import sys
from pathlib import Path

import numpy as np
import torch

import robopg
from robopg.api import trained_env_options
from robopg.envs import make_vector_env
from robopg.episodes import episode_returns
from robopg.physics import set_physics
from robopg.robustness import grid_cells, parse_grid

torch.set_num_threads(1)


class ScaledActions:
    """The vector env with each env's action multiplied by its own gain."""

    def __init__(self, venv, gain: np.ndarray):
        self.venv, self.gain = venv, gain[:, None]

    def step(self, action):
        return self.venv.step(np.clip(action, -1.0, 1.0) * self.gain)

    def __getattr__(self, name):
        return getattr(self.venv, name)


alpha, episodes = float(sys.argv[1]), int(sys.argv[2])
cells = [{}] + grid_cells(parse_grid(["mass=0.5:1.5:7", "friction=0.5:1.5:7"]))
for run in sys.argv[3:]:
    policy = robopg.load(Path(run) / "checkpoints" / "latest.pt")
    n = min(episodes, 16)
    venv = make_vector_env(policy.config.env_id, n * len(cells), backend="native",
                           **trained_env_options(policy, policy.config.env_id))
    for c, cell in enumerate(cells):
        if cell:
            set_physics(venv, {p: np.full(n, f) for p, f in cell.items()}, np.arange(c * n, (c + 1) * n))
    gain = np.repeat([cell.get("body_mass", 1.0) ** alpha for cell in cells], n)
    quota = np.tile([episodes // n + (i < episodes % n) for i in range(n)], len(cells))
    returns = episode_returns(ScaledActions(venv, gain), policy, [10_000 + i for i in range(n)] * len(cells), quota,
                              True, n)
    venv.close()
    means = [float(np.mean([x for r in returns[c * n:(c + 1) * n] for x in r])) for c in range(len(cells))]
    grid = means[1:]
    worst = int(np.argmin(grid))
    print(f"{run}: ALPHA {alpha}: nominal {means[0]:.0f} worst {grid[worst]:.0f} (mass {cells[worst + 1]['body_mass']:.2f}, "
          f"friction {cells[worst + 1]['geom_friction']:.2f}) mean {np.mean(grid):.0f}", flush=True)
