"""Worst-case focus of domain randomisation (robopg.focus, --randomize-focus): the cells and their ranks, draws
that follow the learner's probabilities (within binomial bounds computed from the number of draws), the
probabilities reaching the samplers and Ray workers, bit-exact resume, and bad input answered with exit 2."""

import math

import numpy as np
import pytest

import robopg
from robopg import make_config
from robopg.config import ConfigError
from robopg.envs import make_vector_env
from robopg.focus import SCORE_RATE, Cells, Focus
from robopg.randomization import Randomizer, make_randomizer
from robopg.rollout_worker import RolloutWorker
from robopg.trainer import TrainingInterrupted

from .conftest import tiny
from .test_training import _numbers, _same, interrupt_at

SPEC = "mass=0.5:1.5,friction=0.5:2:log"


def test_cells_cut_each_range_evenly_in_its_draw_space():
    cells = Cells(SPEC, 4)
    assert cells.count == 16 and cells.params == 2
    np.testing.assert_allclose(cells.edges[0], [0.5, 0.75, 1.0, 1.25, 1.5])
    np.testing.assert_allclose(np.exp(cells.edges[1]), 0.5 * 4 ** (np.arange(5) / 4))  # log-uniform: log space
    low, high = cells.bounds(6)                               # (mass bin 1, friction bin 2)
    np.testing.assert_allclose([low[0], high[0]], [0.75, 1.0])
    np.testing.assert_allclose(np.exp([low[1], high[1]]), [1.0, 2 ** 0.5])
    factors = np.array([[0.5, 0.5], [0.8, 1.2], [1.5, 2.0], [0.3, 3.0], [1.0, 1.0]])
    # The ranges' ends fall in the edge cells, and so do factors outside them (a ramped draw never is).
    np.testing.assert_array_equal(cells.of(factors), [0, 6, 15, 3, 10])


def test_probabilities_rank_the_cells_worst_first():
    focus = Focus("mass=0.5:1.5", 4, rho=0.5)
    harmonic = 1 + 1 / 2 + 1 / 3 + 1 / 4
    # No score yet: every cell is unvisited; ties go by cell index.
    np.testing.assert_allclose(focus.probabilities(), 0.5 / 4 + 0.5 * np.array([1, 1 / 2, 1 / 3, 1 / 4]) / harmonic)
    focus.update(np.array([[0.6], [0.9], [1.1], [1.4]]), [300.0, 100.0, 200.0, 400.0])
    rank = np.array([3, 1, 2, 4])                            # cell 1 returned least
    expected = 0.5 / 4 + 0.5 * (1 / rank) / harmonic
    np.testing.assert_allclose(focus.probabilities(), expected)
    assert math.isclose(focus.probabilities().sum(), 1.0)
    focus.update(np.array([[0.9]]), [200.0])                  # a running mean, not the last return
    assert focus.score[1] == 100.0 + SCORE_RATE * 100.0
    np.testing.assert_array_equal(focus.episodes, [1, 2, 1, 1])
    uniform = Focus("mass=0.5:1.5", 4, rho=0.0)
    uniform.update(np.array([[0.6]]), [5.0])
    np.testing.assert_array_equal(uniform.probabilities(), 0.25)
    assert focus.stats() == {"focus_score_min": 110.0, "focus_score_max": 400.0,
                             "focus_p_max": pytest.approx(expected.max())}


def test_draws_follow_the_cell_probabilities():
    venv = make_vector_env("Hopper-v5", 1, backend="native")
    r = Randomizer(SPEC, 0, 0, "0", 1, seed=3, focus_bins=4)
    p = np.full(16, 0.5 / 15)
    p[6] = 0.5
    r.advance(0, p)
    draws = 4000
    factors = np.empty((draws, 2))
    for k in range(draws):
        r.start(venv, np.array([0]))
        factors[k] = r.factors[0]
    counts = np.bincount(r.cells.of(factors), minlength=16)
    # Each cell's count is binomial(draws, p): within 5 standard deviations (a false alarm ~1e-5 per test).
    assert (np.abs(counts - draws * p) <= 5 * np.sqrt(draws * p * (1 - p))).all(), counts
    # Within a cell the factors are uniform in draw space: their position's mean is 1/2, its sd sqrt(1/12).
    low, high = r.cells.bounds(6)
    x = np.column_stack([factors[:, 0], np.log(factors[:, 1])])[r.cells.of(factors) == 6]
    position = (x - low) / (high - low)
    assert ((position >= 0) & (position <= 1)).all()
    assert (np.abs(position.mean(0) - 0.5) <= 5 * np.sqrt(1 / 12 / len(x))).all()
    assert factors[:, 0].min() >= 0.5 and factors[:, 0].max() <= 1.5
    assert factors[:, 1].min() >= 0.5 and factors[:, 1].max() <= 2.0


def test_without_probabilities_the_cells_are_uniform_and_without_focus_there_are_none():
    r = make_randomizer(make_config("Hopper-v5", randomize=SPEC, randomize_focus=0.5), 2, 0)
    np.testing.assert_array_equal(r.cell_probs, 1 / 16)
    assert make_randomizer(make_config("Hopper-v5", randomize=SPEC), 2, 0).cells is None
    with pytest.raises(ValueError, match="16 cells"):
        r.advance(0, np.full(9, 1 / 9))


def test_a_worker_draws_from_the_learners_probabilities():
    c = tiny("Hopper-v5", randomize=SPEC, randomize_focus=1.0, workers=2, envs_per_worker=2, batch_size=256)
    w = RolloutWorker(c.to_dict(), None, 1, 128)
    only = np.zeros(16)
    only[9] = 1.0
    rollout = w.collect(w.policy.state_dict(), 0, 0, only)[0]
    w.close()
    assert len(rollout.episode_returns) > 4
    assert len(rollout.episode_factors) == len(rollout.episode_returns)
    # Episodes that started after the learner's probabilities arrived (all here: the worker's first reset
    # draws with them) ran in cell 9.
    np.testing.assert_array_equal(Cells(SPEC, 4).of(rollout.episode_factors), 9)


@pytest.mark.parametrize("backend", ["native", "gymnasium"])
def test_focused_run_sends_its_probabilities_and_resumes_to_the_same_numbers(tmp_path, backend):
    kw = dict(randomize=SPEC, randomize_focus=0.8, estimator="gae", baseline="value", env_backend=backend,
              steps=2800, batch_size=400, checkpoint_every=100)
    sent, seen = [], []

    def record(trainer, rollout, row):
        # The probabilities the next iteration's episode starts use are the ones the learner holds now.
        seen.append(trainer.sampler.randomizer.cell_probs.copy())
        sent.append(trainer.focus.probabilities())
        assert len(rollout.episode_factors) == len(rollout.episode_returns)
        # Each finished episode's factors are those its steps were sampled with (the context, in log).
        logged = {tuple(np.round(row, 5)) for row in rollout.context.reshape(-1, 2)}
        assert all(tuple(np.round(np.log(f).astype(np.float32), 5)) in logged for f in rollout.episode_factors)

    full = robopg.train(tiny("Hopper-v5", **kw), tmp_path / "full", callbacks=[record])
    for before, after in zip(sent, seen[1:]):
        np.testing.assert_array_equal(before, after)
    assert not np.allclose(sent[-1], 1 / 16)      # the scores moved the probabilities
    rows = _numbers(full.run_dir)
    assert all(math.isfinite(r["focus_score_min"]) and r["focus_score_min"] <= r["focus_score_max"] for r in rows)
    with pytest.raises(TrainingInterrupted):
        robopg.train(tiny("Hopper-v5", **kw), tmp_path / "cut", callbacks=[interrupt_at(3)])
    _same(rows, _numbers(robopg.resume(tmp_path / "cut").run_dir))
    unfocused = robopg.train(tiny("Hopper-v5", **{**kw, "randomize_focus": 0.0}), tmp_path / "uniform")
    assert [r["return_mean"] for r in _numbers(unfocused.run_dir)] != [r["return_mean"] for r in rows]
    assert all(math.isnan(r["focus_p_max"]) for r in _numbers(unfocused.run_dir))
    assert robopg.api.load_config(full.run_dir).randomize_focus == 0.8


def test_checks():
    make_config("Hopper-v5", randomize=SPEC, randomize_focus=1.0, randomize_bins=64).validate()
    for kw, option in ((dict(randomize_focus=0.5), "--randomize-focus"),
                       (dict(randomize_focus=0.5, obs_noise=0.1), "--randomize-focus"),
                       (dict(randomize=SPEC, randomize_focus=1.5), "--randomize-focus"),
                       (dict(randomize=SPEC, randomize_focus=0.5, randomize_bins=1), "--randomize-bins"),
                       (dict(randomize=SPEC, randomize_focus=0.5, randomize_bins=65), "--randomize-bins")):
        with pytest.raises(ConfigError, match=option):
            make_config("Hopper-v5", **kw).validate()


@pytest.mark.parametrize("args,option", [
    (["--randomize-focus", "0.5"], "--randomize-focus"),
    (["--randomize", "mass=0.5:1.5", "--randomize-focus", "-0.1"], "--randomize-focus"),
    (["--randomize", "mass=0.5:1.5", "--randomize-focus", "2"], "--randomize-focus"),
    (["--randomize", "mass=0.5:1.5", "--randomize-focus", "0.5", "--randomize-bins", "0"], "--randomize-bins"),
    (["--randomize", "mass=0.5:1.5,friction=0.5:1.5", "--randomize-focus", "0.5", "--randomize-bins", "100"],
     "--randomize-bins"),
])
def test_bad_input_exits_2_naming_the_option(cli, tmp_path, args, option):
    out = cli("train", "Hopper-v5", *args, "--run-dir", tmp_path / "r")
    assert out.returncode == 2, out.stderr
    assert option in out.stderr and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_throughput_pairs_a_focused_trainer_with_a_nominal_one():
    from robopg.experiments.robustness_experiment import throughput

    out = throughput("Hopper-v5", "mass=0.5:1.5", iterations=2, focus=0.5)
    assert out["randomize_focus"] == 0.5 and set(out["steps_per_s"]) == {"nominal", "randomized"}
    assert all(r > 0 for r in out["steps_per_s"].values()) and math.isfinite(out["cost"])
