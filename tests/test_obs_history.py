"""Observation history (--obs-history K): the layout against a reference built by hand from the plain env (newest
first, zeros before an episode's start, the ended episode's final observation stacked with its own history), the
same stacked trajectories on both backends, bit-exact resume, and every consumer of a run (eval, robustness,
export, video, Ray workers) building the same input; K = 0 is the env itself, and bad input exits 2."""

import json

import numpy as np
import pytest

import robopg
from robopg.envs import make_vector_env
from robopg.envs.history import ObservationHistory
from robopg.metrics import read_csv
from robopg.rollout_worker import RolloutWorker
from robopg.trainer import TrainingInterrupted

from .conftest import tiny
from .test_randomization import same_on_both_backends
from .test_training import _numbers, _same, interrupt_at


def _expected(obs_seen: list, actions_taken: list, k: int, act_width: int) -> np.ndarray:
    """[o_t, ..., o_{t-k}, a_{t-1}, ..., a_{t-k}] from one episode's observations and actions so far."""
    dim = obs_seen[0].shape[0]
    past = [obs_seen[-1 - j] if j < len(obs_seen) else np.zeros(dim) for j in range(k + 1)]
    acts = [actions_taken[-1 - j] if j < len(actions_taken) else np.zeros(act_width) for j in range(k)]
    return np.concatenate(past + acts).astype(np.float32)


@pytest.mark.parametrize("env_id,k", [("Hopper-v5", 2), ("CartPole-v1", 3)])
def test_layout_matches_a_reference_built_from_the_plain_env(env_id, k):
    n, seeds = 3, [4, 5, 6]
    plain, wrapped = make_vector_env(env_id, n), make_vector_env(env_id, n, obs_history=k)
    discrete = env_id == "CartPole-v1"
    width = 2 if discrete else 3
    rng = np.random.default_rng(0)
    obs, _ = plain.reset(seed=seeds)
    stacked, _ = wrapped.reset(seed=seeds)
    seen = [[o] for o in obs]
    taken: list[list] = [[] for _ in range(n)]
    endings = 0
    for _ in range(300):
        actions = rng.integers(0, 2, n) if discrete else rng.uniform(-1, 1, (n, 3)).astype(np.float32)
        for i in range(n):
            np.testing.assert_array_equal(stacked[i], _expected(seen[i], taken[i], k, width))
        obs, reward, term, trunc, info = plain.step(actions)
        stacked, w_reward, w_term, w_trunc, w_info = wrapped.step(actions)
        np.testing.assert_array_equal(reward, w_reward)
        for i in range(n):
            taken[i].append(np.eye(2)[actions[i]] if discrete else actions[i])
            if term[i] or trunc[i]:
                endings += 1
                final = _expected(seen[i] + [info["final_obs"][i]], taken[i], k, width)
                np.testing.assert_array_equal(w_info["final_obs"][i], final)
                seen[i], taken[i] = [obs[i]], []
            else:
                seen[i].append(obs[i])
    assert endings >= 5  # many episode boundaries crossed
    assert wrapped.single_observation_space.shape == ((k + 1) * plain.single_observation_space.shape[0] + k * width,)
    plain.close()
    wrapped.close()


def test_same_stacked_trajectories_on_both_backends():
    native = same_on_both_backends(obs_history=2, action_delay="0:1")  # randomisation's draws, and a history
    assert native[0].obs.shape == (64, 4, 3 * 11 + 2 * 3)
    np.testing.assert_array_equal(native[0].obs[0, :, 11:], 0.0)  # the first step has no past


@pytest.mark.parametrize("backend", ["native", "gymnasium"])
def test_history_run_resumes_to_the_same_numbers(tmp_path, backend):
    kw = dict(obs_history=3, randomize="mass=0.5:1.5", critic_obs="privileged", env_backend=backend, steps=2400,
              batch_size=400, checkpoint_every=100)
    full = robopg.train(tiny("Hopper-v5", **kw), tmp_path / "full")
    with pytest.raises(TrainingInterrupted):
        robopg.train(tiny("Hopper-v5", **kw), tmp_path / "cut", callbacks=[interrupt_at(3)])
    assert len(read_csv(tmp_path / "cut" / "metrics.csv")) == 3
    _same(_numbers(full.run_dir), _numbers(robopg.resume(tmp_path / "cut").run_dir))
    without = robopg.train(tiny("Hopper-v5", **dict(kw, obs_history=0)), tmp_path / "without")
    assert _numbers(without.run_dir) != _numbers(full.run_dir)
    assert robopg.api.load_config(full.run_dir).obs_history == 3  # recorded in config.yaml


@pytest.fixture(scope="module")
def history_run(tmp_path_factory):
    return robopg.train(tiny("Hopper-v5", obs_history=2, steps=2048), tmp_path_factory.mktemp("h") / "h").run_dir


def test_eval_and_the_robustness_nominal_cell_see_the_history(cli, history_run, tmp_path):
    policy = robopg.load(history_run)
    assert policy.normalizer.mean.numel() == 3 * 11 + 2 * 3
    ev = cli("eval", history_run, "--episodes", "3", "--json")
    rb = cli("robustness", history_run, "--grid", "mass=0.5:1.5:3", "--episodes", "3", "--json",
             "--out", tmp_path / "map")
    assert ev.returncode == 0 and rb.returncode == 0, ev.stderr + rb.stderr
    assert json.loads(rb.stdout)["nominal_return"] == json.loads(ev.stdout)["mean_return"]


def test_export_records_the_layout_and_video_stacks_the_input(cli, history_run, tmp_path):
    pytest.importorskip("onnxruntime")
    out = cli("export", history_run, "--format", "onnx", "--out", tmp_path / "x")
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "x" / "policy.json").read_text())
    history = doc["model"]["inputs"][0]["history"]
    assert history["k"] == 2 and history["observation_dim"] == 11 and "newest first" in history["layout"]
    assert doc["model"]["inputs"][0]["shape"][-1] == 39

    from robopg.experiments.video import render_episodes
    cartpole = robopg.train(tiny("CartPole-v1", obs_history=1, steps=1024), tmp_path / "c").run_dir
    frames, _, returns = render_episodes(robopg.load(cartpole), "CartPole-v1", max_steps=5, obs_history=1,
                                         width=32, height=32)
    assert len(frames) > 1 and len(returns) == 1


def test_ray_worker_stacks_its_own_envs():
    c = tiny("Hopper-v5", obs_history=2, workers=2, envs_per_worker=2, batch_size=64)
    w = RolloutWorker(c.to_dict(), None, 0, 32)
    rollout = w.collect(w.policy.state_dict(), 0)[0]
    w.close()
    assert rollout.obs.shape == (16, 2, 39)
    np.testing.assert_array_equal(rollout.obs[0, :, 11:], 0.0)  # the episode's first step has no past yet


def test_zero_is_the_env_itself_and_bad_input_exits_2(cli, tmp_path):
    venv = make_vector_env("Hopper-v5", 2, obs_history=0)
    assert not isinstance(venv, ObservationHistory)
    venv.close()
    out = cli("train", "Hopper-v5", "--obs-history", "-1", "--run-dir", tmp_path / "r")
    assert out.returncode == 2 and "--obs-history" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    out = cli("train", "Hopper-v5", "--obs-history", "1.5", "--run-dir", tmp_path / "r")  # argparse's own message
    assert out.returncode == 2 and "--obs-history" in out.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "r").exists()
