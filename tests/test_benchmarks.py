"""Smoke test of the benchmark suites: each one's smallest configuration, and the shape of what it writes.

Not a timed test: the numbers are not checked, only that every suite runs end to end and writes its
markdown and JSON. Only the learning suite cannot run without the ``bench`` extra (Stable-Baselines3); the
throughput suite leaves its SB3 sides out without it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

HAS_SB3 = importlib.util.find_spec("stable_baselines3") is not None
needs_sb3 = pytest.mark.skipif(not HAS_SB3, reason="stable_baselines3 is not installed (pip install -e '.[bench]')")


def _suite(args: list[str], out: Path, module: str = "benchmarks") -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", module, *args, "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _check_common(data: dict) -> None:
    meta = data["meta"]
    assert meta["command"].startswith("python -m benchmarks ")
    assert meta["machine"]["cores"] >= 1 and meta["machine"]["cpu_model"]
    assert meta["versions"]["torch"] and (meta["versions"]["stable_baselines3"] or not HAS_SB3)
    assert meta["complete"] is True


def test_throughput_smallest(tmp_path):
    sb3 = ["a2c"] if HAS_SB3 else []
    _suite(["throughput", "--envs", "InvertedPendulum-v5", "--num-envs", "1", "--reps", "1", "--steps", "64",
            "--sb3", *sb3, "--no-envpool", "--backends", "gymnasium", "native"], tmp_path)
    data = json.loads((tmp_path / "throughput.json").read_text())
    _check_common(data)
    (cell,) = data["cells"]
    assert set(cell["rates"]) == {"limit", "robopg", "limit-native", "robopg-native", *(f"sb3-{a}" for a in sb3)}
    assert all(r["steps_per_s"] > 0 for rs in cell["runs"].values() for r in rs)
    assert cell["peak_rss_mb"]["robopg"] > 50
    assert {"robopg/limit", "robopg-native/limit", *(f"robopg/sb3-{a}" for a in sb3)} <= set(cell["ratios"])
    md = (tmp_path / "throughput.md").read_text()
    assert "| InvertedPendulum-v5 | 1 |" in md and "Command: `python -m benchmarks throughput" in md


def test_throughput_ppo_smallest(tmp_path):
    # robopg PPO on both backends (and SB3 PPO where installed), the same 2048-step batches
    sb3 = ["ppo"] if HAS_SB3 else []
    _suite(["throughput", "--ppo", "--envs", "InvertedPendulum-v5", "--num-envs", "2", "--reps", "1", "--steps", "64",
            "--sb3", *sb3, "--no-envpool", "--backends", "gymnasium", "native", "--name", "tp"], tmp_path)
    (cell,) = json.loads((tmp_path / "tp.json").read_text())["cells"]
    # the Gymnasium limit too: no trainer on that backend steps faster, so limit/sb3-ppo caps robopg-ppo/sb3-ppo
    assert set(cell["rates"]) == {"limit", "robopg-ppo", "robopg-ppo-native", *(f"sb3-{a}" for a in sb3)}
    for name in ("robopg-ppo", "robopg-ppo-native", *(f"sb3-{a}" for a in sb3)):
        assert cell["runs"][name][0]["batch_size"] == 2048
    if HAS_SB3:
        assert {"robopg-ppo/sb3-ppo", "robopg-ppo-native/sb3-ppo", "limit/sb3-ppo"} <= set(cell["ratios"])
        assert "× SB3 PPO" in (tmp_path / "tp.md").read_text()


def test_queue_table_keeps_small_returns_decimals(tmp_path):
    # Reacher's returns are a few units: its interval must not round to one integer.
    from benchmarks.queue import render

    out = tmp_path / "r.jsonl"
    out.write_text("".join(json.dumps({"env": "Reacher-v5", "algorithm": "ppo", "seed": s, "options": [],
                                       "mean_return": r, "cpu_s": 60.0}) + "\n"
                           for s, r in enumerate([-4.2, -4.0, -4.2, -3.9, -4.0])))
    row = next(line for line in render(out, "t").splitlines() if line.startswith("| Reacher-v5"))
    assert "**-4.1** [-4.2, -3.9]" in row and "≥ -4.5 (met)" in row, row


def test_queue_runs_skips_and_renders(tmp_path):
    jobs = tmp_path / "jobs"
    jobs.write_text("# comment\nCartPole-v1 ppo 3 --num-envs 2 --batch-size 256 --minibatch-size 64\n"
                    "CartPole-v1 pg 4 --batch-size 256\n")
    out, runs = tmp_path / "results.jsonl", tmp_path / "runs"
    args = [str(jobs), "--out", str(out), "--runs", str(runs), "--steps", "512", "--jobs", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT)}
    for _ in range(2):  # the second pass finds both runs done and runs nothing
        proc = subprocess.run([sys.executable, "-m", "benchmarks.queue", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((r["algorithm"], r["seed"]) for r in rows) == [("pg", 4), ("ppo", 3)]
    for r in rows:
        assert r["returncode"] == 0 and r["episodes"] == 10 and r["cpu_s"] > 0 and "--steps 512" in r["command"]
        config = (Path(r["run_dir"]) / "config.yaml").read_text()
        assert f"algorithm: {r['algorithm']}" in config and f"seed: {r['seed']}" in config
    proc = subprocess.run([sys.executable, "-m", "benchmarks.queue", "--out", str(out), "--render",
                           str(tmp_path / "t.md")], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "t.md").read_text()
    assert "| CartPole-v1 | ppo | --num-envs 2 --batch-size 256 --minibatch-size 64 | 1 |" in md
    assert "| CartPole-v1 | pg | --batch-size 256 | 1 |" in md


def test_zoo_entries_become_sb3_arguments():
    # An rl-zoo3 entry as its ppo.yml writes it (Hopper-v4's shape, with a schedule): what SB3 is given.
    import sys

    sys.path.insert(0, str(ROOT))
    from benchmarks.workers import _zoo_kwargs

    entry = {"normalize": True, "n_envs": 1, "policy": "MlpPolicy", "n_timesteps": 1e6, "batch_size": 32,
             "n_steps": 512, "gamma": 0.999, "learning_rate": "lin_3e-4", "clip_range": 0.2,
             "policy_kwargs": "dict(log_std_init=-2, ortho_init=False, activation_fn=nn.ReLU, "
                              "net_arch=dict(pi=[256, 256], vf=[256, 256]))"}
    n_envs, kwargs, norm = _zoo_kwargs(entry)
    assert n_envs == 1 and norm == {"gamma": 0.999}
    assert kwargs["learning_rate"](1.0) == 3e-4 and kwargs["learning_rate"](0.5) == 1.5e-4
    assert kwargs["policy_kwargs"]["net_arch"] == {"pi": [256, 256], "vf": [256, 256]}
    assert kwargs["policy_kwargs"]["activation_fn"].__name__ == "ReLU"
    assert "n_timesteps" not in kwargs and "policy" not in kwargs and kwargs["n_steps"] == 512
    _, _, norm = _zoo_kwargs({"normalize": "dict(norm_obs=True, norm_reward=False)", "gamma": 0.9999})
    assert norm == {"gamma": 0.9999, "norm_obs": True, "norm_reward": False}
    assert _zoo_kwargs({"policy": "MlpPolicy"})[2] is None


def test_zoo_runs_learn_the_task_robopgs_preset_learns():
    # Ant-v5's PPO preset drops the 78 contact forces from the observation (as Ant-v4, where rl-zoo3 tuned its
    # values): SB3's side must be given the same env options, and robots without options get none.
    import sys

    sys.path.insert(0, str(ROOT))
    from benchmarks.learning import zoo_env_kwargs

    from robopg.presets import preset

    assert zoo_env_kwargs("Ant-v5") == preset("Ant-v5", "ppo")["env_kwargs"] == {
        "include_cfrc_ext_in_observation": False}
    assert zoo_env_kwargs("Hopper-v5") == {} and zoo_env_kwargs("HalfCheetah-v5") == {}


@needs_sb3
def test_zoo_run_trains_and_evaluates_on_the_given_env_options(tmp_path):
    pytest.importorskip("rl_zoo3")
    import sys

    sys.path.insert(0, str(ROOT))
    from benchmarks.workers import learn_zoo
    from stable_baselines3 import PPO

    r = learn_zoo("Ant-v5", 0, 1, str(tmp_path), {"include_cfrc_ext_in_observation": False})
    assert r["env_kwargs"] == {"include_cfrc_ext_in_observation": False}
    assert PPO.load(tmp_path / "model.zip", device="cpu").observation_space.shape == (27,)  # 105 with the forces


def test_zoo_runs_are_their_own_robots_and_seeds():
    # `--seeds 0 --zoo-seeds 3`: only rl-zoo3's runs, on --zoo-envs (Ant-v5 too, which --envs does not name), and
    # the table shows those robots.
    import argparse
    import sys

    sys.path.insert(0, str(ROOT))
    from benchmarks.learning import jobs_for, table_envs

    args = argparse.Namespace(seeds=0, ppo_seeds=0, zoo_seeds=3, envs=["Hopper-v5", "HalfCheetah-v5", "Walker2d-v5"],
                              zoo_envs=["Hopper-v5", "HalfCheetah-v5", "Ant-v5"])
    jobs = jobs_for(args)
    assert {(j["algo"], j["env"], j["seed"]) for j in jobs} == {("zoo", e, s) for e in args.zoo_envs for s in range(3)}
    assert [j["seed"] for j in jobs] == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # seed-major: stopped early, every robot has seed 0
    assert table_envs(args) == ["Hopper-v5", "HalfCheetah-v5", "Walker2d-v5", "Ant-v5"]
    args.zoo_seeds = 0
    assert jobs_for(args) == [] and table_envs(args) == args.envs


@needs_sb3
def test_learning_smallest(tmp_path):
    _suite(["learning", "--envs", "InvertedPendulum-v5", "--steps", "2048", "--seeds", "1", "--ppo-seeds", "0"],
           tmp_path)
    data = json.loads((tmp_path / "learning.json").read_text())
    _check_common(data)
    assert set(data["runs"]) == {"robopg/InvertedPendulum-v5/s0", "a2c/InvertedPendulum-v5/s0"}
    for r in data["runs"].values():
        assert r["eval_episodes"] == 10 and r["env_steps"] >= 2048 and r["wall_s"] > 0
    assert set(data["summary"]) == {"robopg/InvertedPendulum-v5", "a2c/InvertedPendulum-v5"}
    assert (tmp_path / "learning-InvertedPendulum-v5.png").is_file()
    assert "published, not measured here" not in (tmp_path / "learning.md").read_text()  # none for this env


def test_scaling_smallest(tmp_path):
    _suite(["scaling", "--env", "InvertedPendulum-v5", "--num-envs", "1", "2", "--batch-sizes", "256",
            "--min-steps", "256"], tmp_path)
    data = json.loads((tmp_path / "scaling.json").read_text())
    _check_common(data)
    assert [c["num_envs"] for c in data["cells"]] == [1, 2]
    for c in data["cells"]:
        assert c["breakdown_s"]["env_step"] > 0 and c["breakdown_s"]["policy_inference"] > 0
        assert abs(sum(c["breakdown_s"].values()) - c["wall_s"]) < 1e-6
    assert data["memory"]["num_envs"] == [1, 2]
    assert (tmp_path / "scaling.png").is_file()


def test_native_smallest(tmp_path):
    proc = _suite(["--envs", "HalfCheetah-v5", "--num-envs", "4", "--reps", "2", "--env-steps", "64",
                   "--iterations", "1"], tmp_path, module="benchmarks.native")
    data = json.loads((tmp_path / "native.json").read_text())
    (stepping,), (training,) = data["stepping"], data["training"]
    assert (stepping["env_id"], stepping["num_envs"]) == ("HalfCheetah-v5", 4)
    assert len(stepping["speedup"]["runs"]) == 2 and all(x > 0 for x in stepping["native"]["runs"])
    assert 0 < stepping["fraction_of_limit"] and stepping["physics_limit"] > 0
    assert len(training["speedup"]["runs"]) == 2 and all(x > 0 for x in training["gymnasium"]["runs"])
    md = (tmp_path / "native.md").read_text()
    assert "| HalfCheetah-v5 | 4 |" in md and "HalfCheetah-v5: 1024-step batches" in md
    assert "Smallest median speed-up" in proc.stdout
