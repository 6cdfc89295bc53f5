"""robopg export: the ONNX file (in onnxruntime) and the TorchScript file (in a fresh process, without robopg)
give the actions of ``robopg.load(run).act(obs, deterministic=True)`` on 10,000 observations, batched and one
at a time, for a Gaussian and a categorical policy; the stochastic graphs sample as the policy does; the
deploy example gets ``robopg eval``'s returns with numpy + onnxruntime only; bad input exits 2 and writes
nothing. Also: ``robopg video`` renders CartPole (pygame)."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import robopg
from robopg import export as robopg_export
from robopg.cli import main as robopg_main

from .conftest import ROOT, tiny

N_OBS = 10_000
TOL = 1e-5


# --- runs --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny Hopper run (Gaussian), a copy of it whose actions go past the bounds (so the clip inside the graph
    is exercised), and a tiny CartPole run (categorical)."""
    from robopg import checkpoint

    root = tmp_path_factory.mktemp("export-runs")
    robopg.train(tiny("Hopper-v5", steps=2048), run_dir=root / "hopper")
    robopg.train(tiny("CartPole-v1", steps=2048), run_dir=root / "cartpole")
    robopg.train(tiny("Hopper-v5", steps=2048, obs_history=2), run_dir=root / "history")
    shutil.copytree(root / "hopper", root / "hopper-wide")
    path = root / "hopper-wide" / "checkpoints" / "latest.pt"
    data = checkpoint.load(path)
    last = max((k for k in data["policy"] if k.startswith("mean_net.") and k.endswith(".weight")),
               key=lambda k: int(k.split(".")[1]))
    data["policy"][last] = data["policy"][last] * 50.0  # means of several units: clipped to [-1, 1]
    checkpoint.save(path, data)
    return {"gaussian": root / "hopper-wide", "categorical": root / "cartpole", "hopper": root / "hopper",
            "history": root / "history"}


def observations(policy, n=N_OBS, seed=0):
    """Around the normaliser's statistics; a third far out (past its clip of 10 standard deviations)."""
    rng = np.random.default_rng(seed)
    mean, std = policy.normalizer.mean.numpy(), np.sqrt(policy.normalizer.var.numpy())
    scale = np.array([1.0, 3.0, 40.0])[np.arange(n) % 3][:, None]
    return (mean + std * scale * rng.standard_normal((n, mean.size))).astype(np.float32)


def export_main(capsys, *args):
    code = robopg_main(["export", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def session(path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def max_diff(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, a.dtype, b.shape, b.dtype)
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


# --- deterministic: the same actions as act() ----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_onnx_gives_the_actions_of_act(kind, runs, capsys):
    run = runs[kind]
    code, out, err = export_main(capsys, run, "--format", "onnx")
    assert code == 0, err
    assert "policy.onnx" in out and sorted(p.name for p in (run / "export").iterdir()) == ["policy.json",
                                                                                          "policy.onnx"]
    policy = robopg.load(run)
    obs = observations(policy)
    expected = policy.act(obs, deterministic=True)
    if kind == "gaussian":  # the test means something: actions reach past the bounds, observations the clip
        assert (np.abs(expected) == 1.0).mean() > 0.1 and (np.abs(expected) < 1.0).mean() > 0.3
    sess = session(run / "export" / "policy.onnx")
    batched = sess.run(["action"], {"obs": obs})[0]
    single = np.stack([sess.run(["action"], {"obs": o[None]})[0][0] for o in obs])
    expected_single = np.stack([policy.act(o, deterministic=True) for o in obs])
    d_batch, d_single = max_diff(batched, expected), max_diff(single, expected_single)
    print(f"\nONNX {kind}: max abs difference {d_batch:.3g} (batch of {N_OBS}), {d_single:.3g} (one at a time)")
    assert d_batch <= TOL and d_single <= TOL
    with pytest.raises(Exception, match="(?i)rank|dimension"):  # ONNX's input is [batch, obs_dim]: said, not guessed
        sess.run(["action"], {"obs": obs[0]})


_FRESH = r"""
import sys
sys.modules["robopg"] = None  # the file must stand alone: no robopg in this process
import numpy as np, torch
torch.set_num_threads(1)
model = torch.jit.load(sys.argv[1])
obs = torch.from_numpy(np.load(sys.argv[2]))
with torch.no_grad():
    batched = model(obs).numpy()
    single = np.stack([model(o).numpy() for o in obs])
    nested = model(obs.reshape(100, -1, obs.shape[-1])).numpy().reshape(batched.shape)
np.savez(sys.argv[3], batched=batched, single=single, nested=nested)
"""


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_torchscript_in_a_fresh_process_gives_the_actions_of_act(kind, runs, capsys, tmp_path):
    run = runs[kind]
    code, _, err = export_main(capsys, run, "--format", "torchscript", "--out", tmp_path / "ts")
    assert code == 0, err
    policy = robopg.load(run)
    obs = observations(policy)
    np.save(tmp_path / "obs.npy", obs)
    proc = subprocess.run([sys.executable, "-c", _FRESH, tmp_path / "ts" / "policy.pt", tmp_path / "obs.npy",
                           tmp_path / "out.npz"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = np.load(tmp_path / "out.npz")
    expected = policy.act(obs, deterministic=True)
    expected_single = np.stack([policy.act(o, deterministic=True) for o in obs])
    d_batch, d_single = max_diff(got["batched"], expected), max_diff(got["single"], expected_single)
    print(f"\nTorchScript {kind}: max abs difference {d_batch:.3g} (batch of {N_OBS}), {d_single:.3g} (one at a time)")
    assert d_batch <= TOL and d_single <= TOL
    assert max_diff(got["nested"], expected) <= TOL  # any leading shape [..., obs_dim]


# --- stochastic: sampling as the policy samples -------------------------------------------------------------
@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_stochastic_graphs_sample_as_the_policy_does(kind, runs, capsys, tmp_path):
    import torch

    run = runs["hopper" if kind == "gaussian" else "categorical"]
    policy = robopg.load(run)
    obs = observations(policy, 2000)
    rng = np.random.default_rng(1)
    k = policy.log_std.numel() if kind == "gaussian" else policy.n
    noise = (rng.standard_normal((len(obs), k)) if kind == "gaussian" else rng.random((len(obs), k))
             ).astype(np.float32)
    with torch.no_grad():  # the formulas of GaussianPolicy.sample / CategoricalPolicy.sample, with this noise
        x, z = torch.from_numpy(obs), torch.from_numpy(noise)
        if kind == "gaussian":
            expected = policy.to_env((policy.forward(x) + z * policy.log_std.exp()).numpy())
        else:
            expected = policy.to_env((policy.forward(x) - torch.log(-torch.log(z.clamp_min(1e-20)))).argmax(-1).numpy())

    for fmt in ("onnx", "torchscript"):
        code, _, err = export_main(capsys, run, "--format", fmt, "--stochastic", "--out", tmp_path / fmt)
        assert code == 0, err
        info = json.loads((tmp_path / fmt / "policy.json").read_text())
        assert info["model"]["stochastic"] and [i["name"] for i in info["model"]["inputs"]] == ["obs", "noise"]
    got_onnx = session(tmp_path / "onnx" / "policy.onnx").run(["action"], {"obs": obs, "noise": noise})[0]
    model = torch.jit.load(str(tmp_path / "torchscript" / "policy.pt"))
    with torch.no_grad():
        got_ts = model(torch.from_numpy(obs), torch.from_numpy(noise)).numpy()
        torch.manual_seed(5)
        drawn = model(torch.from_numpy(obs)).numpy()  # noise=None: torch's generator, as the policy samples
        torch.manual_seed(5)
        z = torch.randn(len(obs), k) if kind == "gaussian" else torch.rand(len(obs), k)
        assert max_diff(drawn, model(torch.from_numpy(obs), z).numpy()) == 0.0
    print(f"\nstochastic {kind}: max abs difference ONNX {max_diff(got_onnx, expected):.3g}, "
          f"TorchScript {max_diff(got_ts, expected):.3g}")
    assert max_diff(got_onnx, expected) <= TOL and max_diff(got_ts, expected) <= TOL

    if kind == "gaussian":  # zero noise is the mean
        det = policy.act(obs, deterministic=True)
        zero = session(tmp_path / "onnx" / "policy.onnx").run(["action"], {"obs": obs, "noise": 0 * noise})[0]
        assert max_diff(zero, det) <= TOL
    else:  # Gumbel-max samples the softmax: frequencies of one observation's actions
        m = 20_000
        one = np.repeat(obs[:1], m, 0)
        u = rng.random((m, k), dtype=np.float32)
        counts = np.bincount(session(tmp_path / "onnx" / "policy.onnx").run(["action"], {"obs": one, "noise": u})[0]
                             - policy.start, minlength=k) / m
        with torch.no_grad():
            probs = torch.softmax(policy.forward(torch.from_numpy(obs[:1])), -1).numpy()[0]
        assert np.abs(counts - probs).max() < 0.015, (counts, probs)


# --- policy.json -------------------------------------------------------------------------------------------
def test_policy_json_describes_the_policy_and_travels_inside_the_files(runs, capsys, tmp_path):
    import onnx
    import torch

    run = runs["gaussian"]
    code, _, err = export_main(capsys, run, "--checkpoint", "best", "--format", "onnx", "--out", tmp_path / "e")
    assert code == 0, err
    info = json.loads((tmp_path / "e" / "policy.json").read_text())  # strict JSON: infinities as strings
    policy = robopg.load(run, which="best")
    config = policy.config.to_dict()
    assert info["format"] == "robopg-export" and info["robopg_version"] == robopg.__version__
    assert info["env_id"] == "Hopper-v5" and info["source"]["checkpoint"] == "best"
    assert info["config_hash"] == hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":"))
                                                 .encode()).hexdigest()
    assert info["observation_space"]["shape"] == [11] and info["observation_space"]["low"][0] == "-inf"
    assert info["action_space"] == {"type": "Box", "shape": [3], "dtype": "float32", "low": [-1.0] * 3,
                                    "high": [1.0] * 3}
    assert info["clip"] == {"normalized_observation": [-10.0, 10.0], "action": [[-1.0] * 3, [1.0] * 3]}
    norm = info["normalizer"]
    assert norm["enabled"] and norm["mean"] == policy.normalizer.mean.tolist()
    assert norm["var"] == policy.normalizer.var.tolist() and norm["count"] == float(policy.normalizer.count)
    assert info["verified"]["max_abs_diff"] <= TOL and info["verified"]["observations"] == 1000
    model_bytes = (tmp_path / "e" / "policy.onnx").read_bytes()
    assert info["model"]["sha256"] == hashlib.sha256(model_bytes).hexdigest()
    props = {p.key: p.value for p in onnx.load_from_string(model_bytes).metadata_props}
    assert json.loads(props["robopg_policy_json"])["normalizer"] == norm

    # A second export into the same directory replaces the first whole.
    code, _, err = export_main(capsys, run, "--format", "torchscript", "--out", tmp_path / "e")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == ["policy.json", "policy.pt"]
    extra = {"policy.json": ""}
    torch.jit.load(str(tmp_path / "e" / "policy.pt"), _extra_files=extra)
    assert json.loads(extra["policy.json"])["config_hash"] == info["config_hash"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary directories left


# --- the deploy example --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["hopper", "history"])
def test_deploy_example_gets_the_returns_of_robopg_eval(name, runs, capsys, cli):
    # "history": --obs-history 2, whose input the example stacks itself from policy.json's layout.
    run = runs[name]
    code, _, err = export_main(capsys, run, "--format", "onnx")
    assert code == 0, err
    # numpy + onnxruntime + gymnasium only: importing torch or robopg would fail in this process.
    block = ("import sys, runpy; sys.modules['torch'] = None; sys.modules['robopg'] = None; "
             "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    deployed = subprocess.run([sys.executable, "-c", block, str(ROOT / "examples" / "deploy_onnx.py"),
                               str(run / "export"), "--episodes", "6", "--json"],
                              capture_output=True, text=True, timeout=300)
    assert deployed.returncode == 0, deployed.stderr
    evaluated = cli("eval", run, "--episodes", "6", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    got, want = json.loads(deployed.stdout), json.loads(evaluated.stdout)
    print(f"\ndeploy_onnx.py mean return {got['mean_return']!r}, robopg eval {want['mean_return']!r}")
    assert got["episodes"] == want["episodes"] == 6
    assert got["mean_return"] == pytest.approx(want["mean_return"], rel=1e-6, abs=1e-6)
    assert got["std_return"] == pytest.approx(want["std_return"], rel=1e-5, abs=1e-5)


# --- bad input: exit 2, one line, nothing written --------------------------------------------------------------
def _one_line(code, err, *words):
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, err


def test_bad_input_exits_2_with_one_line_and_writes_nothing(runs, capsys, tmp_path, monkeypatch):
    _one_line(*export_main(capsys, tmp_path / "nope", "--format", "onnx")[::2], "does not exist")
    _one_line(*export_main(capsys, tmp_path, "--format", "onnx")[::2], "not a robopg run")
    assert list(tmp_path.iterdir()) == []

    run = tmp_path / "run"
    shutil.copytree(runs["categorical"], run, ignore=shutil.ignore_patterns("export"))
    _one_line(*export_main(capsys, run, "--format", "tflite")[::2], "tflite", "onnx", "torchscript")
    ckpt = run / "checkpoints" / "latest.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:500])  # truncated
    _one_line(*export_main(capsys, run, "--format", "torchscript")[::2], "corrupt")
    _one_line(*export_main(capsys, run, "--checkpoint", "latest", "--format", "onnx", "--out", tmp_path / "x")[::2],
              "corrupt")
    (run / "checkpoints" / "best.pt").unlink()
    _one_line(*export_main(capsys, run, "--checkpoint", "best", "--format", "onnx")[::2], "no checkpoint")
    assert not (run / "export").exists() and not (tmp_path / "x").exists()
    assert not [p for p in run.iterdir() if p.name.startswith(".")]

    # --out never replaces a directory that is not an earlier export.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    _one_line(*export_main(capsys, runs["categorical"], "--format", "onnx", "--out", mine)[::2], "not a robopg export")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_missing_extra_names_the_install_command(runs, capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    code, _, err = export_main(capsys, runs["categorical"], "--format", "onnx", "--out", tmp_path / "e")
    _one_line(code, err, "onnxruntime", "pip install", "[export]")
    assert not (tmp_path / "e").exists()
    code, _, err = export_main(capsys, runs["categorical"], "--format", "torchscript", "--out", tmp_path / "e")
    assert code == 0, err  # TorchScript needs only torch


def test_a_failed_export_leaves_the_earlier_one_whole(runs, capsys, monkeypatch, tmp_path):
    out = tmp_path / "e"
    assert export_main(capsys, runs["categorical"], "--format", "onnx", "--out", out)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def half_written(graph, path, info):
        Path(path).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(robopg_export, "_write_torchscript", half_written)
    with pytest.raises(OSError, match="disk full"):
        robopg_export.export(runs["categorical"], "torchscript", out=out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # A file that does not do what the checkpoint does is not kept either.
    monkeypatch.undo()
    monkeypatch.setattr(robopg_export, "_reference", lambda policy, graph, obs, noise: policy.act(obs) + 1)
    code, _, err = export_main(capsys, runs["categorical"], "--format", "onnx", "--out", out)
    _one_line(code, err, "does not match")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cli_start_stays_light_with_export_arguments():
    code = ("import sys, argparse, robopg.export as e; p = argparse.ArgumentParser(); e.add_arguments(p); "
            "p.parse_args(['run', '--format', 'onnx']); "
            "print(sorted(m for m in ('torch', 'gymnasium', 'onnx', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- rendering every preset: CartPole needs pygame ------------------------------------------------------------
def test_video_renders_cartpole(runs, cli, tmp_path):
    import imageio.v3 as iio

    try:
        import pygame  # noqa: F401
    except ImportError as e:
        if os.environ.get("ROBOPG_REQUIRE_RENDER"):
            raise  # CI installs the renderers: not finding one there is a failure, not a skip
        pytest.skip(f"pygame (CartPole's renderer) is not installed: {e}")
    out = cli("video", runs["categorical"], "--episodes", "1", "--max-steps", "8", "--out", tmp_path / "v.mp4")
    assert out.returncode == 0, out.stderr
    assert "error" not in out.stderr.lower(), out.stderr  # no SDL complaint about a missing display
    frames = iio.imread(tmp_path / "v.mp4")
    said = int(out.stdout.split("(")[1].split(" frames")[0])
    assert len(frames) == said and 2 <= said <= 9 and frames.shape[-1] == 3
    assert frames.min() < 100 < frames.max()  # the cart and pole on a white background, not a blank picture
