import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None, timeout=300, env=None):
    """Run the installed ``robopg`` command (via this interpreter) and capture its output."""
    return subprocess.run([sys.executable, "-m", "robopg.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture
def cli():
    return run_cli


def tiny(env_id="CartPole-v1", **kw):
    """A config that trains in about a second."""
    from robopg import make_config

    # pg unless told: these tests were written for the seed's rule, whatever a robot's default rule is.
    base = dict(steps=4096, num_envs=4, batch_size=512, tensorboard=False, checkpoint_every=2, algorithm="pg")
    base.update(kw)
    return make_config(env_id, **base)


@pytest.fixture(scope="session")
def trained_cartpole(tmp_path_factory):
    """One tiny CartPole run, shared by the tests that only read it."""
    import robopg

    return robopg.train(tiny(), tmp_path_factory.mktemp("run") / "r")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    # As in training: small tensors, and a 2-core machine where intra-op threads only add overhead.
    import torch

    torch.set_num_threads(1)
