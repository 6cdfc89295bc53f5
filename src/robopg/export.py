"""``robopg export``: a trained policy as one self-contained ONNX or TorchScript file, plus ``policy.json``.

The file maps a float32 observation to the action to send to the environment, with everything
``robopg.load(run).act(obs)`` does inside the graph: the observation normaliser (its statistics frozen as
constants, normalised values clipped to +-clip), the network, and the clip to the action bounds (Gaussian)
or the argmax plus ``action_space.start`` (categorical). The TorchScript file takes one observation
``[obs_dim]`` or any batch ``[..., obs_dim]`` and returns ``[..., *action_shape]`` (float32) or ``[...]``
(int64). The ONNX file takes a batch ``[batch, obs_dim]`` (any batch size, including 1): ONNX graph inputs
have a fixed rank (onnx's checker rejects an input of unknown rank, and so do most runtimes), so one
observation is passed as ``obs[None]``.

``--stochastic`` exports a graph that samples, from noise the caller passes (an input named ``noise``):
standard normal noise of the action's shape for a Gaussian policy (``action = clip(mean + std * noise)``),
uniform [0, 1) noise of shape ``[..., n]`` for a categorical one (Gumbel-max: ``argmax(logits -
log(-log(u)))``, as robopg samples in training). The graph itself stays deterministic, so the same noise
gives the same action in every runtime; ONNX's own RandomNormal/RandomUniform ops are not used, since their
seeding is runtime-specific and not reproducible. The TorchScript file also accepts ``noise=None`` and then
draws it with torch's generator (``torch.manual_seed`` makes it repeatable).

Every export is checked before it is kept: the written file is run (onnxruntime for ONNX, ``torch.jit.load``
for TorchScript) on 1,000 observations and compared with the policy it came from; the largest difference is
recorded in ``policy.json``. Everything is written into a temporary directory next to the destination and
renamed into place, so a failed export leaves nothing half-written.

torch is imported only when an export runs, so ``add_arguments`` costs the CLI's start-up nothing.
"""

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from .config import CHECKPOINTS
from .errors import ConfigError

FORMATS = ("onnx", "torchscript")
FILES = {"onnx": "policy.onnx", "torchscript": "policy.pt"}
MARKER = "robopg-export"
VERSION = 1
OPSET = 17
CHECK_OBSERVATIONS = 1000
TOLERANCE = 1e-5
INSTALL = "pip install -c constraints.txt -e '.[export]'  (or: pip install 'robopg[export]')"


class ExportError(ConfigError):
    """Bad input to ``robopg export`` (one line, exit code 2); nothing has been written."""


# --- command line -----------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a run directory (runs/<env>/<name>) or a checkpoint file")
    parser.add_argument("--checkpoint", choices=CHECKPOINTS, default="latest",
                        help="which checkpoint of a run directory: the final policy, the best training return's, or "
                        "the best held-out score's (--eval-every)")
    # Checked in run(), not by argparse's choices, so a wrong value gets one line, not the usage text too.
    parser.add_argument("--format", required=True, metavar="{onnx,torchscript}",
                        help="onnx (runs in onnxruntime; needs the export extra) or torchscript (torch.jit.load)")
    parser.add_argument("--stochastic", action="store_true",
                        help="export a graph that samples from noise passed as its 'noise' input (see policy.json)")
    parser.add_argument("--out", help="output directory (default: <run>/export); an earlier export there is "
                                      "replaced")


def run(args: argparse.Namespace) -> int:
    """``robopg export``: 0 when written; bad input and a missing extra raise (``robopg.cli`` exits 2 with one
    line); 1 for a destination that cannot be written."""
    try:
        result = export(args.run, args.format, which=args.checkpoint, stochastic=args.stochastic, out=args.out)
    except OSError as e:  # a destination that cannot be written (permissions, a full disk): nothing was kept
        print(f"robopg: error: cannot write the export: {e}", file=sys.stderr)
        return 1
    kind = "stochastic (noise input)" if args.stochastic else "deterministic"
    print(f"exported {result['env_id']} policy ({args.format}, {kind}) to {result['out']}: "
          f"{result['file']}, policy.json; matches the checkpoint on {result['checked']} observations "
          f"(max abs difference {result['max_abs_diff']:.2e})")
    return 0


DESCRIPTION = ("Export a trained policy as ONNX or TorchScript with its observation normaliser and action clipping "
               "inside, and policy.json beside it (spaces, clip ranges, normaliser statistics, versions).")


# --- the export -------------------------------------------------------------------------------------------
def export(run: str | Path, format: str, which: str = "latest", stochastic: bool = False,
           out: str | Path | None = None) -> dict[str, Any]:
    """Export the policy of ``run`` (a run directory or a checkpoint file) into ``out`` (default
    ``<run>/export``): the model file and ``policy.json``. Returns a summary (out, file, checked, ...)."""
    if format not in FORMATS:
        raise ExportError(f"--format: unknown format {format!r}; choose onnx or torchscript")
    if which not in CHECKPOINTS:
        raise ExportError(f"--checkpoint: choose {', '.join(CHECKPOINTS)}, not {which!r}")
    run = Path(run)
    ckpt_path, out = _paths(run, which, out)
    _check_destination(out)
    if format == "onnx":
        _require_onnx()

    import numpy as np
    import torch

    from . import __version__, checkpoint
    from .api import load

    policy = load(run, which=which)  # CheckpointError (one line) for a missing, corrupt or mismatched file
    meta = checkpoint.load(ckpt_path)
    config = policy.config
    if config.policy_obs == "privileged":
        raise ConfigError(f"{run}: the policy reads the true physics factors (--policy-obs privileged), which a "
                          f"deployed robot cannot give it: distil it first (robopg train --distill-from {run})")
    graph = _graph(policy, stochastic)
    info = _describe(policy, graph, config, format, stochastic, meta, ckpt_path, which, __version__)
    obs, noise = _check_inputs(policy, graph, np.random.default_rng(0))
    expected = _reference(policy, graph, obs, noise)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the export is an ordinary directory
        with torch.no_grad():
            diff = _write_verified(policy, graph, format, tmp / FILES[format], info, obs, noise, expected)
        info["verified"] = {"observations": int(len(obs)), "max_abs_diff": float(diff), "tolerance": TOLERANCE,
                            "reference": "robopg.load(run).act(obs, deterministic=True)" if not stochastic
                            else "the policy's own sampling formula with the same noise"}
        (tmp / "policy.json").write_text(json.dumps(_finite(info), indent=2, allow_nan=False) + "\n")
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": out, "file": FILES[format], "checked": len(obs), "max_abs_diff": diff, "env_id": config.env_id}


def _paths(run: Path, which: str, out: str | Path | None) -> tuple[Path, Path]:
    """The checkpoint to export and the directory to write, for a run directory or a checkpoint file."""
    if not run.exists():
        raise ExportError(f"{run} does not exist")
    if run.is_dir() and not (run / "config.yaml").is_file():
        raise ExportError(f"{run} is not a robopg run: it has no config.yaml")
    if run.is_dir():
        return run / "checkpoints" / f"{which}.pt", Path(out) if out else run / "export"
    return run, Path(out) if out else run.with_name(run.stem + "-export")


def _write_verified(policy, graph, format: str, model_path: Path, info: dict, obs, noise, expected) -> float:
    """Write the model file, run it in its own runtime, and refuse it unless it matches the checkpoint."""
    if format == "onnx":
        _write_onnx(graph, model_path, info)
        got = _run_onnx(model_path, obs, noise)
    else:
        _write_torchscript(graph, model_path, info)
        got = _run_torchscript(model_path, obs, noise)
    diff = _compare(policy, graph, obs, noise, expected, got)
    if not diff <= TOLERANCE:
        raise ExportError(f"the exported {format} policy does not match the checkpoint (max abs difference "
                          f"{diff:.3g} > {TOLERANCE:g}); nothing was written")
    info["model"]["sha256"] = hashlib.sha256(model_path.read_bytes()).hexdigest()
    return diff


def _check_destination(out: Path) -> None:
    """An existing ``out`` is replaced only when it is an earlier export or empty: never a user's directory."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ExportError(f"--out: {out} exists and is not a directory")
    if not any(out.iterdir()):
        return
    try:
        earlier = json.loads((out / "policy.json").read_text()).get("format") == MARKER
    except (OSError, ValueError, AttributeError):
        earlier = False
    if not earlier:
        raise ExportError(f"--out: {out} exists and is not a robopg export; choose another directory")


def _replace_dir(tmp: Path, out: Path) -> None:
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
        os.replace(out, old / "x")  # out is gone only while the new one is renamed in, never half-written
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old / "x", out)
            raise
        finally:
            shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def _require_onnx() -> None:
    missing = []
    for name in ("onnx", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ExportError(f"--format onnx needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'}"
                          f" not installed: {INSTALL}")


# --- the graph ---------------------------------------------------------------------------------------------
def _graph(policy, stochastic: bool):
    """A torch module on flat batches ``[N, obs_dim]`` (and noise ``[N, k]``) doing what ``act`` does."""
    from .policies import CategoricalPolicy, GaussianPolicy

    if isinstance(policy, GaussianPolicy):
        graph = _gaussian_graph(policy, stochastic)
    elif isinstance(policy, CategoricalPolicy):
        graph = _categorical_graph(policy, stochastic)
    else:
        raise ExportError(f"cannot export a {type(policy).__name__}")
    graph.obs_dim = int(policy.normalizer.mean.numel())
    return graph.eval()


def _core(policy, stochastic: bool):
    """The part both graphs share: the observation normaliser, as ``ObsNormalizer.forward`` computes it."""
    import copy

    import torch
    from torch import nn

    class Core(nn.Module):
        def __init__(self):
            super().__init__()
            norm = policy.normalizer
            self.normalize = bool(norm.enabled)
            self.clip = float(norm.clip)
            # What ObsNormalizer.forward computes with: float32 mean and 1/sqrt(var + 1e-8), from float64.
            self.register_buffer("obs_mean", norm.mean.detach().float().clone())
            self.register_buffer("obs_inv_std", (1.0 / torch.sqrt(norm.var.detach() + 1e-8)).float())
            self.stochastic = stochastic
            # --policy-obs estimated: the physics estimate joins the network's input (Policy.net_inputs).
            self.physics_estimate = None if policy.physics_estimate is None else copy.deepcopy(policy.physics_estimate)

        def inputs(self, obs: torch.Tensor) -> torch.Tensor:
            """The network's input (Policy.net_inputs of the normalised observation)."""
            if self.normalize:
                obs = ((obs - self.obs_mean) * self.obs_inv_std).clamp(-self.clip, self.clip)
            if self.physics_estimate is not None:
                obs = torch.cat([obs, self.physics_estimate(obs)], -1)
            return obs

        def features(self, obs: torch.Tensor) -> torch.Tensor:
            return self.net(self.inputs(obs))

    return Core


def _gaussian_graph(policy, stochastic: bool):
    import copy

    import torch

    class Gaussian(_core(policy, stochastic)):
        kind = "gaussian"

        def __init__(self):
            super().__init__()
            self.net = copy.deepcopy(policy.mean_net)
            # --action-gain learned: the mean times the gain of the same input (GaussianPolicy.forward).
            self.gain = None if policy.action_gain is None else copy.deepcopy(policy.action_gain)
            self.register_buffer("std", policy.log_std.detach().exp().clone())
            self.register_buffer("low", policy.low.detach().clone())
            self.register_buffer("high", policy.high.detach().clone())

        def forward(self, obs: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
            x = self.inputs(obs)
            a = self.net(x)
            if self.gain is not None:
                a = a * self.gain(x)
            if self.stochastic:
                eps = torch.randn_like(a) if noise is None else noise
                a = a + eps * self.std  # as GaussianPolicy.sample
            return torch.min(torch.max(a, self.low), self.high)  # np.clip(a, low, high), as to_env

    graph = Gaussian()
    graph.noise_dim = int(policy.log_std.numel())
    graph.action_shape = [int(d) for d in policy.action_shape]
    return graph


def _categorical_graph(policy, stochastic: bool):
    import copy

    import torch

    class Categorical(_core(policy, stochastic)):
        kind = "categorical"

        def __init__(self):
            super().__init__()
            self.net = copy.deepcopy(policy.logits_net)
            self.start = int(policy.start)

        def forward(self, obs: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
            logits = self.features(obs)
            if self.stochastic:
                u = torch.rand_like(logits) if noise is None else noise
                logits = logits + -torch.log(-torch.log(u.clamp_min(1e-20)))  # Gumbel, as .sample
            a = logits.argmax(-1)
            return a + self.start if self.start != 0 else a

    graph = Categorical()
    graph.noise_dim = int(policy.n)
    graph.action_shape = []
    return graph


def _describe(policy, graph, config, format, stochastic, meta, ckpt_path, which, version) -> dict[str, Any]:
    import numpy as np
    import torch

    from .envs import make_env
    from .envs.history import action_width

    env = make_env(config.env_id, config.env_kwargs, config.flatten_observations, config.obs_history)
    try:
        obs_space, act_space = env.observation_space, env.action_space
    finally:
        env.close()
    norm = policy.normalizer
    action_space, inputs, action, extra = _interface(policy, graph, act_space, format, stochastic)
    if config.obs_history:
        # The model cannot build its own history: whoever deploys it stacks the input as training did.
        inputs[0]["history"] = {
            "k": config.obs_history, "layout": "[o_t, o_(t-1), ..., o_(t-k), a_(t-1), ..., a_(t-k)]: the last k+1 "
            "observations and the k actions the robot received, newest first; zeros before the episode's start"
            + ("; actions one-hot" if graph.kind != "gaussian" else ""),
            "observation_dim": (obs_space.shape[0] - config.obs_history * action_width(act_space))
            // (config.obs_history + 1)}
    config_dict = config.to_dict()
    return {
        "format": MARKER,
        "version": VERSION,
        "robopg_version": version,
        "env_id": config.env_id,
        "config_hash": hashlib.sha256(json.dumps(config_dict, sort_keys=True, separators=(",", ":"),
                                                 default=str).encode()).hexdigest(),
        "config_hash_of": "sha256 of the checkpoint's config as JSON with sorted keys and no spaces",
        "source": {"run": str(ckpt_path.parent.parent if ckpt_path.parent.name == "checkpoints" else ckpt_path),
                   "checkpoint": which, "file": str(ckpt_path), "iteration": meta.get("iteration"),
                   "env_steps": meta.get("env_steps")},
        "model": {"file": FILES[format], "format": format, "stochastic": stochastic,
                  **({"opset": OPSET} if format == "onnx" else {"load": "torch.jit.load(path)"}),
                  "inputs": inputs, "outputs": [action]},
        "policy": {"type": graph.kind, "hidden_sizes": list(config.hidden_sizes), "activation": config.activation,
                   **({"action_gain": f"{config.action_gain}: the mean times exp(B tanh((W x + b) / B)), B = log 3, x "
                       "the network's input; inside the model"}
                      if getattr(policy, "action_gain", None) is not None else {}),
                   **extra},
        "observation_space": {"type": "Box", "shape": list(obs_space.shape), "dtype": str(obs_space.dtype),
                              "low": np.asarray(obs_space.low).tolist(), "high": np.asarray(obs_space.high).tolist()},
        "action_space": action_space,
        "clip": {"normalized_observation": [-float(norm.clip), float(norm.clip)] if norm.enabled else None,
                 "action": [policy.low.tolist(), policy.high.tolist()] if graph.kind == "gaussian" else None},
        "normalizer": {"enabled": bool(norm.enabled), "clip": float(norm.clip), "epsilon": 1e-8,
                       "mean": norm.mean.tolist(), "var": norm.var.tolist(), "count": float(norm.count),
                       "formula": "clip((obs - mean) / sqrt(var + epsilon), -clip, clip), in float32"},
        "torch_version": torch.__version__.split("+")[0],
    }


def _interface(policy, graph, act_space, format: str, stochastic: bool):
    """The action space, the model's inputs and output, and the policy's extra facts, for policy.json."""
    if graph.kind == "gaussian":
        action_space = {"type": "Box", "shape": list(act_space.shape), "dtype": str(act_space.dtype),
                        "low": act_space.low.tolist(), "high": act_space.high.tolist()}
        action = {"name": "action", "dtype": "float32", "shape": ["...", *graph.action_shape]}
        noise = {"name": "noise", "dtype": "float32", "shape": ["...", graph.noise_dim],
                 "distribution": "standard normal", "use": "action = clip(mean + std * noise, low, high)"}
        extra = {"std": policy.log_std.detach().exp().tolist()}
    else:
        action_space = {"type": "Discrete", "n": int(act_space.n), "start": int(act_space.start)}
        action = {"name": "action", "dtype": "int64", "shape": ["..."]}
        noise = {"name": "noise", "dtype": "float32", "shape": ["...", graph.noise_dim],
                 "distribution": "uniform [0, 1)",
                 "use": "action = argmax(logits - log(-log(max(noise, 1e-20)))) + start (Gumbel-max)"}
        extra = {}
    if format == "onnx":  # ONNX inputs have a fixed rank
        batch = ["batch"]
        note = "a batch [batch, obs_dim]: one observation is obs[None]; float64 observations cast to float32"
    else:
        batch = ["..."]
        note = "one observation [obs_dim] or a batch [..., obs_dim]; float64 observations cast to float32"
    inputs = [{"name": "obs", "dtype": "float32", "shape": [*batch, graph.obs_dim], "note": note}]
    action["shape"] = [*batch, *action["shape"][1:]]
    noise["shape"] = [*batch, graph.noise_dim]
    if stochastic:
        inputs.append(noise if format == "onnx" else {**noise, "optional": "None: drawn with torch's generator"})
    return action_space, inputs, action, extra


def _finite(x):
    """JSON has no infinities (Box bounds often are): write them as the strings "inf" and "-inf"."""
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


# --- checking ----------------------------------------------------------------------------------------------
def _check_inputs(policy, graph, rng):
    """Observations around the normaliser's statistics (a tenth of them far out, past its clip), and noise."""
    import numpy as np

    norm = policy.normalizer
    mean, std = norm.mean.numpy(), np.sqrt(norm.var.numpy())
    n = CHECK_OBSERVATIONS
    scale = np.where(np.arange(n)[:, None] % 10 == 0, 30.0, 2.0)
    obs = (mean + std * scale * rng.standard_normal((n, graph.obs_dim))).astype(np.float32)
    if graph.kind == "gaussian":
        noise = rng.standard_normal((n, graph.noise_dim)).astype(np.float32)
    else:
        noise = rng.random((n, graph.noise_dim), dtype=np.float32)
    return obs, (noise if graph.stochastic else None)


def _reference(policy, graph, obs, noise):
    """What the policy itself does: ``act`` (deterministic) or its sampling formula with the given noise."""
    import numpy as np
    import torch

    if noise is None:
        return policy.act(obs, deterministic=True)
    with torch.no_grad():
        x = torch.from_numpy(obs)
        if graph.kind == "gaussian":
            a = policy.forward(x) + torch.from_numpy(noise) * policy.log_std.exp()
            return policy.to_env(a.numpy())
        gumbel = -torch.log(-torch.log(torch.from_numpy(noise).clamp_min(1e-20)))
        return policy.to_env((policy.forward(x) + gumbel).argmax(-1).numpy()).astype(np.int64)


def _compare(policy, graph, obs, noise, expected, got) -> float:
    """Max abs difference; for a categorical policy a different argmax counts only at a near-tie of logits
    (the runtimes round the last bit differently), else it is the difference of the action indices."""
    import numpy as np
    import torch

    if got.shape != expected.shape or got.dtype != expected.dtype:
        raise ExportError(f"the exported policy returns {got.dtype}{list(got.shape)}, the checkpoint "
                          f"{expected.dtype}{list(expected.shape)}")
    diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    if graph.kind == "categorical" and diff.any():
        with torch.no_grad():
            logits = policy.forward(torch.from_numpy(obs))
            if noise is not None:
                logits = logits + -torch.log(-torch.log(torch.from_numpy(noise).clamp_min(1e-20)))
        top2 = logits.topk(2, -1).values.numpy() if logits.shape[-1] > 1 else None
        near_tie = top2 is not None and (top2[:, 0] - top2[:, 1] < TOLERANCE)
        diff = np.where(near_tie, 0.0, diff)
    return float(diff.max()) if diff.size else 0.0


# --- ONNX --------------------------------------------------------------------------------------------------
def _write_onnx(graph, path: Path, info: dict) -> None:
    """Export with torch's TorchScript-based exporter (``dynamo=False``: it needs no onnxscript). ONNX graph
    inputs have a fixed rank (the checker and most runtimes insist), so ``obs`` is ``[batch, obs_dim]``: pass
    one observation as ``obs[None]``."""
    import io

    import onnx
    import torch
    from onnx import helper

    module = graph if len(graph.action_shape) <= 1 else _Unflatten(graph)
    obs = torch.zeros(2, graph.obs_dim)
    args: tuple = (obs,)
    names = ["obs"]
    if graph.stochastic:
        args = (obs, torch.full((2, graph.noise_dim), 0.5))
        names.append("noise")
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation notice
        torch.onnx.export(module, args, buf, dynamo=False, opset_version=OPSET, input_names=names,
                          output_names=["action"], dynamic_axes={n: {0: "batch"} for n in [*names, "action"]},
                          do_constant_folding=True)
    model = onnx.load_from_string(buf.getvalue())
    model.producer_name, model.producer_version = "robopg", info["robopg_version"]
    model.doc_string = (f"robopg {info['policy']['type']} policy for {info['env_id']}: obs float32 [batch, "
                        f"{graph.obs_dim}] -> action; see policy.json")
    helper.set_model_props(model, {"robopg_policy_json": json.dumps(_finite(info), allow_nan=False)})
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString())


def _Unflatten(graph):
    from torch import nn

    class Unflatten(nn.Module):  # Box actions of more than one dimension: [batch, *action_shape]
        def __init__(self):
            super().__init__()
            self.graph = graph

        def forward(self, obs, noise=None):
            a = self.graph(obs, noise)
            return a.reshape([a.shape[0], *graph.action_shape])

    return Unflatten()


def _run_onnx(path: Path, obs, noise):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {"obs": obs} if noise is None else {"obs": obs, "noise": noise}
    return session.run(["action"], feed)[0]


# --- TorchScript -------------------------------------------------------------------------------------------
def _write_torchscript(graph, path: Path, info: dict) -> None:
    import torch
    from torch import nn

    class AnyRank(nn.Module):
        """``graph`` for one observation or any batch: flattened to ``[N, obs_dim]`` and back."""

        action_shape: list[int]  # TorchScript cannot infer the type of an empty list

        def __init__(self, core: nn.Module, obs_dim: int, noise_dim: int, action_shape: list[int]):
            super().__init__()
            self.core = core
            self.obs_dim = obs_dim
            self.noise_dim = noise_dim
            self.action_shape = action_shape

        def forward(self, obs: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
            batch = obs.shape[:-1]
            flat_noise: torch.Tensor | None = None
            if noise is not None:
                flat_noise = noise.reshape(-1, self.noise_dim)
            a = self.core(obs.reshape(-1, self.obs_dim), flat_noise)
            return a.reshape(batch + self.action_shape)

    if not graph.stochastic:
        class Deterministic(AnyRank):  # a deterministic file takes no noise: passing some is an error
            def forward(self, obs: torch.Tensor) -> torch.Tensor:
                batch = obs.shape[:-1]
                return self.core(obs.reshape(-1, self.obs_dim), None).reshape(batch + self.action_shape)

        module = Deterministic(graph, graph.obs_dim, graph.noise_dim, list(graph.action_shape))
    else:
        module = AnyRank(graph, graph.obs_dim, graph.noise_dim, list(graph.action_shape))
    scripted = torch.jit.script(module.eval())
    torch.jit.save(scripted, str(path), _extra_files={"policy.json": json.dumps(_finite(info), allow_nan=False)})


def _run_torchscript(path: Path, obs, noise):
    import torch

    module = torch.jit.load(str(path))
    with torch.no_grad():
        a = module(torch.from_numpy(obs)) if noise is None else module(torch.from_numpy(obs), torch.from_numpy(noise))
    return a.numpy()

