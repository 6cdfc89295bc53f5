"""A faulty robot is reported as a faulty robot: non-finite observations and rewards, and envs that raise,
are named by env id, env index and step, with the last good checkpoint kept; ``--on-env-error reset``
drops the failed episode (never fabricates one) and goes on, up to a limit."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import robopg
from robopg.errors import EnvFailure
from robopg.metrics import read_csv

from . import faulty_envs
from .conftest import tiny
from .faulty_envs import EPISODE_LENGTH


def _cli(*args):
    code = ("import sys, tests.faulty_envs; from robopg.cli import main; "
            f"sys.exit(main({[str(a) for a in args]!r}))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=os.getcwd(), timeout=300)


def _config(env_id, **kw):
    return tiny(env_id, num_envs=3, batch_size=60, steps=600, checkpoint_every=1, estimator="rtg", baseline="mean",
                batch_mode="episodes", normalize_observations=False, **kw)


@pytest.mark.parametrize("env_id,message", [
    (faulty_envs.NAN_OBS, "env robopg-test/FaultyNaNObs-v0, env index 1, episode step 10: observation[1] is nan"),
    (faulty_envs.INF_REWARD, "env robopg-test/FaultyInfReward-v0, env index 2, episode step 5: reward is inf"),
])
def test_non_finite_values_are_named_at_their_env_and_step(tmp_path, env_id, message):
    with pytest.raises(EnvFailure, match="^" + re.escape(message)):
        robopg.train(_config(env_id), tmp_path / "r")
    # Iteration 1 (60 steps, 20 per env) was checkpointed; the bad step is in iteration 2 (or 3): nothing later.
    data = robopg.checkpoint.load(tmp_path / "r" / "checkpoints" / "latest.pt")
    assert data["iteration"] == len(read_csv(tmp_path / "r" / "metrics.csv")) >= 1


def test_an_env_that_raises_stops_the_run_with_its_own_error_in_one_line(tmp_path):
    out = _cli("train", faulty_envs.RAISES, "--num-envs", "3", "--batch-size", "60", "--steps", "600",
               "--estimator", "rtg", "--baseline", "mean", "--checkpoint-every", "1", "--run-dir", tmp_path / "r",
               "--no-tensorboard")
    assert out.returncode == 1, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("robopg:")]
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert "env index 1, episode step 10: RuntimeError: encoder lost at step 50" in lines[0]
    assert f"robopg resume {tmp_path / 'r'}" in lines[0]
    assert robopg.checkpoint.load(tmp_path / "r" / "checkpoints" / "latest.pt")["iteration"] >= 1


def test_an_env_whose_reset_raises_is_named_too(tmp_path):
    with pytest.raises(EnvFailure, match="env index 0, reset: OSError: motor driver timeout on reset 3"):
        robopg.train(_config(faulty_envs.RESET_FAILS), tmp_path / "r")


def test_on_env_error_reset_drops_the_failed_episode_and_goes_on(tmp_path):
    seen = []
    run = robopg.train(_config(faulty_envs.RAISES_TWICE, on_env_error="reset"), tmp_path / "r",
                       callbacks=[lambda trainer, rollout, row: seen.append(rollout)])
    rows = read_csv(run.metrics_path)
    assert sum(r["env_errors"] for r in rows) == 2 and run.env_steps >= 600
    for ro in seen:
        # Every episode in the batch is whole: steps 0..19 of one episode id, in order; the failed env's
        # partial episodes are masked out, not stored, and never counted as episodes.
        for n in range(ro.obs.shape[1]):
            valid = np.flatnonzero(ro.mask[:, n])
            steps = np.rint(ro.obs[valid, n, 0] * EPISODE_LENGTH).astype(int)
            assert len(steps) % EPISODE_LENGTH == 0
            assert (steps == np.tile(np.arange(EPISODE_LENGTH), len(steps) // EPISODE_LENGTH)).all()
        assert ro.episode_returns == [float(EPISODE_LENGTH)] * len(ro.episode_returns)
        assert ro.num_steps == EPISODE_LENGTH * len(ro.episode_returns)


def test_on_env_error_reset_stops_past_the_limit(tmp_path):
    with pytest.raises(EnvFailure, match="more than --max-env-errors 3"):
        robopg.train(_config(faulty_envs.RAISES_OFTEN, on_env_error="reset", max_env_errors=3), tmp_path / "r")
