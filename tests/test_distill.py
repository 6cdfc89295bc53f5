"""Teacher and student (robopg.distill): a --policy-obs privileged policy reads its own episode's true factors in
training (from the first step of every episode) and the cell's in evaluation; its student is the teacher's network
with those inputs replaced by an estimate fit to the teacher's normalised ones, and nothing else of it moves; a
student resumes to the same numbers; bad input exits 2 naming the option."""

import copy
import math

import numpy as np
import pytest
import torch

import robopg
from robopg import make_config
from robopg.config import ConfigError
from robopg.envs import make_vector_env
from robopg.physics import set_physics
from robopg.trainer import Trainer, TrainingInterrupted

from .conftest import tiny
from .test_training import _numbers, _same, interrupt_at

SPEC = "mass=0.5:1.5,friction=0.5:1.5"
TEACHER = dict(randomize=SPEC, policy_obs="privileged", obs_history=1, estimator="gae", baseline="value",
               num_envs=4, batch_size=512, steps=2048)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return robopg.train(tiny("Hopper-v5", **TEACHER), tmp_path_factory.mktemp("teacher") / "t").run_dir


def test_privileged_policy_reads_its_own_episodes_factors_from_their_first_step(tmp_path):
    trainer = Trainer(tiny("Hopper-v5", **TEACHER), tmp_path / "r")
    try:
        assert trainer.policy.physics_estimate is None
        assert trainer.policy.normalizer.mean.numel() == 2 * 11 + 3 + 2  # o_t, o_{t-1}, a_{t-1}, then c
        for _ in range(2):  # the second batch starts mid-episode, from the first's last observations
            rollout = trainer.sampler.collect()
            assert np.array_equal(rollout.obs[..., -2:], rollout.context)
            ended = rollout.terminated | rollout.truncated
            # an ended step's next observation is its own robot's; the step after it, the next robot's
            assert np.array_equal(rollout.next_obs[..., -2:][ended], rollout.context[ended])
            t, i = np.nonzero(ended[:-1])
            assert len(t) > 5 and (rollout.obs[t + 1, i, -2:] != rollout.context[t, i]).all()
            going = ~ended[:-1]
            assert np.array_equal(rollout.next_obs[:-1][going], rollout.obs[1:][going])
    finally:
        trainer.close()


def test_evaluation_envs_append_the_factors_they_were_given():
    venv = make_vector_env("Hopper-v5", 3, obs_history=1, physics_context=("body_mass", "geom_friction"))
    try:
        set_physics(venv, {"body_mass": np.array([0.5, 1.0, 1.3]), "geom_friction": np.array([1.0, 0.7, 1.0])})
        obs, _ = venv.reset(seed=0)
        expected = np.log(np.array([[0.5, 1.0], [1.0, 0.7], [1.3, 1.0]])).astype(np.float32)
        assert obs.shape == (3, 2 * 11 + 3 + 2) and np.array_equal(obs[:, -2:], expected)
        for _ in range(200):
            obs, _, terminated, truncated, info = venv.step(np.ones((3, 3), np.float32))
            assert np.array_equal(obs[:, -2:], expected)
            for i in np.flatnonzero(terminated | truncated):
                assert np.array_equal(info["final_obs"][i][-2:], expected[i])
    finally:
        venv.close()


def test_teacher_grid_nominal_cell_is_eval_and_the_factors_matter(teacher):
    from robopg.robustness import evaluate_cells

    policy = robopg.load(teacher)
    nominal, light = evaluate_cells(policy, "Hopper-v5", [{}, {"body_mass": 0.5}], episodes=2)
    assert nominal["mean_return"] == robopg.evaluate(policy, "Hopper-v5", episodes=2)["mean_return"]
    told = copy.deepcopy(policy)
    obs = np.random.default_rng(0).normal(0.0, 1.0, (50, policy.normalizer.mean.numel())).astype(np.float32)
    lied = obs.copy()
    lied[:, -2:] += 0.5
    assert np.abs(told.act(obs) - told.act(lied)).max() > 0  # the factors are inputs of the network
    assert light["mean_return"] != nominal["mean_return"]


def test_student_is_the_teacher_with_its_factors_estimated(teacher, tmp_path):
    from robopg.distill import init_student, student_values

    values = student_values(robopg.api.load_config(teacher), teacher)
    config = make_config(values.pop("env_id"), **{**values, "steps": 1024, "tensorboard": False})
    assert config.policy_obs == "estimated" and config.obs_history == 1 and config.distill_from == str(teacher)
    trainer = Trainer(config, tmp_path / "s")
    try:
        student, fit = trainer.policy, trainer.physics_fit
        t = robopg.load(teacher)
        init_student(student, fit, config, t)
        n = student.normalizer.mean.numel()
        assert n == t.normalizer.mean.numel() - 2
        assert torch.equal(student.mean_net[0].weight, t.mean_net[0].weight)
        assert torch.equal(student.log_std, t.log_std)
        assert torch.equal(student.normalizer.var, t.normalizer.var[:n])
        # Were the estimate exact (the teacher's normalised factors), the student would act as the teacher does.
        rng = np.random.default_rng(1)
        obs = torch.as_tensor(rng.normal(0.0, 2.0, (64, n)), dtype=torch.float32)
        context = torch.as_tensor(np.log(rng.uniform(0.5, 1.5, (64, 2))), dtype=torch.float32)
        with torch.no_grad():
            exact = student.mean_net(torch.cat([student.normalizer(obs), fit.target(context)], -1))
            assert torch.equal(exact, t.mode(torch.cat([obs, context], -1)))
        # One batch: the estimate moves towards those targets; nothing else of the policy moves.
        before = copy.deepcopy(student.state_dict())
        rollout, stats = trainer.step()
        assert stats.keys() == {"physics_estimate_loss", "physics_estimate_r2"}
        after = student.state_dict()
        moved = {k for k in after if not torch.equal(after[k], before[k])}
        assert moved and all(k.startswith("physics_estimate.") for k in moved)
        # Its targets are the teacher's own inputs: the factors as the teacher's normaliser scaled them.
        obs = torch.as_tensor(rollout.obs[rollout.mask])
        context = torch.as_tensor(rollout.context[rollout.mask])
        with torch.no_grad():
            assert torch.equal(fit.target(context), t.normalizer(torch.cat([obs, context], -1))[:, -2:])
    finally:
        trainer.close()


def test_student_resumes_to_the_same_numbers_and_deploys_without_factors(teacher, tmp_path, cli):
    # With a replay of 3 batches, so that a resumed fit reads the two batches sampled before the cut.
    out = cli("train", "--distill-from", teacher, "--steps", "2560", "--batch-size", "256", "--num-envs", "4",
              "--physics-estimate-replay", "3", "--checkpoint-every", "1", "--no-tensorboard",
              "--run-dir", tmp_path / "full")
    assert out.returncode == 0, out.stderr
    rows = _numbers(tmp_path / "full")
    assert len(rows) == 10 and all(math.isfinite(r["physics_estimate_r2"]) for r in rows)
    assert all(math.isnan(r["policy_loss"]) for r in rows)  # no update rule ran
    config = robopg.api.load_config(tmp_path / "full")
    with pytest.raises(TrainingInterrupted):
        robopg.train(config, tmp_path / "cut", callbacks=[interrupt_at(4)])
    _same(rows, _numbers(robopg.resume(tmp_path / "cut").run_dir))
    student = robopg.load(tmp_path / "full")
    assert student.normalizer.mean.numel() == 2 * 11 + 3  # the observation alone
    assert robopg.evaluate(student, "Hopper-v5", episodes=2)["episodes"] == 2
    out = cli("export", tmp_path / "full", "--format", "torchscript")
    assert out.returncode == 0, out.stderr


def test_checks():
    make_config("Hopper-v5", randomize=SPEC, policy_obs="privileged").validate()
    for kw, option in ((dict(policy_obs="privileged"), "--policy-obs"),
                       (dict(policy_obs="privileged", randomize=SPEC, action_delay="0:2"), "--policy-obs"),
                       (dict(randomize=SPEC, distill_from="runs/x"), "--distill-from")):
        with pytest.raises(ConfigError, match=option):
            make_config("Hopper-v5", **kw).validate()


def test_bad_input_exits_2_naming_the_option(cli, tmp_path, teacher, trained_cartpole):
    def refused(*args, option):
        out = cli(*args)
        assert out.returncode == 2, out.stderr
        assert option in out.stderr and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
        return out

    refused("train", "--distill-from", tmp_path / "nothing", "--run-dir", tmp_path / "r", option="nothing")
    refused("train", "--distill-from", trained_cartpole.run_dir, "--run-dir", tmp_path / "r",
            option="--distill-from")
    refused("train", "--distill-from", teacher, "--obs-history", "2", "--run-dir", tmp_path / "r",
            option="--obs-history")
    assert not (tmp_path / "r").exists()
    refused("export", teacher, "--format", "onnx", option="--distill-from")
    assert not (teacher / "export").exists()


def test_variance_of_a_teacher_samples_its_factors(cli, teacher, tmp_path):
    # robopg variance randomises as the run did, and the teacher (and the value functions fit for the
    # measurement) read each episode's factors; a reordered --randomize is refused.
    out = cli("variance", teacher, "--batches", "3", "--batch-sizes", "2", "--value-batches", "1",
              "--estimators", "rtg,rtg+value", "--out", tmp_path / "v", "--json")
    assert out.returncode == 0, out.stderr
    out = cli("variance", teacher, "--randomize", "friction=0.5:1.5,mass=0.5:1.5", "--batches", "3",
              "--out", tmp_path / "w")
    assert out.returncode == 2 and "--randomize" in out.stderr and "Traceback" not in out.stderr
