"""--log-std-cap: a bound on a Gaussian policy's log std that falls linearly over the run's last steps. Its
schedule, the policy under it after every update (and its samples with it), bit-exact resume, a distilled
student leaving it behind, and bad input."""

import copy
import math

import numpy as np
import pytest
import torch

import robopg
from robopg.errors import TrainingInterrupted
from robopg.metrics import read_csv

from .conftest import tiny
from .test_training import _numbers, _same, interrupt_at


def test_the_bound_falls_linearly_from_the_initial_log_std_to_the_cap():
    c = tiny("Pendulum-v1", steps=10_000, init_log_std=-0.5, log_std_cap=-2.0, log_std_cap_from=4000)
    assert [c.log_std_cap_at(s) for s in (0, 3999)] == [None, None]
    assert c.log_std_cap_at(4000) == -0.5
    assert c.log_std_cap_at(7000) == pytest.approx(-1.25, abs=1e-12)  # half way
    assert c.log_std_cap_at(10_000) == -2.0
    assert c.log_std_cap_at(10_512) == -2.0                           # a last batch past --steps
    assert tiny("Pendulum-v1").log_std_cap_at(4000) is None            # not given: never a bound


def test_policy_stays_under_the_bound_after_every_update_and_samples_with_it(tmp_path):
    # Pendulum's log std does not fall this fast by itself, so the bound binds from its first step on.
    kw = dict(steps=4096, batch_size=512, log_std_cap=-2.5, log_std_cap_from=1024, normalize_observations=False)
    log_stds, spreads, sampler = [], [], []

    def record(trainer, rollout, row):
        log_stds.append((trainer.env_steps, trainer.policy.log_std.detach().clone()))
        if sampler:  # this batch was sampled by the policy as the last update left it
            mean = sampler[-1].mode(torch.as_tensor(rollout.obs[rollout.mask])).detach().numpy()
            spreads.append((trainer.env_steps - rollout.num_steps, rollout.actions[rollout.mask] - mean))
        sampler.append(copy.deepcopy(trainer.policy))

    run = robopg.train(tiny("Pendulum-v1", **kw), tmp_path / "r", callbacks=[record])
    config = run.config
    for steps, log_std in log_stds:
        bound = config.log_std_cap_at(steps)
        if bound is not None:
            assert (log_std <= bound + 1e-7).all(), (steps, log_std, bound)
    assert torch.allclose(log_stds[-1][1], torch.full((1,), -2.5))
    # The entropy logged is the sampling policy's, sum(log std) + 0.5 log(2 pi e): under the bound of the batch
    # before (a row's env_steps count its own batch).
    rows = read_csv(run.run_dir / "metrics.csv")
    for row in rows[2:]:
        bound = config.log_std_cap_at(int(row["env_steps"]) - 512)
        assert row["entropy"] <= bound + 0.5 * (1 + math.log(2 * math.pi)) + 1e-6
    # The last batch was sampled under the bound at 3584 steps: its noise is about exp(bound) wide.
    steps, noise = spreads[-1]
    assert steps == 3584
    width = math.exp(config.log_std_cap_at(steps))
    assert np.std(noise) == pytest.approx(width, rel=4 / math.sqrt(noise.size))


def test_capped_run_resumes_to_the_same_numbers_and_differs_from_an_uncapped_one(tmp_path):
    kw = dict(steps=2048, batch_size=512, log_std_cap=-2.0, log_std_cap_from=512, checkpoint_every=100)
    full = robopg.train(tiny("Pendulum-v1", **kw), tmp_path / "full")
    with pytest.raises(TrainingInterrupted):
        robopg.train(tiny("Pendulum-v1", **kw), tmp_path / "cut", callbacks=[interrupt_at(2)])
    _same(_numbers(full.run_dir), _numbers(robopg.resume(tmp_path / "cut").run_dir))
    plain = robopg.train(tiny("Pendulum-v1", **{**kw, "log_std_cap": None, "log_std_cap_from": 0}),
                         tmp_path / "plain")
    assert _numbers(plain.run_dir)[:1] == _numbers(full.run_dir)[:1]  # the first batch: before any bound
    assert _numbers(plain.run_dir) != _numbers(full.run_dir)
    saved = robopg.api.load_config(full.run_dir)
    assert (saved.log_std_cap, saved.log_std_cap_from) == (-2.0, 512)


def test_a_distilled_student_leaves_its_teachers_bound_behind(tmp_path):
    from robopg.distill import student_values

    teacher = tiny("Hopper-v5", randomize="mass=0.5:1.5", policy_obs="privileged", log_std_cap=-1.0,
                   log_std_cap_from=1024)
    values = student_values(teacher, tmp_path)
    assert (values["log_std_cap"], values["log_std_cap_from"]) == (None, 0)


@pytest.mark.parametrize("args,option", [
    (["Hopper-v5", "--init-log-std", "-0.5", "--log-std-cap", "-0.5"], "--log-std-cap"),  # not below it
    (["Hopper-v5", "--log-std-cap", "nan"], "--log-std-cap"),
    (["Hopper-v5", "--log-std-cap-from", "1000"], "--log-std-cap-from"),        # without --log-std-cap
    (["Hopper-v5", "--log-std-cap", "-2", "--log-std-cap-from", "1024"], "--log-std-cap-from"),  # = --steps
    (["Hopper-v5", "--log-std-cap", "-2", "--log-std-cap-from", "-1"], "--log-std-cap-from"),
    (["CartPole-v1", "--log-std-cap", "-2"], "--log-std-cap"),                  # discrete actions: no log std
])
def test_bad_input_exits_2_naming_the_option(cli, tmp_path, args, option):
    out = cli("train", *args, "--steps", "1024", "--batch-size", "512", "--run-dir", tmp_path / "r")
    assert out.returncode == 2, out.stderr
    assert option in out.stderr and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
