"""--physics-estimate-regions: the physics estimate's regression weighs the regions of the ranges evenly. Each row's
weight is n / (B n_b); the weighted fit finds the estimate an even mix of the regions would (where the observation
tells nothing, the mean of the regions' means, not of the rows'); with one region present it is the plain fit to the
bit; a run with it resumes to the same numbers; bad input exits 2 naming the option."""

import copy
import math

import numpy as np
import pytest
import torch

import robopg
from robopg import make_config
from robopg.config import ConfigError
from robopg.physics_estimate import PhysicsEstimateFit
from robopg.trainer import TrainingInterrupted

from .conftest import tiny
from .test_physics_estimate import _policy
from .test_training import _numbers, _same, interrupt_at

SPEC = "mass=0.4:1.8:log,friction=0.5:1.5"


def _fit(regions="mass=3", **kw):
    config = make_config("Hopper-v5", randomize=SPEC, policy_obs="estimated", physics_estimate_regions=regions, **kw)
    config.validate()
    return PhysicsEstimateFit(config, _policy())


def _batch(rng, log_mass, obs=None):
    """A rollout-like batch of 8 envs: the given log masses, friction factor 1, observations uninformative unless
    given."""
    n = len(log_mass)
    context = np.stack([log_mass, np.zeros(n)], -1).astype(np.float32).reshape(8, n // 8, 2)
    obs = rng.normal(1.0, 2.0, (n, 6)) if obs is None else obs
    return type("R", (), dict(obs=obs.astype(np.float32).reshape(8, n // 8, 6), context=context,
                              mask=np.ones((8, n // 8), bool)))


def test_each_row_weighs_n_over_regions_times_its_regions_rows():
    # mass 0.4:1.8 log-uniform in three parts: [0.4, 0.65), [0.65, 1.1), [1.1, 1.8]; the nominal robot (log 0) is
    # in the middle one, a robot outside the range in the part nearest to it.
    log_mass = torch.log(torch.tensor([0.45, 0.5, 0.6, 0.5, 1.0, 1.0, 0.9, 1.5, 2.5, 0.3]))
    context = torch.stack([log_mass, torch.zeros(10)], -1)
    weight = _fit()._weights(context)
    region = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 0])
    counts = np.bincount(region)
    np.testing.assert_allclose(weight.numpy(), 10 / (3 * counts[region]), rtol=1e-6)
    for b in range(3):  # every region carries a third of the regression
        assert float(weight[torch.as_tensor(region == b)].sum()) == pytest.approx(10 / 3, rel=1e-6)
    assert float(weight.mean()) == pytest.approx(1.0, rel=1e-6)
    assert _fit(regions="")._weights(context) is None


def test_the_weighted_fit_estimates_the_regions_mean_where_the_observation_tells_nothing():
    """Observations independent of the robot: the best estimate is a constant, the mean of the targets under the
    fit's weights. 90% of the rows are nominal robots, 2% light (mass 0.5), 8% heavy (1.5): the plain fit goes to
    the rows' mean log mass (+0.02), the weighted one to the mean of the three regions' (-0.10); after 200 fits on
    fresh batches of 800 rows each estimate's mean over a fresh batch is within 0.02 of its own mean, and the two
    are 0.11 apart, so that neither fit could pass the other's test."""
    heavy, light = math.log(1.5), math.log(0.5)
    log_mass = np.array([0.0] * 720 + [light] * 16 + [heavy] * 64)
    plain_mean, even_mean = log_mass.mean(), (0.0 + light + heavy) / 3
    assert abs(plain_mean - even_mean) > 0.1
    for regions, want in (("", plain_mean), ("mass=3", even_mean)):
        fit = _fit(regions=regions, physics_estimate_lr=3e-3)
        rng = np.random.default_rng(4)
        torch.manual_seed(4)
        for i in range(200):
            fit.fit(_batch(rng, rng.permutation(log_mass)), i + 1)
        check = _batch(rng, log_mass)
        with torch.no_grad():
            x = fit.policy.normalizer(torch.as_tensor(check.obs.reshape(-1, 6)))
            got = float(fit.policy.physics_estimate(x)[:, 0].mean())
        assert got == pytest.approx(want, abs=0.02), regions


def test_with_one_region_present_the_fit_is_the_plain_fit_to_the_bit():
    rng = np.random.default_rng(5)
    batches = [_batch(rng, rng.uniform(np.log(1.2), np.log(1.7), 64)) for _ in range(3)]  # all in the heavy part
    fits = [_fit(regions="mass=3", physics_estimate_replay=2), _fit(regions="", physics_estimate_replay=2)]
    stats = []
    for fit in fits:
        torch.manual_seed(5)
        stats.append([fit.fit(copy.deepcopy(b), i + 1) for i, b in enumerate(batches)])
    assert stats[0] == stats[1]
    assert all(torch.equal(v, fits[1].twin.state_dict()[k]) for k, v in fits[0].twin.state_dict().items())


def test_a_run_with_it_resumes_to_the_same_numbers(tmp_path):
    kw = dict(randomize=SPEC, policy_obs="estimated", physics_estimate_regions="mass=3,friction=2",
              physics_estimate_replay=2, randomize_nominal=0.5, obs_history=2, estimator="gae", baseline="value",
              steps=2800, batch_size=400, checkpoint_every=100)
    full = robopg.train(tiny("Hopper-v5", **kw), tmp_path / "full")
    rows = _numbers(full.run_dir)
    assert all(math.isfinite(r["physics_estimate_loss"]) for r in rows)
    plain = _numbers(robopg.train(tiny("Hopper-v5", **{**kw, "physics_estimate_regions": ""}),
                                  tmp_path / "plain").run_dir)
    # The first batch is sampled and learned from with the same (unfit) estimate; the weighted fit then moves it
    # elsewhere.
    _same(rows[:1], plain[:1])
    assert any(a["physics_estimate_loss"] != b["physics_estimate_loss"] for a, b in zip(rows[1:], plain[1:]))
    with pytest.raises(TrainingInterrupted):
        robopg.train(tiny("Hopper-v5", **kw), tmp_path / "cut", callbacks=[interrupt_at(3)])
    _same(rows, _numbers(robopg.resume(tmp_path / "cut").run_dir))
    assert robopg.api.load_config(full.run_dir).physics_estimate_regions == "mass=3,friction=2"


def test_checks():
    for kw, option in ((dict(randomize=SPEC, physics_estimate_regions="mass=3"), "--physics-estimate-regions"),
                       (dict(randomize=SPEC, policy_obs="estimated", physics_estimate_regions="damping=2"),
                        "--physics-estimate-regions"),
                       (dict(randomize=SPEC, policy_obs="estimated", physics_estimate_regions="mass=1"),
                        "--physics-estimate-regions")):
        with pytest.raises(ConfigError, match=option):
            make_config("Hopper-v5", **kw).validate()


@pytest.mark.parametrize("args", [
    ["--randomize", SPEC, "--physics-estimate-regions", "mass=3"],
    ["--randomize", SPEC, "--policy-obs", "estimated", "--physics-estimate-regions", "gravity=2"],
    ["--randomize", SPEC, "--policy-obs", "estimated", "--physics-estimate-regions", "mass=x"],
])
def test_bad_input_exits_2_naming_the_option(cli, tmp_path, args):
    out = cli("train", "Hopper-v5", *args, "--run-dir", tmp_path / "r")
    assert out.returncode == 2, out.stderr
    assert "--physics-estimate-regions" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()
