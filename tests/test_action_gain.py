"""--action-gain learned: the Gaussian policy's mean times a gain exp(B tanh(g(x) / B)), g linear in the network's
input. It starts at exactly 1 (with --action-gain-start, at a power of the physics estimate) and draws nothing, so
the policy starts as the plain one; the sampling fast path and the exported graphs compute it as the policy does;
every update rule moves it; a run with it resumes to the same numbers; a student keeps it; discrete actions refuse
it."""

import json
import math
from dataclasses import replace as dataclass_replace

import gymnasium as gym
import numpy as np
import pytest
import torch

import robopg
from robopg import checkpoint
from robopg.config import Config
from robopg.errors import TrainingInterrupted
from robopg.policies import GaussianPolicy, make_policy

from .conftest import tiny
from .test_policies import assert_frozen_sampler_is_sample
from .test_training import _numbers, _same, interrupt_at

BOX = gym.spaces.Box(-1.0, 1.0, (3,), dtype=np.float32)


def _policy(gain: bool, estimate_dim: int = 0) -> GaussianPolicy:
    torch.manual_seed(0)
    return GaussianPolicy(5, BOX, [16, 16], "tanh", -0.5, True, estimate_dim,
                          action_gain="learned" if gain else "fixed")


def _perturb(policy: GaussianPolicy, scale: float = 0.5) -> None:
    """Gain weights far from 0 (a gain of 1 would hide a path that forgets it), and an estimate that moves."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        policy.action_gain.weight.copy_(scale * torch.randn(policy.action_gain.weight.shape, generator=g))
        policy.action_gain.bias.copy_(scale * torch.randn(policy.action_gain.bias.shape, generator=g))
        if policy.physics_estimate is not None:
            for layer in policy.physics_estimate:
                if isinstance(layer, torch.nn.Linear):
                    layer.weight.copy_(torch.randn(layer.weight.shape, generator=g))


def test_the_gain_starts_at_one_and_the_policy_as_the_plain_one_to_the_bit():
    plain, gained = _policy(False, 2), _policy(True, 2)
    for name, p in plain.state_dict().items():  # the gain draws nothing: every other tensor is the plain one's
        assert torch.equal(p, gained.state_dict()[name]), name
    assert not gained.action_gain.weight.any() and not gained.action_gain.bias.any()
    obs = torch.as_tensor(np.random.default_rng(0).normal(size=(64, 5)), dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(plain(obs), gained(obs))
    assert sorted(n for n, _ in gained.named_parameters() if n.startswith("action_gain")) == [
        "action_gain.bias", "action_gain.weight"]  # parameters: every update rule's optimiser moves them


def test_the_gain_scales_each_joint_by_exp_of_its_linear_map_within_one_third_and_three():
    policy = _policy(True, 2)
    _perturb(policy)
    obs = torch.as_tensor(np.random.default_rng(1).normal(size=(256, 5)), dtype=torch.float32)
    with torch.no_grad():
        x = policy.net_inputs(policy.normalizer(obs))
        assert x.shape[1] == 5 + 2  # the gain reads the physics estimate too
        linear = x @ policy.action_gain.weight.T + policy.action_gain.bias
        bound = math.log(3.0)
        expected = policy.mean_net(x) * torch.exp(bound * torch.tanh(linear / bound))
        assert torch.allclose(policy(obs), expected, rtol=1e-6, atol=1e-7)
        policy.action_gain.bias.fill_(50.0)
        gains = policy(obs) / policy.mean_net(x)
        assert torch.allclose(gains, torch.full_like(gains, 3.0), rtol=1e-5)
        policy.action_gain.bias.fill_(-50.0)
        gains = policy(obs) / policy.mean_net(x)
        assert torch.allclose(gains, torch.full_like(gains, 1 / 3), rtol=1e-5)


def test_the_sampling_fast_path_computes_the_gain_as_sample_does_to_the_bit():
    policy = _policy(True, 2)
    _perturb(policy)
    obs = np.random.default_rng(2).normal(0.0, 3.0, (16, 5)).astype(np.float32)
    fast = assert_frozen_sampler_is_sample(policy, obs)
    with torch.no_grad():  # and the gain is in it: the same policy without one samples other actions
        policy.action_gain.bias.fill_(1.0)
    torch.manual_seed(7)
    assert not np.array_equal(policy.frozen_sampler()(obs)[0], fast[0][0])


@pytest.mark.parametrize("algorithm", ["pg", "ppo", "trpo"])
def test_every_update_rule_moves_the_gain(tmp_path, algorithm):
    run = robopg.train(tiny("Pendulum-v1", steps=1024, algorithm=algorithm, action_gain="learned"), tmp_path / "r")
    gain = robopg.load(run.run_dir).action_gain
    assert gain.weight.abs().max() > 0 and gain.bias.abs().max() > 0
    assert robopg.api.load_config(run.run_dir).action_gain == "learned"


def test_a_run_with_a_gain_resumes_to_the_same_numbers_and_differs_from_one_without(tmp_path):
    kw = dict(steps=2048, batch_size=512, action_gain="learned", checkpoint_every=100)
    full = robopg.train(tiny("Pendulum-v1", **kw), tmp_path / "full")
    with pytest.raises(TrainingInterrupted):
        robopg.train(tiny("Pendulum-v1", **kw), tmp_path / "cut", callbacks=[interrupt_at(2)])
    _same(_numbers(full.run_dir), _numbers(robopg.resume(tmp_path / "cut").run_dir))
    plain = robopg.train(tiny("Pendulum-v1", **{**kw, "action_gain": "fixed"}), tmp_path / "plain")
    first = [_numbers(r.run_dir)[0] for r in (plain, full)]  # the first batch: sampled with a gain of 1
    assert [[row[k] for k in ("policy_loss", "value_loss", "entropy")] for row in first] == [
        [first[0][k] for k in ("policy_loss", "value_loss", "entropy")]] * 2
    assert _numbers(plain.run_dir) != _numbers(full.run_dir)


def test_exported_graphs_give_the_actions_of_act_with_a_gain(tmp_path, capsys):
    import onnxruntime as ort

    from robopg.cli import main as robopg_main

    run = robopg.train(tiny("Hopper-v5", steps=1024, obs_history=1, action_gain="learned"), tmp_path / "r").run_dir
    path = run / "checkpoints" / "latest.pt"
    data = checkpoint.load(path)
    g = torch.Generator().manual_seed(3)
    for key in ("action_gain.weight", "action_gain.bias"):
        data["policy"][key] = 0.5 * torch.randn(data["policy"][key].shape, generator=g)
    checkpoint.save(path, data)
    policy = robopg.load(run)
    obs = np.random.default_rng(4).normal(0.0, 2.0, (500, policy.normalizer.mean.numel())).astype(np.float32)
    expected = policy.act(obs, deterministic=True)
    with torch.no_grad():
        plain = policy.mean_net(policy.net_inputs(policy.normalizer(torch.as_tensor(obs)))).clamp(-1, 1).numpy()
    assert np.abs(expected - plain).max() > 0.01  # the gain changes the actions this test compares
    assert robopg_main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "onnx")]) == 0
    assert "action_gain" in json.loads((tmp_path / "onnx" / "policy.json").read_text())["policy"]
    sess = ort.InferenceSession(str(tmp_path / "onnx" / "policy.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(sess.run(["action"], {"obs": obs})[0] - expected).max() <= 1e-5
    assert robopg_main(["export", str(run), "--format", "torchscript", "--out", str(tmp_path / "ts")]) == 0
    scripted = torch.jit.load(str(tmp_path / "ts" / "policy.pt"))
    with torch.no_grad():
        assert np.abs(scripted(torch.as_tensor(obs)).numpy() - expected).max() <= 1e-5
    capsys.readouterr()


def test_a_student_keeps_its_teachers_gain(tmp_path):
    from robopg.distill import TEACHER_KEYS, student_values

    teacher = tiny("Hopper-v5", randomize="mass=0.5:1.5", policy_obs="privileged", action_gain="learned")
    assert student_values(teacher, tmp_path)["action_gain"] == "learned"
    assert "action_gain" in TEACHER_KEYS  # a student with another gain than its teacher's is refused


def test_make_policy_gives_a_gaussian_policy_its_gain():
    config = Config(env_id="test", hidden_sizes=[8], action_gain="learned")
    assert make_policy(config, gym.spaces.Box(-np.inf, np.inf, (5,)), BOX).action_gain is not None
    config = Config(env_id="test", hidden_sizes=[8])
    assert make_policy(config, gym.spaces.Box(-np.inf, np.inf, (5,)), BOX).action_gain is None


def test_bad_input_exits_2_naming_the_option(cli, tmp_path):
    out = cli("train", "CartPole-v1", "--action-gain", "learned", "--steps", "1024", "--batch-size", "512",
              "--run-dir", tmp_path / "r")  # discrete actions: nothing to scale
    assert out.returncode == 2, out.stderr
    assert "--action-gain" in out.stderr and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
    out = cli("train", "Pendulum-v1", "--action-gain", "adaptive", "--run-dir", tmp_path / "r")  # argparse's choices
    assert out.returncode == 2 and "--action-gain" in out.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "r").exists()


# --action-gain-start: the gain starts as a power of the estimated physics, not at 1.

def test_a_gain_started_as_a_power_of_the_estimate_is_that_power_and_one_at_the_nominal_robot():
    torch.manual_seed(0)
    policy = GaussianPolicy(5, BOX, [16, 16], "tanh", -0.5, True, 2, action_gain="learned",
                            gain_start_powers=[0.5, 0.0])
    weight = policy.action_gain.weight.detach()
    assert torch.equal(weight[:, :5], torch.zeros(3, 5)) and not policy.action_gain.bias.any()
    assert torch.equal(weight[:, 5:], torch.tensor([[0.5, 0.0]] * 3))
    bound = math.log(3.0)
    log_mass = torch.linspace(math.log(0.4), math.log(1.8), 9)
    x = torch.cat([torch.randn(9, 5), log_mass[:, None], torch.randn(9, 1)], 1)  # obs, estimated log mass, friction
    with torch.no_grad():
        gain = policy.action_gain(x)
    expected = torch.exp(bound * torch.tanh(0.5 * log_mass / bound))
    assert torch.allclose(gain, expected[:, None].expand(9, 3), rtol=1e-6)
    # about mass ** 0.5 over the training range: the bound's tanh bends it by 2.5% at mass 0.4, 1.1% at 0.5
    assert torch.allclose(gain[:, 0], torch.sqrt(torch.exp(log_mass)), rtol=0.03)
    assert torch.equal(policy.action_gain(torch.zeros(1, 7)), torch.ones(1, 3))  # nominal robot: exactly 1
    plain = _policy(True, 2)  # and it draws nothing: every other tensor is the plain gain policy's
    for name, p in plain.state_dict().items():
        if name != "action_gain.weight":
            assert torch.equal(p, policy.state_dict()[name]), name


def test_make_policy_starts_the_gain_on_the_named_factors_columns_in_the_randomize_order():
    config = Config(env_id="test", hidden_sizes=[8], action_gain="learned", policy_obs="estimated",
                    randomize="friction=0.5:1.5,mass=0.5:1.5,gear=0.8:1.2", action_gain_start="mass=0.5,gear=-1")
    policy = make_policy(config, gym.spaces.Box(-np.inf, np.inf, (5,)), BOX)
    assert torch.equal(policy.action_gain.weight.detach()[:, 5:], torch.tensor([[0.0, 0.5, -1.0]] * 3))
    assert not policy.action_gain.weight.detach()[:, :5].any()
    config.action_delay = "0:2"  # a drawn delay is one more estimated number, after the factors; no power on it
    policy = make_policy(config, gym.spaces.Box(-np.inf, np.inf, (5,)), BOX)
    assert torch.equal(policy.action_gain.weight.detach()[:, 5:], torch.tensor([[0.0, 0.5, -1.0, 0.0]] * 3))


def test_a_run_with_a_started_gain_keeps_it_resumes_to_the_same_numbers_and_differs_from_one_at_one(tmp_path):
    kw = dict(steps=2048, batch_size=512, action_gain="learned", checkpoint_every=100, obs_history=1,
              randomize="mass=0.5:1.5", policy_obs="estimated", action_gain_start="mass=0.5")
    full = robopg.train(tiny("Hopper-v5", **kw), tmp_path / "full")
    with pytest.raises(TrainingInterrupted):
        robopg.train(tiny("Hopper-v5", **kw), tmp_path / "cut", callbacks=[interrupt_at(2)])
    _same(_numbers(full.run_dir), _numbers(robopg.resume(tmp_path / "cut").run_dir))
    assert robopg.api.load_config(full.run_dir).action_gain_start == "mass=0.5"
    weight = robopg.load(full.run_dir).action_gain.weight.detach()
    assert 0.3 < float(weight[:, -1].min()) and float(weight[:, -1].max()) < 0.7  # learned from 0.5, not reset
    assert float((weight[:, -1] - 0.5).abs().max()) > 0  # and moved
    at_one = robopg.train(tiny("Hopper-v5", **{**kw, "action_gain_start": ""}), tmp_path / "one")
    assert _numbers(at_one.run_dir) != _numbers(full.run_dir)


@pytest.mark.parametrize("args, why", [
    (["--action-gain-start", "mass=0.5"], "--action-gain learned"),
    (["--action-gain", "learned", "--action-gain-start", "mass=0.5"], "--policy-obs estimated"),
    (["--action-gain", "learned", "--policy-obs", "estimated", "--action-gain-start", "friction=0.5"], "friction"),
    (["--action-gain", "learned", "--policy-obs", "estimated", "--action-gain-start", "mass=big"], "mass=big"),
    (["--action-gain", "learned", "--policy-obs", "estimated", "--action-gain-start", "mass=nan"], "finite"),
    (["--action-gain", "learned", "--policy-obs", "estimated", "--action-gain-start", "weight=1"], "weight"),
    (["--action-gain", "learned", "--policy-obs", "estimated", "--action-gain-start", "mass=1,mass=2"], "twice"),
])
def test_a_bad_gain_start_exits_2_naming_the_option(cli, tmp_path, args, why):
    out = cli("train", "Hopper-v5", "--randomize", "mass=0.5:1.5", "--obs-history", "1", "--steps", "1024",
              "--batch-size", "512", *args, "--run-dir", tmp_path / "r")
    assert out.returncode == 2, out.stderr
    line, = out.stderr.strip().splitlines()
    assert "--action-gain-start" in line and why in line and "Traceback" not in out.stderr
    assert not (tmp_path / "r").exists()


def test_a_student_cannot_start_a_gain_its_teacher_already_learned():
    from robopg.errors import ConfigError

    config = tiny("Hopper-v5", randomize="mass=0.5:1.5", policy_obs="estimated", action_gain="learned",
                  obs_history=1)
    config.distill_from, config.action_gain_start = "teacher", "mass=0.5"
    with pytest.raises(ConfigError, match="--action-gain-start.*--distill-from"):
        config.validate()


# --action-gain held: the gain is its start, a power of the physics estimate, and no update moves it.

HELD = dict(steps=2048, batch_size=512, checkpoint_every=100, obs_history=1, randomize="mass=0.5:1.5",
            policy_obs="estimated", action_gain_start="mass=0.5")


def test_a_held_gain_has_no_parameters_and_computes_what_the_learned_one_starts_with():
    config = Config(env_id="test", hidden_sizes=[8], policy_obs="estimated", randomize="mass=0.5:1.5",
                    action_gain_start="mass=0.5")
    torch.manual_seed(0)
    learned = make_policy(dataclass_replace(config, action_gain="learned"), gym.spaces.Box(-np.inf, np.inf, (5,)), BOX)
    torch.manual_seed(0)
    held = make_policy(dataclass_replace(config, action_gain="held"), gym.spaces.Box(-np.inf, np.inf, (5,)), BOX)
    assert not [n for n, _ in held.named_parameters() if n.startswith("action_gain")]
    assert len(list(held.parameters())) == len(list(learned.parameters())) - 2
    assert held.state_dict().keys() == learned.state_dict().keys()  # the same checkpoint layout
    for name, tensor in learned.state_dict().items():
        assert torch.equal(tensor, held.state_dict()[name]), name
    obs = torch.randn(64, 5)
    with torch.no_grad():
        assert torch.equal(held(obs), learned(obs))
    obs = np.random.default_rng(0).normal(size=(32, 5)).astype(np.float32)
    assert_frozen_sampler_is_sample(held, obs)


@pytest.mark.parametrize("algorithm", ["pg", "ppo"])
def test_a_held_gain_stays_at_its_start_while_the_policy_learns(tmp_path, algorithm):
    run = robopg.train(tiny("Hopper-v5", algorithm=algorithm, action_gain="held", **HELD), tmp_path / "r")
    gain = robopg.load(run.run_dir).action_gain
    # The estimate (log mass) is the input's last column: its power is the start's 0.5 to the bit, the rest 0.
    assert set(gain.weight[:, -1].tolist()) == {0.5} and not gain.weight[:, :-1].any() and not gain.bias.any()
    optimizer = checkpoint.load(run.run_dir / "checkpoints" / "latest.pt")["optimizer"]
    held = len(list(robopg.load(run.run_dir).parameters()))  # the gain's weights are none of the optimiser's
    assert len(optimizer["param_groups"][0]["params"]) == held


def test_a_run_with_a_held_gain_resumes_to_the_same_numbers_and_parts_from_the_learned_one(tmp_path):
    full = robopg.train(tiny("Hopper-v5", action_gain="held", **HELD), tmp_path / "full")
    with pytest.raises(TrainingInterrupted):
        robopg.train(tiny("Hopper-v5", action_gain="held", **HELD), tmp_path / "cut", callbacks=[interrupt_at(2)])
    _same(_numbers(full.run_dir), _numbers(robopg.resume(tmp_path / "cut").run_dir))
    learned = robopg.train(tiny("Hopper-v5", action_gain="learned", **HELD), tmp_path / "learned")
    first = [_numbers(r.run_dir)[0] for r in (learned, full)]  # the first batch: the same policy sampled it
    assert first[0]["policy_loss"] == first[1]["policy_loss"] and first[0]["entropy"] == first[1]["entropy"]
    assert _numbers(learned.run_dir) != _numbers(full.run_dir)


def test_a_held_gain_is_exported_inside_the_model(tmp_path, capsys):
    import onnxruntime as ort

    from robopg.cli import main as robopg_main

    run = robopg.train(tiny("Hopper-v5", action_gain="held", **{**HELD, "steps": 1024}), tmp_path / "r").run_dir
    policy = robopg.load(run)
    obs = np.random.default_rng(4).normal(0.0, 2.0, (200, 25)).astype(np.float32)  # 11 + 11 + 3 actions
    assert robopg_main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "onnx")]) == 0
    described = json.loads((tmp_path / "onnx" / "policy.json").read_text())["policy"]["action_gain"]
    assert described.startswith("held:")
    sess = ort.InferenceSession(str(tmp_path / "onnx" / "policy.onnx"), providers=["CPUExecutionProvider"])
    inputs = {i.name: obs if i.name == "obs" else None for i in sess.get_inputs()}
    assert list(inputs) == ["obs"], "an estimated policy's graph reads the observation history alone"
    assert np.abs(sess.run(["action"], inputs)[0] - policy.act(obs, deterministic=True)).max() <= 1e-5
    capsys.readouterr()


def test_a_held_gain_without_a_start_exits_2_naming_the_option(cli, tmp_path):
    out = cli("train", "Hopper-v5", "--action-gain", "held", "--steps", "1024", "--batch-size", "512",
              "--run-dir", tmp_path / "r")
    assert out.returncode == 2, out.stderr
    line, = out.stderr.strip().splitlines()
    assert "--action-gain" in line and "--action-gain-start" in line and "Traceback" not in out.stderr
    assert not (tmp_path / "r").exists()
