"""Training runs: reproducibility, interruption and resume, faults (NaN, corrupt checkpoints)."""

import hashlib
import os
import signal
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest

import robopg
from robopg.checkpoint import CheckpointError
from robopg.errors import EnvFailure
from robopg.metrics import WALL_COLUMNS, read_csv
from robopg.trainer import NonFiniteError, TrainingInterrupted

from .conftest import tiny


def _numbers(run_dir):
    return [{k: v for k, v in row.items() if k not in WALL_COLUMNS} for row in read_csv(run_dir / "metrics.csv")]


def _same(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        for k in ra:
            assert (np.isnan(ra[k]) and np.isnan(rb[k])) or ra[k] == rb[k], (k, ra, rb)


@pytest.mark.parametrize("env_id,kw", [
    ("CartPole-v1", dict(estimator="rtg", baseline="mean")),
    ("InvertedPendulum-v5", dict(estimator="gae", baseline="value", normalize_rewards=True)),
])
def test_same_seed_same_numbers(tmp_path, env_id, kw):
    a = robopg.train(tiny(env_id, **kw), tmp_path / "a")
    b = robopg.train(tiny(env_id, **kw), tmp_path / "b")
    _same(_numbers(a.run_dir), _numbers(b.run_dir))
    c = robopg.train(tiny(env_id, seed=1, **kw), tmp_path / "c")
    assert _numbers(c.run_dir) != _numbers(a.run_dir)


def interrupt_at(iteration):
    """A callback that sends this process SIGINT at the end of ``iteration``: the real handler path, as
    Ctrl-C would take it."""

    def callback(trainer, rollout, row):
        if trainer.iteration == iteration:
            os.kill(os.getpid(), signal.SIGINT)

    return callback


@pytest.mark.parametrize("env_id,kw", [
    ("CartPole-v1", dict(estimator="reinforce", baseline="none")),
    ("CartPole-v1", dict(estimator="gae", baseline="value")),
    *[(env_id, dict(kw, env_backend=backend)) for backend in ("gymnasium", "native") for env_id, kw in (
        ("HalfCheetah-v5", dict(estimator="gae", baseline="value", normalize_rewards=True, steps=3000,
                                batch_size=400)),
        ("Hopper-v5", dict(estimator="rtg", baseline="value", steps=3000, batch_size=400)),
        ("InvertedDoublePendulum-v5", dict(estimator="gae", baseline="value", steps=3000, batch_size=400)),
        # Ant's forward reward reads a body position computed one substep behind the state (as left by mj_step)
        ("Ant-v5", dict(estimator="gae", baseline="value", normalize_rewards=True, steps=2000, batch_size=400)),
    )],
    # Humanoid's forward reward reads its centre of mass (xipos, with each env's own masses) before each step.
    ("Humanoid-v5", dict(estimator="gae", baseline="value", steps=2000, batch_size=400)),
    # Every update rule: PPO's optimiser and adaptive learning rate, value clipping, the KL stop; TRPO's and
    # NPG's steps (no state of their own beyond V and the reward scaler).
    ("CartPole-v1", dict(algorithm="ppo", estimator="gae", baseline="value", desired_kl=0.01)),
    ("CartPole-v1", dict(algorithm="ppo", estimator="gae", baseline="value", desired_kl=0.01, recompute_advantages=True,
                         normalize_rewards=True)),
    ("CartPole-v1", dict(algorithm="trpo", estimator="rtg", baseline="mean")),
    ("CartPole-v1", dict(algorithm="npg", estimator="gae", baseline="value", max_kl=0.02)),
    ("Hopper-v5", dict(algorithm="ppo", env_backend="native", value_clip=0.2, normalize_minibatch_advantages=True,
                       target_kl=0.01, lr_schedule="linear", max_grad_norm=0.5, steps=3000, batch_size=400)),
    ("HalfCheetah-v5", dict(algorithm="trpo", env_backend="gymnasium", normalize_rewards=True, steps=3000,
                            batch_size=400)),
])
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, env_id, kw):
    config = tiny(env_id, checkpoint_every=100, **kw)
    full = robopg.train(config, tmp_path / "full")
    with pytest.raises(TrainingInterrupted):
        robopg.train(tiny(env_id, checkpoint_every=100, **kw), tmp_path / "cut", callbacks=[interrupt_at(3)])
    assert len(read_csv(tmp_path / "cut" / "metrics.csv")) == 3
    resumed = robopg.resume(tmp_path / "cut")
    assert resumed.env_steps == full.env_steps
    _same(_numbers(full.run_dir), _numbers(resumed.run_dir))


def test_crash_after_checkpoint_resumes_from_it(tmp_path):
    # A crash (not a signal) leaves metrics rows past the last checkpoint; resume drops and redoes them.
    full = robopg.train(tiny(checkpoint_every=2), tmp_path / "full")

    def crash(trainer, rollout, row):
        if trainer.iteration == 5:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        robopg.train(tiny(checkpoint_every=2), tmp_path / "cut", callbacks=[crash])
    assert len(read_csv(tmp_path / "cut" / "metrics.csv")) == 5
    robopg.resume(tmp_path / "cut")
    _same(_numbers(full.run_dir), _numbers(tmp_path / "cut"))


def test_sigint_from_outside_writes_checkpoint_and_prints_resume(tmp_path):
    run = tmp_path / "r"
    cmd = [sys.executable, "-m", "robopg.cli", "train", "CartPole-v1", "--steps", "10000000", "--batch-size",
           "512", "--num-envs", "4", "--run-dir", str(run), "--no-tensorboard", "--checkpoint-every", "1000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (run / "metrics.csv").exists() and len((run / "metrics.csv").read_text().splitlines()) > 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"robopg resume {run}" in err and "Traceback" not in err
    data = robopg.checkpoint.load(run / "checkpoints" / "latest.pt")
    assert data["iteration"] == len(read_csv(run / "metrics.csv"))


class NaNRewardEnv(gym.Env):
    """Gives ``bad_reward`` (NaN unless registered otherwise) from its 150th step on (iteration 5 with 32 steps
    per env per batch)."""

    def __init__(self, bad_reward: float = float("nan")):
        self.bad_reward = bad_reward

    observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = getattr(self, "t", 0)
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), {}

    def step(self, action):
        self.t += 1
        reward = self.bad_reward if self.t >= 150 else float(action[0])
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), reward, False, self.t % 20 == 0, {}


gym.register("robopg-test/NaNReward-v0", entry_point=NaNRewardEnv, max_episode_steps=20)


def test_nan_reward_stops_training_as_the_envs_fault_and_keeps_last_good_checkpoint(tmp_path):
    # The env's NaN is the env's fault: named where it happened (iteration 5), not as a non-finite loss.
    config = tiny("robopg-test/NaNReward-v0", num_envs=2, batch_size=64, steps=10_000, checkpoint_every=1,
                  normalize_observations=False)
    with pytest.raises(EnvFailure, match=r"env robopg-test/NaNReward-v0, env index 0, episode step 10: reward is nan"):
        robopg.train(config, tmp_path / "r")
    data = robopg.checkpoint.load(tmp_path / "r" / "checkpoints" / "latest.pt")
    assert data["iteration"] == 4
    assert all(np.isfinite(v.numpy()).all() for v in data["policy"].values() if hasattr(v, "numpy"))
    assert len(read_csv(tmp_path / "r" / "metrics.csv")) == 4


def test_diverging_update_is_a_non_finite_error_naming_the_iteration(tmp_path):
    # A step so large the parameters overflow: the maths failed, not the env.
    with pytest.raises(NonFiniteError, match="became non-finite at iteration 1"):
        robopg.train(tiny(lr=1e300, estimator="rtg", baseline="mean", batch_mode="episodes"), tmp_path / "r")
    assert not (tmp_path / "r" / "checkpoints" / "latest.pt").exists()
    assert len(read_csv(tmp_path / "r" / "metrics.csv")) == 0


def test_nan_through_the_cli_is_a_clear_error(tmp_path):
    code = ("import sys, gymnasium as gym; from tests.test_training import NaNRewardEnv; "
            "from robopg.cli import main; "
            f"sys.exit(main(['train', 'robopg-test/NaNReward-v0', '--num-envs', '2', '--batch-size', '64', "
            f"'--steps', '10000', '--run-dir', r'{tmp_path / 'r'}', '--no-tensorboard']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=os.getcwd())
    assert out.returncode == 1
    assert "env index 0, episode step 10: reward is nan" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "foreign"])
def test_corrupt_checkpoint_is_a_clear_error_and_untouched(trained_cartpole, tmp_path, damage, cli):
    import shutil

    import torch

    run = tmp_path / "r"
    shutil.copytree(trained_cartpole.run_dir, run)
    ckpt = run / "checkpoints" / "latest.pt"
    raw = ckpt.read_bytes()
    if damage == "truncate":
        ckpt.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        ckpt.write_bytes(os.urandom(len(raw)))
    elif damage == "empty":
        ckpt.write_bytes(b"")
    else:
        torch.save({"weights": torch.zeros(3)}, ckpt)
    before = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    with pytest.raises(CheckpointError):
        robopg.load(run)
    for args in (["eval", run], ["resume", run]):
        out = cli(*args)
        assert out.returncode == 2, out.stderr
        assert "latest.pt" in out.stderr and "Traceback" not in out.stderr
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() == before


def test_checkpoint_of_another_env_is_refused(trained_cartpole, tmp_path):
    import shutil

    run = tmp_path / "r"
    shutil.copytree(trained_cartpole.run_dir, run)
    other = robopg.train(tiny("Acrobot-v1"), tmp_path / "other")
    shutil.copy(other.run_dir / "checkpoints" / "latest.pt", run / "checkpoints" / "latest.pt")
    with pytest.raises(CheckpointError, match="Acrobot-v1"):
        robopg.resume(run)


def test_unsupported_action_space_is_a_clear_error(tmp_path, cli):
    out = cli("train", "Blackjack-v1", "--run-dir", tmp_path / "r")
    assert out.returncode == 2
    assert "observations" in out.stderr or "action space" in out.stderr
    assert "Traceback" not in out.stderr


def test_async_vector_env_trains_and_resumes(tmp_path):
    # Sub-envs live in other processes: training works the same; resume restarts their episodes
    # (their exact state cannot be read), so only the learner's state carries over.
    config = tiny(vectorization="async", checkpoint_every=100)
    with pytest.raises(TrainingInterrupted):
        robopg.train(config, tmp_path / "r", callbacks=[interrupt_at(2)])
    run = robopg.resume(tmp_path / "r")
    assert run.env_steps >= config.steps
    assert len(read_csv(run.metrics_path)) == run.iterations


def test_best_checkpoint_holds_the_best_iteration_and_its_policy(tmp_path):
    # best.pt is written with each checkpoint, from a copy taken when the best iteration ended; interrupted and
    # resumed, it still ends as the run's best. Returns are set by hand (a callback edits the row that
    # best-tracking reads) so that the best is not the last.
    import torch

    from robopg import checkpoint

    returns = [1.0, 5.0, 3.0, 9.0, 2.0, 2.0, 8.0, 4.0, 7.0, 1.0, 0.0, 6.0]
    policies = {}

    def record(trainer, rollout, row):
        row["return_mean"] = returns[trainer.iteration - 1]
        policies[trainer.iteration] = {k: v.clone() for k, v in trainer.policy.state_dict().items()}

    config = dict(estimator="gae", baseline="value", steps=512 * len(returns), checkpoint_every=5)
    run = robopg.train(tiny(**config), tmp_path / "r", callbacks=[record])
    saved = checkpoint.load(run.run_dir / "checkpoints" / "best.pt")
    assert saved["iteration"] == 4 and saved["return_mean"] == 9.0
    assert all(torch.equal(saved["policy"][k], v) for k, v in policies[4].items())
    assert not all(torch.equal(saved["policy"][k], v) for k, v in policies[5].items())

    cut = tmp_path / "cut"
    with pytest.raises(TrainingInterrupted):  # after the checkpoint at 5, before the next at 10
        robopg.train(tiny(**config), cut, callbacks=[record, interrupt_at(7)])
    robopg.resume(cut, callbacks=[record])
    resumed = checkpoint.load(cut / "checkpoints" / "best.pt")
    assert resumed["iteration"] == 4 and resumed["return_mean"] == 9.0
    assert all(torch.equal(resumed["policy"][k], saved["policy"][k]) for k in saved["policy"])
