"""Experiments: sweep (interrupt, restart, failures), compare (IQM and bootstrap intervals checked against
direct computations), report (HTML parsed), video (frames read back), and their bad input."""

import base64
import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser

import numpy as np
import pytest
from scipy import stats

from robopg import make_config
from robopg import stats as aggregate  # robopg.stats; scipy.stats is imported as stats
from robopg.experiments import sweep
from robopg.experiments.compare import _on_grid, compare
from robopg.metrics import COLUMNS, read_csv

from .conftest import tiny


def robopg_main(capsys, *args):
    """``robopg ARGS`` in this process (no interpreter start-up): exit code, stdout, stderr."""
    from robopg.cli import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_curve_band_never_extrapolates():
    grid = np.linspace(0, 10, 11)
    short = _on_grid(np.array([1.0, 5.0]), np.array([0.0, 4.0]), grid)
    assert np.isnan(short[0]) and np.isnan(short[6:]).all() and short[3] == pytest.approx(2.0)
    full = _on_grid(np.array([0.0, 10.0]), np.array([0.0, 10.0]), grid)
    mean, low, high = aggregate.curve_band(np.stack([short, full]), reps=200)
    assert np.isnan(mean[6:]).all() and np.isfinite(mean[1:6]).all()
    assert (low[1:6] <= mean[1:6] + 1e-9).all() and (mean[1:6] <= high[1:6] + 1e-9).all()


# --- synthetic runs ----------------------------------------------------------------------------------------
def write_run(path, returns, env_id="InvertedPendulum-v5", estimator="rtg", baseline="none", seed=0,
              step=1000, budget=None, episodes=4.0, **config):
    """A run folder with config.yaml and a metrics.csv of one row per entry of ``returns`` (NaN: no
    episode finished in that iteration)."""
    config = {"batch_size": 1000, "num_envs": 4, **config}
    cfg = make_config(env_id, estimator=estimator, baseline=baseline, seed=seed, steps=budget or step * len(returns),
                      run_dir=str(path), **config)
    path.mkdir(parents=True)
    cfg.save(path / "config.yaml")
    with open(path / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for i, r in enumerate(returns):
            w.writerow({"iteration": i + 1, "env_steps": step * (i + 1), "wall_s": 0.5 * (i + 1),
                        "steps_per_s": 2000.0, "episodes": 0 if math.isnan(r) else episodes,
                        "return_mean": "" if math.isnan(r) else r})
    return path


def curve(final, n=20, start=10.0):
    """NaN first (no episode yet), a linear rise, then ``final`` for the last two iterations (the last 10%)."""
    return [math.nan] + list(np.linspace(start, final, n - 3)) + [final, final]


FINALS = {"reinforce": [300.0, 420.0, 950.0, 510.0, 60.0], "rtg": [700.0, 880.0, 1000.0, 640.0, 990.0]}


@pytest.fixture
def synthetic(tmp_path):
    root = tmp_path / "runs"
    for est, finals in FINALS.items():
        for seed, final in enumerate(finals):
            write_run(root / f"{est}-s{seed}", curve(final), estimator=est, seed=seed)
    return root


def test_compare_numbers_match_a_direct_computation(capsys, synthetic):
    code, stdout, stderr = robopg_main(capsys, "compare", synthetic, "--json", "--threshold", "600", "--smooth", "1")
    assert code == 0, stderr
    res = json.loads(stdout)
    assert res["env_id"] == "InvertedPendulum-v5" and [a["label"] for a in res["arms"]] == ["reinforce", "rtg"]
    for arm in res["arms"]:
        finals = np.array(FINALS[arm["label"]])
        assert [r["final_return"] for r in arm["runs"]] == pytest.approx(list(finals))
        fr = arm["final_return"]
        assert fr["point"] == pytest.approx(stats.trim_mean(finals, 0.25)) and fr["n"] == 5
        direct = aggregate.interval([finals], aggregate.iqm, reps=2000, seed=0)
        assert (fr["low"], fr["high"]) == pytest.approx((direct.low, direct.high))
        assert finals.min() <= fr["low"] <= fr["point"] <= fr["high"] <= finals.max()
        aucs = []
        for r, final in zip(arm["runs"], finals):
            y = np.array(curve(final)[1:])
            x = 1000.0 * np.arange(2, 21)
            aucs.append(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))
            assert r["auc"] == pytest.approx(aucs[-1])
            reached = np.flatnonzero(y >= 600)
            assert r["steps_to_threshold"] == (int(x[reached[0]]) if reached.size else None)
        assert arm["auc"]["point"] == pytest.approx(stats.trim_mean(aucs, 0.25))
    reinforce = res["arms"][0]["steps_to_threshold"]
    assert reinforce["reached"] == 1 and reinforce["median"] is None  # 1 of 5 reached: the median did not
    for f in ("comparison.md", "comparison.json", "comparison.png"):
        assert (synthetic / f).is_file(), f
    assert (synthetic / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, table, _ = robopg_main(capsys, "compare", synthetic, "--threshold", "600", "--no-figure")
    assert code == 0 and "| rtg | 5 |" in table and "IQM" in table


def test_partial_and_missing_metrics_are_flagged_not_dropped(capsys, synthetic):
    write_run(synthetic / "rtg-s5", curve(900.0)[:8], estimator="rtg", seed=5, budget=20_000)  # stopped early
    bare = synthetic / "rtg-s6"
    bare.mkdir()
    make_config("InvertedPendulum-v5", estimator="rtg", baseline="none", seed=6, batch_size=1000, num_envs=4,
                steps=20_000).save(bare / "config.yaml")
    code, stdout, stderr = robopg_main(capsys, "compare", synthetic, "--json", "--no-figure")
    assert code == 0, stderr
    rtg = json.loads(stdout)["arms"][1]
    by_seed = {r["seed"]: r for r in rtg["runs"]}
    assert by_seed[5]["status"] == "partial" and by_seed[5]["last_steps"] == 8000 and not by_seed[5]["included"]
    assert by_seed[6]["status"] == "no-metrics" and "metrics.csv" in by_seed[6]["note"]
    assert rtg["final_return"]["n"] == 5  # the complete runs only
    assert "PARTIAL" in stderr and "stopped at 8,000 of 20,000 steps" in stderr and "NO METRICS" in stderr
    table = compare([synthetic]).markdown()
    assert "| rtg | 5 (1 partial, excluded; 1 without metrics) |" in table
    incl = compare([synthetic], include_partial=True)
    assert incl.arms[1].final.n == 6 and "| rtg | 5 (1 partial; 1 without metrics) |" in incl.markdown()


def test_compare_figure_with_arms_named_by_many_settings(capsys, tmp_path):
    # Arms that differ in several settings get long labels: wrapped, and the legend moves under the curves
    # (the figure grows taller) instead of covering them.
    from PIL import Image

    from robopg.experiments.compare import LABEL_WIDTH, _wrap

    for i, (lr, gamma, lam) in enumerate([(1e-3, 0.99, 0.95), (3e-4, 0.98, 0.9)]):
        write_run(tmp_path / "runs" / f"a{i}", curve(500.0 + 100 * i), lr=lr, gamma=gamma, lam=lam, value_lr=lr,
                  entropy_coef=0.01 * i, hidden_sizes=[32 + i, 32])
    code, stdout, stderr = robopg_main(capsys, "compare", tmp_path / "runs", "--json")
    assert code == 0, stderr
    labels = [a["label"] for a in json.loads(stdout)["arms"]]
    assert all(len(x) > LABEL_WIDTH for x in labels)
    assert all(len(line) <= LABEL_WIDTH for x in labels for line in _wrap(x).splitlines())
    with Image.open(tmp_path / "runs" / "comparison.png") as png:
        assert png.size[1] > 460  # 4.6 in at 100 dpi, plus the legend's lines


def test_compare_bad_input_is_one_clear_line(capsys, synthetic, tmp_path):
    write_run(tmp_path / "cp", [10.0, 20.0], env_id="CartPole-v1")
    code, _, err = robopg_main(capsys, "compare", synthetic, tmp_path / "cp")
    assert code == 2 and "different environments" in err and "CartPole-v1 (1 runs)" in err
    (tmp_path / "empty").mkdir()
    for bad, words in ((tmp_path / "empty", "not a robopg run"), (tmp_path / "nope", "does not exist"),
                       (synthetic / "rtg-s0" / "metrics.csv", "not a run folder")):
        code, _, err = robopg_main(capsys, "compare", bad)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    (synthetic / "rtg-s0" / "config.yaml").write_text("estimator: [oops\n")
    code, _, err = robopg_main(capsys, "compare", synthetic)
    assert code == 2 and "rtg-s0" in err and len(err.strip().splitlines()) == 1


# --- sweep -------------------------------------------------------------------------------------------------
def _rows(run_dir):
    return read_csv(run_dir / "metrics.csv") if (run_dir / "metrics.csv").exists() else []


def test_sweep_interrupted_and_restarted_finishes_every_run(cli, capsys, tmp_path):
    from robopg.checkpoint import load

    d = tmp_path / "sw"
    cmd = [sys.executable, "-m", "robopg.cli", "sweep", "CartPole-v1", "--estimators", "reinforce,rtg+value",
           "--seeds", "2", "--jobs", "2", "--steps", "16000", "--batch-size", "800", "--num-envs", "4",
           "--checkpoint-every", "2", "--sweep-dir", str(d)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    runs = [d / arm / f"s{s}" for arm in ("reinforce", "rtg+value") for s in (0, 1)]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not any(len(_rows(r)) >= 3 for r in runs):
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "stopping" in out and f"continue with: robopg sweep {d}" in out
    assert not (d / sweep.LOCK).exists()
    states = {r: sweep.run_state(r, 16000) for r in runs}
    assert "resume" in {s.action for s in states.values()}, out
    assert "done" not in {s.action for s in states.values()}, "the runs were meant to be interrupted midway"

    # A run that crashed before its first checkpoint leaves a config.yaml (written first) and no
    # checkpoint: it must start again, not be resumed or skipped.
    never = next(r for r in runs if states[r].action == "train")
    never.mkdir(parents=True)
    make_config("CartPole-v1", estimator="rtg", steps=800, batch_size=800).save(never / "config.yaml")
    assert sweep.run_state(never, 16000).action == "restart"

    again = cli("sweep", d, "--jobs", "2", timeout=240)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resumed from" in again.stdout and "started again (it never wrote a checkpoint)" in again.stdout
    assert "4/4 runs finished" in again.stdout
    for r in runs:
        ckpt = load(r / "checkpoints" / "latest.pt")
        assert ckpt["env_steps"] >= 16000 and ckpt["config"]["seed"] == int(r.name[1:])
        its = [int(row["iteration"]) for row in _rows(r)]
        assert its == list(range(1, len(its) + 1)), f"{r}: iterations {its}"  # nothing lost or repeated
        assert list((r / "tensorboard").glob("events.out.tfevents.*"))  # `tensorboard --logdir runs` sees it
    # Run a third time: nothing left to do.
    code, third, _ = robopg_main(capsys, "sweep", d)
    assert code == 0 and "4 already finished, 0 to run" in third
    code, res, err = robopg_main(capsys, "compare", d, "--json", "--no-figure")
    assert code == 0, err
    res = json.loads(res)
    assert [a["label"] for a in res["arms"]] == ["reinforce", "rtg+value"]
    assert all(a["final_return"]["n"] == 2 for a in res["arms"])


def test_a_failed_run_is_reported_and_the_others_finish(tmp_path):
    s = sweep.plan("CartPole-v1", ["rtg", "rtg+value"], [0], {"steps": 1600, "batch_size": 800, "num_envs": 4,
                                                             "tensorboard": False}, path=tmp_path / "sw")

    def command(sw, arm, seed, state):
        cmd = sweep.command_for(sw, arm, seed, state)
        # A real robopg failure, as a corrupted option would give: exit 2 and an error line.
        return cmd + ["--lr", "-1"] if arm.label == "rtg" else cmd

    said = []
    result = sweep.run(s, jobs=2, say=said.append, command=command)
    text = "\n".join(said)
    assert result.exit_code == 1
    status = {o.arm: o.status for o in result.outcomes}
    assert status == {"rtg": "failed", "rtg+value": "finished"}, text
    assert "rtg s0: FAILED (exit code 2): robopg: error: --lr: must be a positive number" in text
    assert "1/2 runs finished, 1 failed" in text
    assert sweep.run_state(tmp_path / "sw" / "rtg+value" / "s0", 1600).action == "done"


def test_sweep_bad_input(capsys, tmp_path):
    cases = [
        (["CartPole-v1", "--estimators", "rtg,magic"], "unknown estimator 'magic'"),
        (["CartPole-v1", "--estimators", "reinforce", "--baseline", "value"], "--baseline"),
        (["CartPole-v1", "--estimators", "reinforce", "--batch-mode", "steps"], "arm reinforce: --"),
        (["CartPole-v1", "--estimators", "rtg,rtg+none"], "repeats the arm"),
        (["CartPole-v1", "--grid", "lr"], "--grid"),
        (["CartPole-v1", "--grid", "seed=1,2"], "--seeds"),
        (["CartPole-v1", "--jobs", "0"], "--jobs"),
        (["Hoper-v5"], "Hopper-v5"),
    ]
    for args, words in cases:
        code, _, err = robopg_main(capsys, "sweep", *args, "--sweep-dir", tmp_path / "s")
        assert code == 2 and words in err and "Traceback" not in err, (args, err)
        assert not (tmp_path / "s").exists()
    code, _, err = robopg_main(capsys, "sweep", tmp_path)
    assert code == 2 and "not a sweep" in err
    s = sweep.plan("CartPole-v1", ["rtg"], [0], {"steps": 1600, "batch_size": 800}, path=tmp_path / "s")
    s.save()
    code, _, err = robopg_main(capsys, "sweep", tmp_path / "s", "--seeds", "3")
    assert code == 2 and "only --jobs" in err
    code, _, err = robopg_main(capsys, "sweep", "CartPole-v1", "--estimators", "rtg", "--seeds", "3",
                               "--sweep-dir", tmp_path / "s")
    assert code == 2 and "different sweep" in err


def test_cli_start_stays_light():
    code = ("import sys, robopg.cli as c; p = c.build_parser(); p.parse_args(['compare', 'x']); "
            "print(sorted(m for m in ('torch', 'gymnasium', 'matplotlib', 'mujoco') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- video and report --------------------------------------------------------------------------------------
def _renderer_or_skip():
    from robopg.experiments.video import RenderError, find_gl_backend

    try:
        return find_gl_backend()
    except RenderError as e:
        if os.environ.get("ROBOPG_REQUIRE_RENDER"):
            raise  # CI installs a renderer: not finding one there is a failure, not a skip
        pytest.skip(f"no headless OpenGL for MuJoCo on this machine: {e}")


@pytest.fixture(scope="module")
def pendulum_runs(tmp_path_factory):
    import robopg

    root = tmp_path_factory.mktemp("pendulum")
    for seed in (0, 1):
        robopg.train(tiny("InvertedPendulum-v5", estimator="rtg", baseline="none", seed=seed, steps=2048),
                     run_dir=root / f"rtg-s{seed}")
    return root


def test_video_writes_the_frames_it_rendered(cli, pendulum_runs, tmp_path):
    import imageio.v3 as iio

    _renderer_or_skip()
    run = pendulum_runs / "rtg-s0"
    out = cli("video", run, "--episodes", "2", "--max-steps", "6", "--width", "64", "--height", "48",
              "--out", tmp_path / "v.mp4")
    assert out.returncode == 0, out.stderr
    frames = iio.imread(tmp_path / "v.mp4")
    said = int(out.stdout.split("(")[1].split(" frames")[0])
    # Every step is a frame at InvertedPendulum's 25 steps/s: 1 + 6 per episode unless it fell earlier.
    assert frames.shape[1:] == (48, 64, 3) and len(frames) == said and 4 <= said <= 14
    assert frames.max() > 30  # not a black picture
    gif = cli("video", run, "--episodes", "1", "--max-steps", "3", "--gif", "--width", "32", "--height", "32")
    assert gif.returncode == 0, gif.stderr
    assert iio.imread(run / "video.gif").shape[1:3] == (32, 32)


def test_video_bad_input(capsys, tmp_path, synthetic):
    code, _, err = robopg_main(capsys, "video", tmp_path)
    assert code == 2 and "not a robopg run" in err
    code, _, err = robopg_main(capsys, "video", synthetic / "rtg-s0")  # a run without checkpoints
    assert code == 2 and "no checkpoint" in err and len(err.strip().splitlines()) == 1
    code, _, err = robopg_main(capsys, "video", tmp_path / "nope")
    assert code == 2 and "does not exist" in err


def test_no_renderer_names_the_package_to_install(cli, pendulum_runs, monkeypatch):
    from robopg.experiments import video

    reasons = {"egl": "cannot open libEGL", "osmesa": None}
    monkeypatch.setattr(video, "_probe", lambda backend: reasons[backend])
    monkeypatch.setenv("MUJOCO_GL", "egl")
    monkeypatch.delenv("MUJOCO_GL")
    assert video.find_gl_backend() == "osmesa" and os.environ["MUJOCO_GL"] == "osmesa"  # the fallback
    monkeypatch.delenv("MUJOCO_GL")
    reasons["osmesa"] = "cannot open libOSMesa"
    with pytest.raises(video.RenderError) as e:
        video.find_gl_backend()
    assert "cannot open libEGL" in str(e.value) and "cannot open libOSMesa" in str(e.value)
    assert "apt-get install libegl1" in str(e.value) and "libosmesa6" in str(e.value)
    # For real: a backend that cannot work here (glfw needs a display), through the command line.
    out = cli("video", pendulum_runs / "rtg-s0", "--episodes", "1", env={"MUJOCO_GL": "glfw", "DISPLAY": ""})
    assert out.returncode == 1 and "MUJOCO_GL=glfw" in out.stderr and "apt-get install" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.ids, self.text, self.tables = [], {}, [], {}
        self._table, self._row = None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if "id" in a:
            self.ids[a["id"]] = (tag, a)
        if tag == "table":
            self._table = a.get("id")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
            self.tables[self._table].append(self._row)

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None

    def handle_data(self, data):
        self.text.append(data)
        if self._row is not None and self._table and data.strip():
            self._row.append(data.strip())


def test_report_shows_the_robustness_maps_of_each_arm(cli, pendulum_runs, tmp_path):
    # Runs with a robustness.json (robopg robustness) get a section: each arm's mean over its runs, and the maps.
    import json
    import shutil

    for seed, offset in ((0, 0.0), (1, 100.0)):
        run = shutil.copytree(pendulum_runs / f"rtg-s{seed}", tmp_path / "sweep" / f"rtg-s{seed}")
        cells = [{"mass": m, "friction": f, "mean_return": offset + 10 * i, "std_return": 0.0, "episodes": 1}
                 for i, (m, f) in enumerate((m, f) for m in (0.5, 1.0) for f in (0.5, 1.0))]
        doc = {"grid": {"mass": [0.5, 1.0], "friction": [0.5, 1.0]}, "nominal_return": offset + 30.0,
               "worst_return": offset, "grid_mean": offset + 15.0, "cells": cells}
        (run / "robustness").mkdir()
        (run / "robustness" / "robustness.json").write_text(json.dumps(doc))
    out = cli("report", tmp_path / "sweep", "--out", tmp_path / "r.html", "--no-video", timeout=300)
    assert out.returncode == 0, out.stderr
    page = _Page()
    page.feed((tmp_path / "r.html").read_text())
    assert page.tables["robustness-table"] == [["arm", "runs", "nominal return", "worst cell", "grid mean"],
                                               ["rtg", "2", "80.0", "50.0", "65.0"]]
    assert base64.b64decode(page.ids["maps"][1]["src"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_is_one_self_contained_page(cli, pendulum_runs, tmp_path):
    # Synthetic runs with returns below any real pendulum run's, so the best run has a policy to film.
    import yaml

    # The same backend as the real runs beside them (auto resolves per id), so only the estimator differs.
    backend = yaml.safe_load((pendulum_runs / "rtg-s0" / "config.yaml").read_text())["env_backend"]
    like_tiny = dict(tiny("InvertedPendulum-v5", steps=2048).to_dict(), env_backend=backend)
    for k in ("env_id", "estimator", "baseline", "seed", "steps", "run_dir"):
        like_tiny.pop(k)
    write_run(pendulum_runs / "reinforce-s0", curve(1.0, start=1.0), estimator="reinforce", seed=0, step=110,
              budget=2048, **like_tiny)
    write_run(pendulum_runs / "reinforce-s1", curve(1.0, start=1.0)[:5], estimator="reinforce", seed=1, step=110,
              budget=2048, **like_tiny)
    out = cli("report", pendulum_runs, "--out", tmp_path / "r.html", "--video-seconds", "1", "--video-size", "64",
              timeout=300)
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "r.html").read_text()
    page = _Page()
    page.feed(text)
    for section in ("results", "figures", "video", "configs", "runs"):
        assert section in page.ids, section
    results = page.tables["results-table"]
    assert results[0][0] == "arm" and [r[0] for r in results[1:]] == ["reinforce", "rtg"]
    configs = page.tables["configs-table"]
    assert configs[0] == ["setting", "reinforce", "rtg"] and ["estimator", "reinforce", "rtg"] in configs
    runs = page.tables["runs-table"]
    assert any(r[:2] == ["reinforce", "1"] and r[2].startswith("partial") for r in runs[1:])
    img = page.ids["curves"][1]["src"]
    assert base64.b64decode(img.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # Nothing is fetched from anywhere: every src is inline.
    srcs = [a.get(k) for _, a in page.tags for k in ("src", "href", "poster") if a.get(k)]
    assert srcs and all(s.startswith("data:") for s in srcs), [s[:40] for s in srcs]
    assert "<script" not in text
    try:
        _renderer_or_skip()
    except pytest.skip.Exception:
        assert "No video" in text
        return
    video = page.ids["best-video"][1]
    mp4 = base64.b64decode(video["src"].split(",", 1)[1])
    assert video["src"].startswith("data:video/mp4;base64,") and mp4[4:8] == b"ftyp"
    assert "rtg" in page.text[page.text.index("The best run by final return (ties: by AUC): ") + 1]
