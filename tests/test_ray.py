"""Distributed sampling on Ray: the gathered batch is exactly what the workers sampled with the learner's
weights, runs are reproducible, and a worker that dies or hangs mid-iteration costs nothing but time."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")

import robopg  # noqa: E402
from robopg.distributed import WorkerError, concatenate, worker_shares  # noqa: E402
from robopg.metrics import read_csv  # noqa: E402
from robopg.rollout_worker import RolloutWorker  # noqa: E402
from robopg.sampler import Rollout  # noqa: E402
from robopg.trainer import Trainer, TrainingInterrupted  # noqa: E402

from .conftest import ROOT, run_cli, tiny  # noqa: E402
from .ray_envs import EPISODE_LENGTH, register_counting  # noqa: E402
from .test_randomization import ramp_bound_holds  # noqa: E402
from .test_training import _numbers, _same, interrupt_at  # noqa: E402


def _ray_sessions() -> set[Path]:
    # Each Ray instance has its own session directory, which its processes name on their command lines.
    root = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray"
    return set(root.glob("session_2*"))


def _processes_of(session: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-af", session.name], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if "pgrep" not in line]


# --- pure pieces (no cluster) ------------------------------------------------------------------------
def test_shares_add_up_to_the_batch():
    # Steps mode: the [T, N] shape of one vector env with workers * envs_per_worker envs.
    assert worker_shares(1000, 3, 4, "steps") == [336, 336, 336]  # ceil(1000 / 12) = 84 steps per env
    assert worker_shares(1000, 3, 4, "episodes") == [334, 333, 333]


def test_concatenate_pads_shorter_shares_with_masked_steps():
    def part(t, n, value):
        return Rollout(np.full((t, n, 1), value, np.float32), np.zeros((t, n), np.int64), np.ones((t, n)),
                       np.zeros((t, n), bool), np.eye(t, n, dtype=bool)[::-1], np.zeros((t, n, 1), np.float32),
                       np.ones((t, n), bool), [float(value)], [t])

    ro = concatenate([part(3, 2, 1.0), part(5, 1, 2.0)])
    assert ro.obs.shape == (5, 3, 1)
    assert ro.mask[:3, :2].all() and not ro.mask[3:, :2].any() and ro.mask[:, 2].all()
    assert (ro.obs[3:, :2] == 0).all() and (ro.obs[:, 2] == 2.0).all()
    assert not (ro.terminated[3:, :2] | ro.truncated[3:, :2]).any()
    assert ro.episode_returns == [1.0, 2.0] and ro.num_steps == 11
    assert ro.context is None
    # The privileged critic's context comes along, padded like the observations.
    a, b = part(3, 2, 1.0), part(5, 1, 2.0)
    a.context, b.context = np.full((3, 2, 4), 0.5, np.float32), np.full((5, 1, 4), -0.5, np.float32)
    ro = concatenate([a, b])
    assert ro.context.shape == (5, 3, 4) and (ro.context[:3, :2] == 0.5).all() and (ro.context[3:, :2] == 0).all()
    assert (ro.context[:, 2] == -0.5).all()


# --- a local Ray instance started by robopg for the run (before the module's own instance) -----------
def test_cli_starts_local_ray_for_the_run_and_stops_it(tmp_path):
    run = tmp_path / "r"
    before = _ray_sessions()
    cli = subprocess.Popen([sys.executable, "-m", "robopg.cli", "train", "CartPole-v1", "--workers", "2",
                            "--envs-per-worker", "2", "--steps", "2048", "--batch-size", "512", "--run-dir", str(run),
                            "--no-tensorboard"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = cli.communicate(timeout=240)
    assert cli.returncode == 0, stderr
    assert "on 2 Ray workers" in stdout
    rows = read_csv(run / "metrics.csv")
    assert [r["env_steps"] for r in rows] == [512, 1024, 1536, 2048]
    assert all(r["worker_restarts"] == 0 for r in rows)
    # The instance the run started: a new session directory ending with the driver's pid (an instance started
    # meanwhile by anything else does not count, nor an old session of an earlier process with the same pid).
    # A loaded machine gets time for it to exit: ray.shutdown() signals its processes and returns.
    started = [p for p in _ray_sessions() - before if p.name.endswith(f"_{cli.pid}")]
    assert len(started) == 1, (started, _ray_sessions())
    session = started[0]
    deadline = time.monotonic() + 30.0
    while _processes_of(session) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = _processes_of(session)
    assert not left, f"the Ray instance started for the run was left running: {left}"


def test_unreachable_ray_address_is_a_clear_error(tmp_path):
    out = run_cli("train", "CartPole-v1", "--workers", "1", "--ray-address", "127.0.0.1:1", "--run-dir",
                  tmp_path / "r")
    assert out.returncode == 2, out.stderr
    assert "--ray-address" in out.stderr and "127.0.0.1:1" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "r").exists()


# --- on one local Ray instance shared by the module --------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.parametrize("batch_mode,estimator,baseline", [("episodes", "rtg", "mean"),
                                                           ("steps", "gae", "value")])
def test_gathered_batch_is_each_workers_share_and_normaliser_merges_exactly(ray_cluster, tmp_path, batch_mode,
                                                                             estimator, baseline):
    config = tiny("CartPole-v1", workers=2, envs_per_worker=3, batch_size=600, batch_mode=batch_mode,
                  estimator=estimator, baseline=baseline)
    trainer = Trainer(config, tmp_path)
    try:
        norm = trainer.policy.normalizer
        # Statistics far from the initial ones: a worker sampling without them would act differently.
        norm.update(np.random.default_rng(0).normal(1.0, 3.0, size=(50, 4)))
        state = {k: v.clone() for k, v in trainer.policy.state_dict().items()}
        prior_mean, prior_var, prior_count = norm.mean.clone().numpy(), norm.var.clone().numpy(), float(norm.count)
        rollout = trainer.sampler.collect()

        # Each worker's block of columns is what a worker with its seed samples with the learner's state.
        parts, col = [], 0
        for i, share in enumerate(trainer.sampler.shares):
            replica = RolloutWorker(config.to_dict(), None, i, share, 0)
            part, _, _ = replica.collect(state, 0)
            replica.close()
            t, e = part.obs.shape[0], config.envs_per_worker
            for name in ("obs", "actions", "rewards", "terminated", "truncated", "next_obs", "mask"):
                np.testing.assert_array_equal(getattr(rollout, name)[:t, col:col + e], getattr(part, name), name)
            assert not rollout.mask[t:, col:col + e].any()
            parts.append(part)
            col += e
        assert col == rollout.obs.shape[1] == config.resolved_num_envs() == 6
        assert rollout.episode_returns == [r for p in parts for r in p.episode_returns]
        if batch_mode == "steps":
            assert rollout.num_steps == 600 and rollout.obs.shape[0] == 100
        else:
            assert rollout.num_steps >= 600

        trainer.algorithm.update(rollout, iteration=1, progress=0.0)
        # One update from every worker's valid observations: the law of total variance over the prior
        # (count points with its mean and variance) and the union of the workers' observations.
        x = np.concatenate([p.obs[p.mask] for p in parts]).astype(np.float64)
        total = prior_count + len(x)
        mean = (prior_count * prior_mean + x.sum(0)) / total
        var = (prior_count * (prior_var + (prior_mean - mean) ** 2) + ((x - mean) ** 2).sum(0)) / total
        np.testing.assert_allclose(norm.mean.numpy(), mean, rtol=1e-10)
        np.testing.assert_allclose(norm.var.numpy(), var, rtol=1e-10)
        assert float(norm.count) == pytest.approx(total)
    finally:
        trainer.close()


@pytest.mark.parametrize("algorithm", ["ppo", "trpo"])
def test_trust_region_rules_on_two_workers_reproduce_and_resume(ray_cluster, tmp_path, algorithm):
    kw = dict(workers=2, envs_per_worker=2, estimator="gae", baseline="value", steps=2560, batch_size=512,
              algorithm=algorithm, checkpoint_every=100)
    a = robopg.train(tiny("CartPole-v1", **kw), tmp_path / "a")
    b = robopg.train(tiny("CartPole-v1", **kw), tmp_path / "b")
    _same(_numbers(a.run_dir), _numbers(b.run_dir))
    assert all(np.isfinite(r["approx_kl"]) for r in read_csv(a.run_dir / "metrics.csv"))
    # Resumed on Ray, the workers start new episodes (see test_interrupted_ray_run_resumes_to_completion); the
    # learner's state, the update rule's included, comes back from the checkpoint.
    with pytest.raises(TrainingInterrupted):
        robopg.train(tiny("CartPole-v1", **kw), tmp_path / "cut", callbacks=[interrupt_at(2)])
    resumed = robopg.resume(tmp_path / "cut")
    assert resumed.env_steps == a.env_steps
    assert len(read_csv(resumed.metrics_path)) == 5
    _same(_numbers(a.run_dir)[:2], _numbers(resumed.run_dir)[:2])


def test_privileged_critic_on_two_workers_reproduces(ray_cluster, tmp_path):
    # Each worker randomises its own envs; the learner's value function reads their draws beside the observations.
    kw = dict(workers=2, envs_per_worker=2, randomize="mass=0.5:1.5,friction=0.5:1.5", critic_obs="privileged",
              estimator="gae", baseline="value", steps=1024, batch_size=256)
    a = robopg.train(tiny("Hopper-v5", **kw), tmp_path / "a")
    b = robopg.train(tiny("Hopper-v5", **kw), tmp_path / "b")
    _same(_numbers(a.run_dir), _numbers(b.run_dir))
    state = torch.load(a.run_dir / "checkpoints" / "latest.pt", weights_only=False)
    first = next(v for k, v in state["value"].items() if k.endswith("weight"))
    obs_dim = 11  # Hopper's observation; the context adds the randomised factors
    assert first.shape[1] > obs_dim
    blind = robopg.train(tiny("Hopper-v5", **{**kw, "critic_obs": "obs"}), tmp_path / "blind")
    assert _numbers(blind.run_dir) != _numbers(a.run_dir)


def test_workers_widen_a_ramped_randomisation_with_the_runs_env_steps(ray_cluster, tmp_path):
    contexts = []
    kw = dict(workers=2, envs_per_worker=2, randomize="mass=0.5:1.5,friction=0.5:2:log", randomize_ramp=1024,
              estimator="gae", baseline="value", steps=1536, batch_size=256)
    robopg.train(tiny("Hopper-v5", **kw), tmp_path / "a",
                 callbacks=[lambda t, ro, row: contexts.append((t.env_steps - ro.num_steps, ro.context))])
    assert ramp_bound_holds(contexts, 1024)[-1] > 0.25
    contexts.clear()  # --randomize-after: the workers hold the nominal robot until the run's env step 512
    robopg.train(tiny("Hopper-v5", **kw, randomize_after=512), tmp_path / "b",
                 callbacks=[lambda t, ro, row: contexts.append((t.env_steps - ro.num_steps, ro.context))])
    spread = ramp_bound_holds(contexts, 1024, after=512)
    assert spread[1] == 0.0 and spread[-1] > 0.1


def test_workers_follow_a_start_schedule_on_the_runs_env_steps(ray_cluster, tmp_path):
    contexts = []  # the light robot joins the start robots at the run's env step 256, on every worker
    kw = dict(workers=2, envs_per_worker=2, randomize="mass=0.5:1.5", randomize_after=768, critic_obs="privileged",
              randomize_start="mass=1.4;mass=0.6@256", estimator="gae", baseline="value", steps=1024, batch_size=256)
    robopg.train(tiny("Hopper-v5", **kw), tmp_path / "a",
                 callbacks=[lambda t, ro, row: contexts.append((t.env_steps - ro.num_steps, ro.context))])
    masses = {steps: set(np.round(np.exp(c[..., 0].astype(float)), 4).ravel().tolist()) for steps, c in contexts}
    assert masses[0] == {1.4}
    assert masses[256] | masses[512] == {1.4, 0.6}


def test_workers_draw_from_the_learners_focus_and_reproduce(ray_cluster, tmp_path):
    kw = dict(workers=2, envs_per_worker=2, randomize="mass=0.5:1.5,friction=0.5:2:log", randomize_focus=0.8,
              estimator="gae", baseline="value", steps=1536, batch_size=256)
    scores = []
    a = robopg.train(tiny("Hopper-v5", **kw), tmp_path / "a",
                     callbacks=[lambda t, ro, row: scores.append(t.focus.score.copy())])
    # Every worker's finished episodes came back with their factors, and the learner scored them.
    assert (~np.isnan(scores[-1])).sum() > 4
    b = robopg.train(tiny("Hopper-v5", **kw), tmp_path / "b")
    _same(_numbers(a.run_dir), _numbers(b.run_dir))


def test_two_workers_same_seed_same_numbers(ray_cluster, tmp_path):
    kw = dict(workers=2, envs_per_worker=2, estimator="gae", baseline="value", steps=2048, batch_size=512)
    a = robopg.train(tiny("CartPole-v1", **kw), tmp_path / "a")
    b = robopg.train(tiny("CartPole-v1", **kw), tmp_path / "b")
    _same(_numbers(a.run_dir), _numbers(b.run_dir))
    c = robopg.train(tiny("CartPole-v1", seed=1, **kw), tmp_path / "c")
    assert _numbers(c.run_dir) != _numbers(a.run_dir)


def test_worker_that_cannot_start_is_a_clear_error(ray_cluster, tmp_path):
    env_id = register_counting("LearnerOnly", only_in_pid=os.getpid())
    config = tiny(env_id, workers=2, envs_per_worker=2, batch_size=160, steps=320, batch_mode="episodes",
                  estimator="rtg", baseline="mean")
    with pytest.raises(WorkerError, match="failed to start.*can only be made in process"):
        robopg.train(config, tmp_path / "r")
    assert not (tmp_path / "r").exists()


def _capture_rollouts():
    """A callback that keeps every iteration's rollout, and the workers' pids as they were after the first."""
    seen, pids = [], []

    def callback(trainer, rollout, row):
        if not pids:
            pids.extend(trainer.sampler.worker_pids())
        seen.append(rollout)

    return seen, pids, callback


def _episode_ids_of_whole_episodes(ro: Rollout) -> list[float]:
    """The ids of the episodes that end in this batch, checking each is whole and in order where it lies."""
    ids = []
    step = np.rint(ro.obs[..., 0] * EPISODE_LENGTH).astype(int)
    for n in range(ro.obs.shape[1]):
        valid = np.flatnonzero(ro.mask[:, n])
        assert np.all(np.diff(valid) == 1)  # no hole inside an env's data
        s = step[valid, n]
        # Within the column, steps count 0, 1, ..., 19, 0, 1, ... (possibly starting mid-episode).
        assert np.all((np.diff(s) == 1) | ((s[:-1] == EPISODE_LENGTH - 1) & (s[1:] == 0)))
        ended = valid[s == EPISODE_LENGTH - 1]
        assert np.all(ro.truncated[ended, n] & ~ro.terminated[ended, n])
        for t in ended:
            episode = ro.obs[max(t - EPISODE_LENGTH + 1, valid[0]):t + 1, n, 1]
            assert np.all(episode == episode[-1])  # one episode id throughout
            ids.append(float(episode[-1]))
    return ids


def test_killed_worker_is_restarted_and_its_share_sampled_again(ray_cluster, tmp_path, capsys):
    fault = tmp_path / "fault"
    fault.touch()
    # Each env takes 40 steps an iteration (2 episodes): its 50th step is in the middle of iteration 2.
    env_id = register_counting("Kill", fault_file=str(fault), at_step=50)
    seen, pids, capture = _capture_rollouts()
    killed = []

    def kill_when_stalled():
        pid_file = tmp_path / "fault.pid"
        deadline = time.time() + 120
        while not pid_file.exists() and time.time() < deadline:
            time.sleep(0.05)
        killed.append(int(pid_file.read_text()))
        os.kill(killed[0], signal.SIGKILL)

    killer = threading.Thread(target=kill_when_stalled, daemon=True)
    killer.start()
    config = tiny(env_id, workers=2, envs_per_worker=2, batch_size=160, steps=640, batch_mode="episodes",
                  estimator="rtg", baseline="mean", checkpoint_every=100)
    run = robopg.train(config, tmp_path / "r", callbacks=[capture])
    killer.join(timeout=5)
    assert killed and killed[0] in pids  # a worker process was killed, mid-iteration 2
    rows = read_csv(run.metrics_path)
    assert [r["worker_restarts"] for r in rows] == [0, 1, 0, 0]
    assert [r["env_steps"] for r in rows] == [160, 320, 480, 640]
    all_ids = []
    for ro, row in zip(seen, rows):
        # Each worker's share is 80 steps: 2 envs x 2 whole episodes of 20, exactly; nothing partial.
        assert ro.num_steps == 160 and row["episodes"] == 8
        assert ro.episode_lengths == [EPISODE_LENGTH] * 8 and ro.episode_returns == [20.0] * 8
        ids = _episode_ids_of_whole_episodes(ro)
        assert len(ids) == 8
        all_ids += ids
    # No episode twice, within or across iterations: the restarted worker is seeded anew.
    assert len(set(all_ids)) == len(all_ids) == 32
    out = capsys.readouterr().out
    assert "ray worker" in out and "sampled again" in out


def test_hung_worker_is_killed_after_the_timeout(ray_cluster, tmp_path, capsys):
    fault = tmp_path / "fault"
    fault.touch()
    env_id = register_counting("Hang", fault_file=str(fault), at_step=50, stall_s=300.0)
    seen, pids, capture = _capture_rollouts()
    config = tiny(env_id, workers=2, envs_per_worker=2, batch_size=160, steps=640, batch_mode="steps",
                  estimator="gae", baseline="value", worker_timeout=5.0, checkpoint_every=100)
    t0 = time.time()
    run = robopg.train(config, tmp_path / "r", callbacks=[capture])
    assert time.time() - t0 < 120
    hung = int((tmp_path / "fault.pid").read_text())
    assert hung in pids
    rows = read_csv(run.metrics_path)
    assert [r["worker_restarts"] for r in rows] == [0, 1, 0, 0]
    assert [r["env_steps"] for r in rows] == [160, 320, 480, 640]
    for ro, row in zip(seen, rows):
        assert ro.num_steps == 160 and ro.obs.shape[:2] == (40, 4) and ro.mask.all()
        ids = _episode_ids_of_whole_episodes(ro)
        # Every episode that ended in the batch is counted once, with its whole return.
        assert len(ro.episode_returns) == len(ids) == row["episodes"]
        assert ro.episode_returns == [float(EPISODE_LENGTH)] * len(ids)
    assert "took longer than --worker-timeout 5 s: killed" in capsys.readouterr().out
    assert not pid_alive(hung)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_interrupted_ray_run_resumes_to_completion(ray_cluster, tmp_path):
    kw = dict(workers=2, envs_per_worker=2, estimator="gae", baseline="value", steps=2560, batch_size=512,
              checkpoint_every=100)
    with pytest.raises(TrainingInterrupted):
        robopg.train(tiny("CartPole-v1", **kw), tmp_path / "r", callbacks=[interrupt_at(2)])
    assert len(read_csv(tmp_path / "r" / "metrics.csv")) == 2
    run = robopg.resume(tmp_path / "r")
    assert run.env_steps == 2560 and run.iterations == 5
    rows = read_csv(run.metrics_path)
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["env_steps"] for r in rows] == [512 * k for k in range(1, 6)]
    import pickle
    ckpt = robopg.checkpoint.load(tmp_path / "r" / "checkpoints" / "latest.pt")
    # The resumed workers started a new incarnation: fresh seeds, not a replay of the first episodes.
    assert pickle.loads(ckpt["sampler"])["ray_incarnations"] == [1, 1]


@pytest.mark.slow
@pytest.mark.parametrize("env_id,threshold", [("CartPole-v1", 475.0), ("InvertedPendulum-v5", 950.0)])
def test_two_workers_learn_like_local_training(ray_cluster, tmp_path, env_id, threshold):
    # The presets' 8 envs as 2 workers x 4, and the local learning test's bar (tests/test_learning.py).
    config = robopg.make_config(env_id, workers=2, envs_per_worker=4, tensorboard=False)
    run = robopg.train(config, tmp_path / "run")
    result = robopg.evaluate(robopg.load(run.run_dir), env_id, episodes=20)
    assert result["mean_return"] >= threshold, result


@pytest.mark.slow
def test_two_node_cluster_survives_losing_a_node():
    # ray start --head + ray start --address on this machine; the second node is killed mid-run.
    out = subprocess.run([sys.executable, "-m", "benchmarks.ray_two_nodes", "--steps", "8192", "--fast-detection"],
                         cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "all checks passed" in out.stdout
