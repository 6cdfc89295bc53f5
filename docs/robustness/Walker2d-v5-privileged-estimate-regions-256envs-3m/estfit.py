"""estfit.py RUN [ITERS]: how a --policy-obs estimated run's physics estimate reads the mass, by mass region
(twenty-fourth session; robopg's src on PYTHONPATH). The run's final trainer samples ITERS batches (no update);
the estimate as trained, then refits of it (20 passes, Adam 3e-4) on four-fifths of the steps weighed alike, without
the nominal robots, with the mass range's thirds and the nominal robots weighed evenly, or with the thirds alone
(--physics-estimate-regions mass=3), each read on the last fifth: R^2 of the log mass over the drawn robots, and
each region's true mean mass -> the estimate's."""
import copy
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from robopg import checkpoint
from robopg.api import load_config
from robopg.policies.networks import as_parameters
from robopg.trainer import Trainer

run = Path(sys.argv[1])
iters = int(sys.argv[2]) if len(sys.argv) > 2 else 30
torch.manual_seed(0)
config = load_config(run)
config.torch_threads = 1
tmp = Path(tempfile.mkdtemp())
trainer = Trainer(config, tmp)
trainer.load_checkpoint(checkpoint.load(run / "checkpoints" / "latest.pt", env_id=config.env_id))
policy = trainer.policy if hasattr(trainer, "policy") else trainer.algorithm.policy
obs, ctx = [], []
for _ in range(iters):
    trainer.sampler.advance(trainer.env_steps, None)
    r = trainer.sampler.collect()
    obs.append(torch.as_tensor(r.obs[r.mask]))
    ctx.append(torch.as_tensor(r.context[r.mask], dtype=torch.float32))
obs, ctx = torch.cat(obs), torch.cat(ctx)
with torch.no_grad():
    x = policy.normalizer(obs)
n = len(x)
cut = int(n * 0.8)
nom = (ctx[:, :2] == 0).all(1)
edges = np.log([1e-9, 0.6, 0.75, 0.95, 1.05, 1.33, 1.6, 1e9])
names = ["<0.6", "0.6-0.75", "0.75-0.95", "~1", "1.05-1.33", "1.33-1.6", ">=1.6"]
def report(label, net):
    with torch.no_grad():
        e = net(x[cut:])
    t = ctx[cut:]
    lm = t[:, 0].numpy()
    em = e[:, 0].numpy()
    drawn = ~nom[cut:].numpy()
    r2 = 1 - ((em - lm)[drawn] ** 2).mean() / lm[drawn].var()
    r2f = 1 - ((e[:, 1] - t[:, 1]).numpy()[drawn] ** 2).mean() / t[:, 1].numpy()[drawn].var()
    parts = []
    for nm, lo, hi in zip(names, edges[:-1], edges[1:]):
        s = (lm >= lo) & (lm < hi)
        if s.sum():
            parts.append(f"{nm}: {np.exp(lm[s].mean()):.2f}->{np.exp(em[s].mean()):.2f}")
    print(f"{label:>14} R2(drawn) mass {r2:.3f} friction {r2f:.3f} | " + "  ".join(parts), flush=True)
report("as trained", policy.physics_estimate)
shares = [((ctx[:, 0].numpy() >= lo) & (ctx[:, 0].numpy() < hi)).mean() for lo, hi in zip(edges[:-1], edges[1:])]
print("step shares:", " ".join(f"{nm} {s:.3f}" for nm, s in zip(names, shares)), "nominal", float(nom.float().mean()))
def refit(label, weight, epochs=20):
    twin = as_parameters(copy.deepcopy(policy.physics_estimate))
    opt = torch.optim.Adam(twin.parameters(), lr=3e-4)
    xt, tt, wt = x[:cut], ctx[:cut], weight[:cut] / weight[:cut].mean()
    size = 4096
    for _ in range(epochs):
        perm = torch.randperm(cut)
        for s in range(0, cut, size):
            i = perm[s:s + size]
            loss = (wt[i, None] * (twin(xt[i]) - tt[i]).pow(2)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    report(label, twin)
refit("refit all", torch.ones(n))
refit("refit drawn", (~nom).float())
# mass regions evenly (three log-parts of 0.4-1.8), the nominal robots a region of their own
lm = ctx[:, 0].numpy()
a, b = np.log(0.4), np.log(1.8)
reg = np.clip(np.floor((lm - a) / (b - a) * 3), 0, 2).astype(int)
reg[nom.numpy()] = 3
cnt = np.bincount(reg, minlength=4)
w = torch.as_tensor(n / (4 * cnt[reg]), dtype=torch.float32)
refit("refit even", w)
# the mass range's thirds evenly, the nominal robots in the middle one: what --physics-estimate-regions mass=3 does
thirds = np.clip(np.floor((lm - a) / (b - a) * 3), 0, 2).astype(int)
refit("refit thirds", torch.as_tensor(n / (3 * np.bincount(thirds, minlength=3)[thirds]), dtype=torch.float32))
trainer.close()
shutil.rmtree(tmp)
