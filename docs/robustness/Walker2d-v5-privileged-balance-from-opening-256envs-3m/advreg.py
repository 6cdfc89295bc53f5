"""advreg.py RUN [ITERS]: where a randomised run's gradient comes from (twenty-third session; robopg's src on
PYTHONPATH). The run's final trainer samples ITERS more batches (no update); per mass region: the share of the
batches' steps, and the mean, std and mean |Psi| of the policy gradient's weights (GAE, before normalisation)."""

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from robopg import checkpoint
from robopg.algorithms.weights import compute_weights
from robopg.api import load_config
from robopg.trainer import Trainer

run = Path(sys.argv[1])
iters = int(sys.argv[2]) if len(sys.argv) > 2 else 20
config = load_config(run)
config.torch_threads = 1
tmp = Path(tempfile.mkdtemp())
trainer = Trainer(config, tmp)
trainer.load_checkpoint(checkpoint.load(run / "checkpoints" / "latest.pt", env_id=config.env_id))
plain = load_config(run)
plain.normalize_advantages = False
critic = trainer.algorithm.critic
log_mass, psi = [], []
for _ in range(iters):
    trainer.sampler.advance(trainer.env_steps, None)
    rollout = trainer.sampler.collect()
    w = compute_weights(plain, rollout, critic.value, critic.reward_scaler, gamma=critic.gamma)
    log_mass.append(rollout.context[rollout.mask][:, 0])
    psi.append(w.psi.numpy())
log_mass, psi = np.concatenate(log_mass), np.concatenate(psi)
edges = np.log([1e-9, 0.75, 0.95, 1.05, 1.33, 1e9])
names = ["< 0.75", "0.75-0.95", "~1 (nominal)", "1.05-1.33", ">= 1.33"]
print(run, f"{len(psi)} steps; all: std {psi.std():.3f} mean|psi| {np.abs(psi).mean():.3f}")
for name, lo, hi in zip(names, edges[:-1], edges[1:]):
    p = psi[(log_mass >= lo) & (log_mass < hi)]
    print(f"{name:>13}: share {len(p) / len(psi):.3f}  mean {p.mean():+.3f}  std {p.std():.3f}  "
          f"mean|psi| {np.abs(p).mean():.3f}")
trainer.close()
shutil.rmtree(tmp)
