"""The physics estimate inside the policy (robopg.physics_estimate, --policy-obs estimated): no update rule moves it
and its fit moves nothing else; its fit learns a context that the observations determine; the fast sampling
path, the hand-written PPO gradient and the ONNX graph all read it; a run resumes to the same numbers (on Ray
workers too), and bad input exits 2 naming the option."""

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import robopg
from robopg import make_config
from robopg.config import ConfigError
from robopg.physics_estimate import PhysicsEstimateFit
from robopg.policies import GaussianPolicy, make_policy
from robopg.trainer import Trainer, TrainingInterrupted

from .conftest import tiny
from .test_training import _numbers, _same, interrupt_at

SPEC = "mass=0.5:1.5,friction=0.5:1.5"
BOX = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)


def _policy(estimate_dim=2, obs_dim=6):
    torch.manual_seed(0)
    policy = GaussianPolicy(obs_dim, BOX, [16, 16], "tanh", init_log_std=-0.3, estimate_dim=estimate_dim)
    policy.normalizer.update(np.random.default_rng(0).normal(1.0, 2.0, (500, obs_dim)))
    with torch.no_grad():  # an estimate far from 0, so that a path that skipped it would show
        policy.physics_estimate[-1].bias.copy_(torch.tensor([0.7, -0.4]))
    return policy


def test_the_physics_estimate_is_a_buffer_of_the_policy_not_a_parameter():
    policy = _policy()
    names = dict(policy.named_parameters())
    assert not any(n.startswith("physics_estimate") for n in names)
    assert {f"physics_estimate.{i}.{k}" for i in (0, 4) for k in ("weight", "bias")} <= set(policy.state_dict())
    assert policy.mean_net[0].in_features == 6 + 2  # the observation, then the estimate
    x = torch.randn(5, 6)
    np.testing.assert_allclose(policy.net_inputs(x)[:, 6:].detach(), policy.physics_estimate(x).detach())
    assert make_policy(make_config("Hopper-v5", randomize=SPEC, policy_obs="estimated"),
                       gym.spaces.Box(-np.inf, np.inf, (11,)), BOX).physics_estimate[-1].out_features == 2
    assert make_policy(make_config("Hopper-v5", randomize=SPEC), gym.spaces.Box(-np.inf, np.inf, (11,)),
                       BOX).physics_estimate is None


def test_frozen_sampler_reads_the_estimate_as_sample_does():
    policy = _policy()
    obs = np.random.default_rng(1).normal(1.0, 4.0, (16, 6)).astype(np.float32)
    sample_actions = policy.frozen_sampler()
    torch.manual_seed(7)
    fast = sample_actions(obs)[0]
    torch.manual_seed(7)
    with torch.no_grad():
        reference = policy.sample(torch.as_tensor(obs)).numpy()
    assert np.array_equal(fast, reference)  # to the bit
    with torch.no_grad():
        policy.physics_estimate[-1].bias.zero_()
    torch.manual_seed(7)
    assert not np.array_equal(policy.frozen_sampler()(obs)[0], fast)  # the estimate was read


def test_hand_written_ppo_gradient_is_autograds_with_an_estimate():
    policy = _policy().double()
    obs, actions = torch.randn(64, 6, dtype=torch.float64), torch.randn(64, 3, dtype=torch.float64)
    weights = torch.randn(64, dtype=torch.float64)
    log_prob, entropy = policy.log_prob_entropy(obs, actions)
    params = list(policy.parameters())
    reference = torch.autograd.grad((weights * log_prob).sum() - 0.05 * entropy.mean(), params)
    lp = policy.log_prob_grad(policy.normalizer.forward(obs), actions, lambda x: weights, 0.05)
    torch.testing.assert_close(lp, log_prob.detach(), rtol=1e-14, atol=0)
    for p, g in zip(params, reference):
        torch.testing.assert_close(p.grad, g, rtol=1e-10, atol=1e-13)


def test_fit_learns_a_context_the_observations_determine():
    """A context that is a fixed nonlinear function of the observation: after some fits on fresh batches the
    estimate the next batch is sampled with explains nearly all of its variance."""
    policy = _policy()
    config = make_config("Hopper-v5", randomize=SPEC, policy_obs="estimated", physics_estimate_lr=3e-3)
    fit = PhysicsEstimateFit(config, policy)
    rng = np.random.default_rng(2)
    mixing = rng.normal(size=(6, 2)) / 3

    def batch():
        obs = rng.normal(1.0, 2.0, (64, 16, 6)).astype(np.float32)
        context = np.tanh((obs - 1.0) @ mixing).astype(np.float32)
        return type("R", (), dict(obs=obs, context=context, mask=np.ones((64, 16), bool)))

    first = fit.fit(batch(), 1)
    assert first["physics_estimate_r2"] < 0.2                        # the untrained estimate is near 0 everywhere
    for i in range(30):
        stats = fit.fit(batch(), i + 2)
    assert stats["physics_estimate_r2"] > 0.95
    assert stats["physics_estimate_loss"] < 0.05 * first["physics_estimate_loss"]
    for name, buf in policy.physics_estimate.state_dict().items():  # the policy samples with the fit's weights
        assert torch.equal(buf, fit.twin.state_dict()[name])


def test_replay_fits_the_last_n_batches_and_measures_the_newest():
    """--physics-estimate-replay N: each fit regresses on the newest N batches together (the same fit as on their
    concatenation as one batch, minibatch size apart), and reports the error of the newest batch only; a
    checkpoint keeps the N - 1 batches the next fit still reads."""
    rng = np.random.default_rng(3)
    batches = [type("R", (), dict(obs=rng.normal(size=(8, 4, 6)).astype(np.float32),
                                  context=rng.normal(size=(8, 4, 2)).astype(np.float32),
                                  mask=np.ones((8, 4), bool))) for _ in range(3)]
    config = make_config("Hopper-v5", randomize=SPEC, policy_obs="estimated", physics_estimate_replay=2)
    fit = PhysicsEstimateFit(config, _policy())
    for i, b in enumerate(batches):
        before = copy.deepcopy(fit.twin)
        stats = fit.fit(b, i + 1)
        x = fit.policy.normalizer(torch.as_tensor(b.obs.reshape(-1, 6)))
        with torch.no_grad():
            error = (before(x) - torch.as_tensor(b.context.reshape(-1, 2))).pow(2).mean()
        assert stats["physics_estimate_loss"] == pytest.approx(float(error), rel=1e-6)
    assert [len(obs) for obs, _ in fit.replay] == [32, 32]
    assert torch.equal(fit.replay[0][0], torch.as_tensor(batches[1].obs.reshape(-1, 6)))
    kept = fit.state_dict()["replay"]
    assert len(kept) == 1 and torch.equal(kept[0][1], torch.as_tensor(batches[2].context.reshape(-1, 2)))
    again = PhysicsEstimateFit(config, _policy())
    again.load_state_dict(fit.state_dict())
    assert len(again.replay) == 1 and torch.equal(again.replay[0][0], fit.replay[1][0])
    # Without the option a checkpoint holds no batches: the next fit reads only its own.
    plain = PhysicsEstimateFit(make_config("Hopper-v5", randomize=SPEC, policy_obs="estimated"), _policy())
    plain.fit(batches[0], 1)
    assert plain.state_dict()["replay"] == [] and len(plain.replay) == 1


def test_a_non_finite_fit_is_an_error_and_the_policy_keeps_its_estimate():
    from robopg.errors import NonFiniteError

    policy = _policy()
    fit = PhysicsEstimateFit(make_config("Hopper-v5", randomize=SPEC, policy_obs="estimated"), policy)
    before = copy.deepcopy(policy.physics_estimate.state_dict())
    context = np.zeros((8, 4, 2), np.float32)
    context[3, 1, 0] = np.nan  # a robot whose factor could not be read
    rollout = type("R", (), dict(obs=np.ones((8, 4, 6), np.float32), context=context, mask=np.ones((8, 4), bool)))
    with pytest.raises(NonFiniteError, match="iteration 7"):
        fit.fit(rollout, 7)
    assert all(torch.equal(v, before[k]) for k, v in policy.physics_estimate.state_dict().items())


def test_the_update_never_moves_the_estimate_and_the_fit_moves_nothing_else(tmp_path):
    trainer = Trainer(tiny("Hopper-v5", randomize=SPEC, policy_obs="estimated", obs_history=2, estimator="gae",
                           baseline="value", steps=2048, batch_size=256), tmp_path / "r")
    try:
        policy = trainer.policy
        rollout = trainer.sampler.collect()
        estimate = copy.deepcopy(policy.physics_estimate.state_dict())
        params = copy.deepcopy(dict(policy.named_parameters()))
        trainer.algorithm.update(rollout, 1, 0.0)
        assert all(torch.equal(v, estimate[k]) for k, v in policy.physics_estimate.state_dict().items())
        assert any(not torch.equal(p, params[k]) for k, p in policy.named_parameters())
        moved = copy.deepcopy(dict(policy.named_parameters()))
        stats = trainer.physics_fit.fit(rollout, 1)
        assert all(torch.equal(p, moved[k]) for k, p in policy.named_parameters())
        assert any(not torch.equal(v, estimate[k]) for k, v in policy.physics_estimate.state_dict().items())
        assert math.isfinite(stats["physics_estimate_loss"]) and math.isfinite(stats["physics_estimate_r2"])
    finally:
        trainer.close()


@pytest.mark.parametrize("algorithm", ["pg", "ppo"])
def test_estimated_run_resumes_to_the_same_numbers_and_its_policy_needs_no_context(tmp_path, algorithm):
    kw = dict(randomize=SPEC, policy_obs="estimated", obs_history=2, estimator="gae", baseline="value",
              steps=2800, batch_size=400, checkpoint_every=100, algorithm=algorithm)
    full = robopg.train(tiny("Hopper-v5", **kw), tmp_path / "full")
    rows = _numbers(full.run_dir)
    assert all(math.isfinite(r["physics_estimate_loss"]) and r["physics_estimate_r2"] <= 1.0 for r in rows)
    with pytest.raises(TrainingInterrupted):
        robopg.train(tiny("Hopper-v5", **kw), tmp_path / "cut", callbacks=[interrupt_at(3)])
    _same(rows, _numbers(robopg.resume(tmp_path / "cut").run_dir))
    plain = robopg.train(tiny("Hopper-v5", **{**kw, "policy_obs": "obs"}), tmp_path / "plain")
    assert all(math.isnan(r["physics_estimate_loss"]) for r in _numbers(plain.run_dir))
    # Deployed, the policy reads the observation (with its history) alone: evaluation and the grid need no
    # factors, and the grid's nominal cell is robopg.evaluate's return.
    from robopg.robustness import evaluate_cells

    policy = robopg.load(full.run_dir)
    assert policy.physics_estimate is not None and robopg.api.load_config(full.run_dir).policy_obs == "estimated"
    nominal, light = evaluate_cells(policy, "Hopper-v5", [{}, {"body_mass": 0.5}], episodes=2)
    assert nominal["mean_return"] == pytest.approx(robopg.evaluate(policy, "Hopper-v5", episodes=2)["mean_return"])
    assert light["mean_return"] != nominal["mean_return"]


def test_onnx_graph_reads_the_estimate(tmp_path, capsys):
    from robopg.cli import main

    run = robopg.train(tiny("Hopper-v5", randomize=SPEC, policy_obs="estimated", obs_history=1, steps=1024,
                            batch_size=256), tmp_path / "r").run_dir
    assert main(["export", str(run), "--format", "onnx"]) == 0, capsys.readouterr().err
    import onnxruntime as ort

    policy = robopg.load(run)
    obs = np.random.default_rng(0).normal(0.0, 1.0, (200, policy.normalizer.mean.numel())).astype(np.float32)
    sess = ort.InferenceSession(str(run / "export" / "policy.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(["action"], {"obs": obs})[0], policy.act(obs), atol=1e-5, rtol=0)
    without = copy.deepcopy(policy)
    with torch.no_grad():
        without.physics_estimate[-1].bias.add_(1.0)
    assert np.abs(without.act(obs) - policy.act(obs)).max() > 1e-3  # the estimate matters to the actions


def test_estimated_policy_on_two_ray_workers_reproduces(tmp_path):
    pytest.importorskip("ray")
    kw = dict(randomize=SPEC, policy_obs="estimated", obs_history=1, estimator="gae", baseline="value",
              workers=2, envs_per_worker=2, steps=1600, batch_size=400)
    a = robopg.train(tiny("Hopper-v5", **kw), tmp_path / "a")
    b = robopg.train(tiny("Hopper-v5", **kw), tmp_path / "b")
    _same(_numbers(a.run_dir), _numbers(b.run_dir))
    assert all(math.isfinite(r["physics_estimate_r2"]) for r in _numbers(a.run_dir))


def test_checks():
    make_config("Hopper-v5", randomize=SPEC, policy_obs="estimated", physics_estimate_lr=1e-4,
                physics_estimate_epochs=2).validate()
    for kw, option in ((dict(policy_obs="estimated"), "--policy-obs"),
                       (dict(policy_obs="estimated", obs_noise=0.1), "--policy-obs"),
                       (dict(policy_obs="oracle", randomize=SPEC), "--policy-obs"),
                       (dict(randomize=SPEC, physics_estimate_lr=1e-3), "--physics-estimate-lr"),
                       (dict(randomize=SPEC, policy_obs="estimated", physics_estimate_lr=0.0),
                        "--physics-estimate-lr"),
                       (dict(randomize=SPEC, policy_obs="estimated", physics_estimate_epochs=0),
                        "--physics-estimate-epochs"),
                       (dict(randomize=SPEC, physics_estimate_replay=4), "--physics-estimate-replay"),
                       (dict(randomize=SPEC, policy_obs="estimated", physics_estimate_replay=0),
                        "--physics-estimate-replay")):
        with pytest.raises(ConfigError, match=option):
            make_config("Hopper-v5", **kw).validate()


@pytest.mark.parametrize("args,option", [
    (["--policy-obs", "estimated"], "--policy-obs"),
    (["--policy-obs", "estimated", "--obs-noise", "0.1"], "--policy-obs"),
    (["--randomize", SPEC, "--physics-estimate-epochs", "3"], "--physics-estimate-epochs"),
])
def test_bad_input_exits_2_naming_the_option(cli, tmp_path, args, option):
    out = cli("train", "Hopper-v5", *args, "--run-dir", tmp_path / "r")
    assert out.returncode == 2, out.stderr
    assert option in out.stderr and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
