"""Robustness maps (robopg robustness): the nominal cell is `robopg eval` exactly, any cell is eval on the robot with
those factors, all cells at once on the native backend give the numbers of Gymnasium's envs, and bad input is
exit 2 naming the option, with nothing written into a run that is not one."""

import json

import numpy as np
import pytest
import torch

import robopg
from robopg.envs import make_vector_env
from robopg.physics import set_physics
from robopg.robustness import evaluate_cells, grid_cells, parse_grid

from .conftest import tiny


@pytest.fixture(scope="module")
def hopper_run(tmp_path_factory):
    return robopg.train(tiny("Hopper-v5", steps=2048, batch_size=512), tmp_path_factory.mktemp("run") / "h").run_dir


def _eval_with_physics(policy, env_id, factors, episodes, seed):
    """robopg.api.evaluate's loop, on a Gymnasium vector env given ``factors`` first: the reference."""
    n = min(episodes, 16)
    venv = make_vector_env(env_id, n, backend="gymnasium")
    set_physics(venv, {p: np.full(n, f) for p, f in factors.items()})
    obs, _ = venv.reset(seed=seed)
    running, done, per_env = np.zeros(n), np.zeros(n, int), [[] for _ in range(n)]
    quota = np.array([episodes // n + (i < episodes % n) for i in range(n)])
    while (done < quota).any():
        with torch.no_grad():
            action = policy.act(np.asarray(obs, dtype=np.float32), deterministic=True)
        obs, reward, term, trunc, _ = venv.step(action)
        running += reward
        for i in np.flatnonzero(term | trunc):
            if done[i] < quota[i]:
                per_env[i].append(float(running[i]))
                done[i] += 1
            running[i] = 0.0
    venv.close()
    r = [x for e in per_env for x in e]
    return float(np.mean(r)), float(np.std(r))


def test_parse_grid():
    axes = parse_grid(["mass=0.5:1.5:5", "friction=0.4:1.6:3"])
    assert [a.param for a in axes] == ["body_mass", "geom_friction"]
    assert axes[0].values == [0.5, 0.75, 1.0, 1.25, 1.5] and axes[1].values[1] == 1.0
    cells = grid_cells(axes)
    assert len(cells) == 15 and cells[0] == {"body_mass": 0.5, "geom_friction": 0.4}


def test_nominal_cell_equals_robopg_eval_exactly(cli, hopper_run, tmp_path):
    ev = cli("eval", hopper_run, "--episodes", "5", "--json")
    assert ev.returncode == 0, ev.stderr
    rb = cli("robustness", hopper_run, "--grid", "mass=0.5:1.5:3", "friction=0.5:1.5:3", "--episodes", "5",
             "--json", "--out", tmp_path / "map")
    assert rb.returncode == 0, rb.stderr
    e, doc = json.loads(ev.stdout), json.loads(rb.stdout)
    assert doc["nominal_return"] == e["mean_return"] and doc["nominal_std"] == e["std_return"]
    centre = [c for c in doc["cells"] if c["mass"] == 1.0 and c["friction"] == 1.0]
    assert len(doc["cells"]) == 9 and centre[0]["mean_return"] == e["mean_return"]
    assert set(doc["cells"][0]) >= {"mass", "friction", "mean_return", "std_return"}
    assert doc["worst_return"] == min(c["mean_return"] for c in doc["cells"])
    assert 0 <= doc["fraction_above"] <= 1
    for name in ("robustness.csv", "robustness.json", "robustness.png"):
        assert (tmp_path / "map" / name).stat().st_size > 0
    assert len((tmp_path / "map" / "robustness.csv").read_text().splitlines()) == 10


def test_every_cell_equals_eval_with_its_factors_on_both_backends(hopper_run):
    policy = robopg.load(hopper_run)
    cells = grid_cells(parse_grid(["mass=0.6:1.4:2", "damping=0.5:1.0:2"]))
    native = evaluate_cells(policy, "Hopper-v5", cells, 3, seed=5, backend="native")
    gym = evaluate_cells(policy, "Hopper-v5", cells, 3, seed=5, backend="gymnasium")
    assert native == gym
    for cell, res in zip(cells, native):
        assert (res["mean_return"], res["std_return"]) == _eval_with_physics(policy, "Hopper-v5", cell, 3, 5)
    assert len({r["mean_return"] for r in native}) == 4  # the factors change the returns


def test_evaluation_acts_on_one_torch_thread_and_gives_the_caller_its_threads_back(hopper_run, monkeypatch):
    # Grid evaluation is thousands of few-row forward passes: on more threads, on a busy machine, each one waits
    # for threads that are not running (minutes for a grid instead of seconds). The reference above acts on the
    # caller's threads (2 here): the cells' numbers are the same.
    policy = robopg.load(hopper_run)
    seen = []
    act = type(policy).act
    monkeypatch.setattr(type(policy), "act", lambda self, *a, **k: (seen.append(torch.get_num_threads()),
                                                                     act(self, *a, **k))[1])
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cells = grid_cells(parse_grid(["mass=0.6:1.4:2"]))
        results = evaluate_cells(policy, "Hopper-v5", cells, 3, seed=5, backend="native")
        assert set(seen) == {1} and torch.get_num_threads() == 2
        for cell, res in zip(cells, results):
            assert (res["mean_return"], res["std_return"]) == _eval_with_physics(policy, "Hopper-v5", cell, 3, 5)
        assert seen[-1] == 2  # the reference's own passes ran on the caller's 2 threads
    finally:
        torch.set_num_threads(threads)


def test_a_run_with_env_kwargs_is_mapped_on_its_own_robot(cli, tmp_path):
    # Ant without its contact forces in the observation (27 inputs, not 105), on the native backend: the map's
    # envs must be built with the run's env kwargs, as `robopg eval` builds them.
    no_forces = {"include_cfrc_ext_in_observation": False}
    run = robopg.train(tiny("Ant-v5", steps=1024, batch_size=512, env_kwargs=no_forces), tmp_path / "ant").run_dir
    assert robopg.load(run).config.env_backend == "native"
    ev = cli("eval", run, "--episodes", "2", "--json")
    rb = cli("robustness", run, "--grid", "mass=0.8:1.2:2", "--episodes", "2", "--json", "--out", tmp_path / "m")
    assert ev.returncode == 0 and rb.returncode == 0, ev.stderr + rb.stderr
    assert json.loads(rb.stdout)["nominal_return"] == json.loads(ev.stdout)["mean_return"]


def test_one_axis_writes_a_curve(cli, hopper_run, tmp_path):
    out = cli("robustness", hopper_run, "--grid", "gear=0.8:1.2:3", "--episodes", "2", "--out", tmp_path / "m")
    assert out.returncode == 0, out.stderr
    assert "nominal return" in out.stdout and "worst cell gear=" in out.stdout and "grid mean" in out.stdout
    assert (tmp_path / "m" / "robustness.png").exists()


@pytest.mark.parametrize("grid", [["mass=0.5:1.5:1"], ["weight=0.5:1.5:3"], ["mass=1.5:0.5:3"], ["mass=0:1:3"],
                                  ["mass=0.5:1.5"], ["mass=0.5:1.5:3", "friction=1:2:2", "damping=1:2:2"]])
def test_bad_grid_exits_2(cli, hopper_run, grid):
    out = cli("robustness", hopper_run, "--grid", *grid)
    assert out.returncode == 2 and "--grid" in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_env_without_parameters_and_corrupt_or_foreign_runs(cli, trained_cartpole, hopper_run, tmp_path):
    out = cli("robustness", trained_cartpole.run_dir, "--grid", "mass=0.5:1.5:3", "--episodes", "1")
    assert out.returncode == 2 and "--grid" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not (trained_cartpole.run_dir / "robustness").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not a run")
    corrupt = tmp_path / "corrupt"
    (corrupt / "checkpoints").mkdir(parents=True)
    (corrupt / "config.yaml").write_text((hopper_run / "config.yaml").read_text())
    (corrupt / "checkpoints" / "latest.pt").write_bytes(b"\x80garbage")
    for run in (foreign, corrupt):
        before = sorted(p.name for p in run.rglob("*"))
        out = cli("robustness", run, "--grid", "mass=0.5:1.5:3")
        # (torch may warn about the damaged pickle first; the error itself is one line)
        assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].startswith("robopg: error:"), out.stderr
        assert sorted(p.name for p in run.rglob("*")) == before


def test_experiment_summary_with_one_seed_and_with_two(cli, hopper_run, tmp_path):
    # The experiment's table: an IQM with its bootstrap interval per arm, and no interval from one seed alone.
    from argparse import Namespace

    from robopg.experiments.robustness_experiment import summarize

    out = cli("robustness", hopper_run, "--grid", "mass=0.8:1.2:2", "friction=0.8:1.2:2", "--episodes", "1",
              "--out", tmp_path / "m")
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "m" / "robustness.json").read_text())
    other = dict(doc, nominal_return=doc["nominal_return"] + 100.0)
    args = Namespace(algorithm="ppo", steps=2048, grid=["mass=0.8:1.2:2", "friction=0.8:1.2:2"], episodes=1,
                     randomize="mass=0.5:1.5", obs_history=0, randomize_ramp=0, randomize_after=0,
                     randomize_focus=0.0, randomize_nominal=0.0, train_args="", all_args="")
    one = summarize("Hopper-v5", {"nominal": [doc], "randomized": [doc]}, tmp_path / "one", args)
    assert f"| nominal | {doc['nominal_return']:,.0f} | " in one and "[" not in one
    two = summarize("Hopper-v5", {"nominal": [doc, other], "randomized": [doc, other]}, tmp_path / "two", args)
    low, high = sorted((doc["nominal_return"], other["nominal_return"]))
    assert f"[{low:,.0f}, {high:,.0f}]" in two
    assert "per arm, `ppo`, 2,048 steps" in one  # the update rule is named beside the budget
    uneven = summarize("Hopper-v5", {"nominal": [doc, other], "randomized": [doc]}, tmp_path / "uneven", args)
    assert "2 seeds nominal, 1 seed randomized, `ppo`" in uneven  # a pilot arm's seeds are its own
    for d in ("one", "two"):
        assert (tmp_path / d / "maps.png").exists()
        assert json.loads((tmp_path / d / "results.json").read_text())["algorithm"] == "ppo"


def test_experiment_arms_get_their_options_and_the_nominal_arm_stays_the_preset():
    from argparse import Namespace

    from robopg.experiments.robustness_experiment import arm_options, main

    args = Namespace(randomize="mass=0.5:1.5", obs_history=3, randomize_ramp=0, randomize_after=500000,
                     randomize_focus=0.5, randomize_nominal=0.25, train_args="--hidden-sizes 256 256", all_args="")
    assert arm_options("nominal", args) == []
    assert arm_options("randomized", args) == ["--randomize", "mass=0.5:1.5", "--obs-history", "3",
                                               "--randomize-after", "500000", "--randomize-focus", "0.5",
                                               "--randomize-nominal", "0.25",
                                               "--hidden-sizes", "256", "256"]
    assert arm_options("privileged", args)[:4] == ["--randomize", "mass=0.5:1.5", "--critic-obs", "privileged"]
    # --all-args: every arm, the nominal one too, so that a change of batch shape is compared like for like.
    args.all_args = "--num-envs 64 --batch-size 2048"
    assert arm_options("nominal", args) == ["--num-envs", "64", "--batch-size", "2048"]
    assert arm_options("randomized", args)[:6] == ["--num-envs", "64", "--batch-size", "2048", "--randomize",
                                                   "mass=0.5:1.5"]
    for option in ("--train-args", "--all-args"):
        for bad in ("--no-such-option 1", "--hidden-sizes 'unclosed"):
            with pytest.raises(SystemExit) as e:
                main([option, bad])
            assert e.value.code == 2


def test_experiment_distilled_arm_is_a_teacher_then_its_student_on_one_budget(tmp_path):
    from robopg.api import load_config  # (not robopg.api.load_config: the test alone has not imported robopg.api)
    from robopg.experiments.robustness_experiment import main

    assert main(["--envs", "Hopper-v5", "--seeds", "1", "--steps", "4096", "--distill-steps", "2048",
                 "--arms", "distilled", "--grid", "mass=0.8:1.2:2", "--episodes", "1", "--obs-history", "1",
                 "--runs-dir", str(tmp_path / "runs"), "--docs-dir", str(tmp_path / "docs")]) == 0
    teacher = load_config(tmp_path / "runs" / "Hopper-v5" / "teacher-s0")
    student = load_config(tmp_path / "runs" / "Hopper-v5" / "distilled-s0")
    assert (teacher.policy_obs, teacher.steps, teacher.obs_history) == ("privileged", 2048, 1)
    assert (student.policy_obs, student.steps, student.obs_history) == ("estimated", 2048, 1)
    assert student.distill_from == str(tmp_path / "runs" / "Hopper-v5" / "teacher-s0")
    doc = json.loads((tmp_path / "docs" / "Hopper-v5" / "results.json").read_text())
    assert doc["distill_steps"] == 2048 and list(doc["arms"]) == ["distilled"]
    for bad in ("0", "4096"):
        with pytest.raises(SystemExit) as e:
            main(["--arms", "distilled", "--steps", "4096", "--distill-steps", bad])
        assert e.value.code == 2


def test_experiment_resumes_a_run_it_left_short_instead_of_mapping_it(tmp_path):
    # An experiment stopped mid-training leaves a checkpoint short of the budget: run again, it must finish that run
    # (robopg resume, so the numbers are the uninterrupted run's), not map a half-trained policy.
    from robopg.experiments.robustness_experiment import main
    from robopg.trainer import TrainingInterrupted

    from .test_training import _numbers, interrupt_at

    run_dir = tmp_path / "runs" / "Hopper-v5" / "nominal-s0"
    config = tiny("Hopper-v5", steps=1200, batch_size=400, checkpoint_every=1)
    full = robopg.train(config, tmp_path / "full")
    with pytest.raises(TrainingInterrupted):
        robopg.train(config, run_dir, callbacks=[interrupt_at(1)])
    assert torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=False)["env_steps"] < 1200
    argv = ["--envs", "Hopper-v5", "--seeds", "1", "--steps", "1200", "--arms", "nominal", "--grid", "mass=0.8:1.2:2",
            "--episodes", "1", "--runs-dir", str(tmp_path / "runs"), "--docs-dir", str(tmp_path / "docs")]
    assert main(argv) == 0
    assert _numbers(run_dir) == _numbers(full.run_dir)  # finished as if never stopped, then mapped
    assert (run_dir / "robustness" / "robustness.json").exists()
    (run_dir / "robustness" / "robustness.json").unlink()   # a corrupt checkpoint: a clear error, not a map
    (run_dir / "checkpoints" / "latest.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="nominal-s0"):
        main(argv)


def test_maps_side_by_side_share_one_colour_scale():
    # A colour must mean the same return in every arm's panel (the experiment's maps.png, robopg report's maps).
    import matplotlib.pyplot as plt
    from matplotlib.collections import QuadMesh

    from robopg.robustness import mean_map, plot_maps

    def doc(values):
        cells = [{"mass": m, "friction": f, "mean_return": v, "std_return": 0.0}
                 for (m, f), v in zip([(m, f) for m in (0.5, 1.0) for f in (0.5, 1.0)], values)]
        return {"grid": {"mass": [0.5, 1.0], "friction": [0.5, 1.0]}, "nominal_return": values[-1], "cells": cells}

    low = mean_map([doc([10.0, 20.0, 30.0, 40.0]), doc([30.0, 40.0, 50.0, 60.0])])
    assert [c["mean_return"] for c in low["cells"]] == [20.0, 30.0, 40.0, 50.0] and low["nominal_return"] == 50.0
    fig = plot_maps({"low": low, "high": doc([100.0, 200.0, 300.0, 400.0])})
    meshes = [a for ax in fig.axes if ax.get_title() for a in ax.get_children() if isinstance(a, QuadMesh)]
    assert len(meshes) == 2 and all(m.get_clim() == (20.0, 400.0) for m in meshes)
    plt.close(fig)
