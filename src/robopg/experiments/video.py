"""``robopg video``: the trained policy, rendered headless with MuJoCo's offscreen renderer, as MP4 (or GIF).

MuJoCo picks its OpenGL backend from ``MUJOCO_GL`` when ``mujoco`` is first imported, so the backend is
chosen before that: each candidate (``egl``, then ``osmesa``) is tried in a short subprocess, and the first
that renders is set in this process's environment. A user's own ``MUJOCO_GL`` is respected.
"""

from __future__ import annotations

import gc
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Config
from ..errors import ConfigError, RenderError

BACKENDS = ("egl", "osmesa")
# What provides each backend on Debian/Ubuntu (EGL with Mesa's software llvmpipe needs no GPU).
PACKAGES = {"egl": "libegl1 libegl-mesa0 libgl1-mesa-dri", "osmesa": "libosmesa6"}
_PROBE = ("import mujoco\n"
          "m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size=\"1\"/></worldbody></mujoco>')\n"
          "r = mujoco.Renderer(m, 16, 16)\n"
          "r.update_scene(mujoco.MjData(m))\n"
          "r.render()\n"
          "r.close()\n")


def _probe(backend: str) -> str | None:
    """None if MuJoCo renders with ``backend`` in a fresh process, else the reason it does not."""
    env = {**os.environ, "MUJOCO_GL": backend}
    if backend == "osmesa":
        env["PYOPENGL_PLATFORM"] = "osmesa"
    try:
        out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "timed out"
    if out.returncode == 0:
        return None
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else f"exit code {out.returncode}"


def find_gl_backend() -> str:
    """The MuJoCo OpenGL backend to use, set in ``os.environ`` for the ``mujoco`` import to come."""
    if "mujoco" in sys.modules and os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]  # already imported: whatever it chose is what we have
    wanted = os.environ.get("MUJOCO_GL")
    candidates = (wanted,) if wanted else BACKENDS
    failures = []
    for backend in candidates:
        why = _probe(backend)
        if why is None:
            os.environ["MUJOCO_GL"] = backend
            if backend == "osmesa":
                os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
            return backend
        failures.append(f"MUJOCO_GL={backend}: {why}")
    install = " or ".join(f"{PACKAGES[b]} ({b})" for b in BACKENDS)
    hint = f"; unset MUJOCO_GL to try {', '.join(BACKENDS)}" if wanted and wanted not in BACKENDS else ""
    raise RenderError(f"MuJoCo cannot render headless here ({'; '.join(failures)}). Install an OpenGL "
                      f"backend, e.g. on Debian/Ubuntu: apt-get install {install}{hint}")


def is_mujoco_env(env_id: str) -> bool:
    import gymnasium as gym

    module, _, name = env_id.rpartition(":")
    if module:  # a user's own env ("module:EnvId"): a subclass of Gymnasium's MujocoEnv renders as they do
        from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

        from ..envs import env_spec

        entry = env_spec(env_id).entry_point
        entry = gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
        return isinstance(entry, type) and issubclass(entry, MujocoEnv)
    entry = gym.spec(name).entry_point
    return isinstance(entry, str) and "mujoco" in entry


@dataclass
class Video:
    path: Path
    frames: int
    fps: float
    returns: list[float]
    width: int
    height: int
    poster: np.ndarray  # a frame from the middle, for a still picture of the video


def _frame_stride(dt: float | None, fps: float | None) -> tuple[int, float]:
    """Render every ``stride``-th step so the video plays in real time: (stride, frames per second)."""
    if not dt:
        return 1, fps or 30.0
    stride = max(1, round(1.0 / ((fps or 30.0) * dt)))
    return stride, fps or 1.0 / (stride * dt)


def render_episodes(policy, env_id: str, episodes: int = 1, width: int = 480, height: int = 480,
                    fps: float | None = None, max_steps: int | None = None, seed: int = 10_000,
                    deterministic: bool = True, max_seconds: float | None = None, env_kwargs: dict | None = None,
                    flatten_observations: bool = False,
                    obs_history: int = 0) -> tuple[list[np.ndarray], float, list[float]]:
    """Frames of ``episodes`` episodes of ``policy`` (at most ``max_steps`` steps, or ``max_seconds`` of
    simulated time, each), the frame rate that plays them in real time (or ``fps``), and each episode's
    return (of the steps rendered). ``env_kwargs``, ``flatten_observations``, ``obs_history``: the run's."""
    import gymnasium as gym

    if episodes < 1:
        raise ConfigError(f"--episodes: must be at least 1, got {episodes}")
    if width < 16 or height < 16:
        raise ConfigError(f"--width/--height: at least 16 pixels, got {width}x{height}")
    if fps is not None and fps <= 0:
        raise ConfigError(f"--fps: must be positive, got {fps}")
    mujoco = is_mujoco_env(env_id)
    if mujoco:
        find_gl_backend()
    else:
        # pygame (classic control) initialises its display even for rgb_array frames; headless, SDL prints
        # an error while it looks for one. The dummy driver draws off-screen, which is all that is needed.
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from ..envs import make_env
    try:
        env = make_env(env_id, env_kwargs, flatten_observations, obs_history, render_mode="rgb_array",
                       **({"width": width, "height": height} if mujoco else {}))
    except gym.error.DependencyNotInstalled as e:
        raise RenderError(f"{env_id} renders with pygame, which is not installed: pip install pygame") from e
    frames, returns = [], []
    try:
        dt = getattr(env.unwrapped, "dt", None)
        stride, fps = _frame_stride(dt if mujoco else None, fps)
        if max_seconds is not None and dt:
            limit = max(1, math.ceil(max_seconds / dt))
            max_steps = limit if max_steps is None else min(max_steps, limit)
        if mujoco:
            _fast_scene(env)
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            total, t, done = 0.0, 0, False
            frames.append(_frame(env))
            while not done and (max_steps is None or t < max_steps):
                obs, reward, terminated, truncated, _ = env.step(policy.act(np.asarray(obs, dtype=np.float32),
                                                                            deterministic=deterministic))
                total += float(reward)
                t += 1
                done = terminated or truncated
                if t % stride == 0 or done:
                    frames.append(_frame(env))
            returns.append(total)
    except gym.error.DependencyNotInstalled as e:
        raise RenderError(f"{env_id} renders with pygame, which is not installed: pip install pygame") from e
    finally:
        env.close()
        # Gymnasium's offscreen viewer frees its GL context again when garbage-collected, which un-binds
        # whatever context is current then: collect now, not in the middle of a later render.
        del env
        gc.collect()
    return frames, fps, returns


def _fast_scene(env) -> None:
    """Shadows and floor reflections cost half to two thirds of a software-rendered frame; a video of
    a gait reads as well without them."""
    import mujoco

    viewer = env.unwrapped.mujoco_renderer._get_viewer("rgb_array")
    viewer.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    viewer.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0


def _frame(env) -> np.ndarray:
    frame = env.render()
    if frame is None or frame.ndim != 3:
        raise RenderError("the environment returned no frame to render")
    return np.ascontiguousarray(frame)


def write_video(frames: list[np.ndarray], path: Path, fps: float, gif: bool = False) -> None:
    try:
        import imageio.v2 as imageio
    except ImportError as e:
        raise RenderError("writing video needs imageio: pip install imageio imageio-ffmpeg") from e
    path.parent.mkdir(parents=True, exist_ok=True)
    if gif:
        imageio.mimsave(path, frames, format="GIF", duration=1000.0 / fps, loop=0)
        return
    try:
        import imageio_ffmpeg  # noqa: F401  (ships its own ffmpeg binary)
    except ImportError as e:
        raise RenderError("writing MP4 needs imageio-ffmpeg: pip install imageio-ffmpeg") from e
    # H.264 in yuv420p with even, 16-aligned sizes is what every browser plays.
    with imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=7,
                            pixelformat="yuv420p", macro_block_size=16, ffmpeg_log_level="error") as w:
        for f in frames:
            w.append_data(f)


def make_video(run: str | Path, out: str | Path | None = None, episodes: int = 2, width: int = 480,
               height: int = 480, fps: float | None = None, gif: bool = False, max_steps: int | None = None,
               which: str = "latest", seed: int = 10_000, deterministic: bool = True,
               max_seconds: float | None = None) -> Video:
    """Render ``episodes`` episodes of the policy of ``run`` into ``out`` (default ``<run>/video.mp4``)."""
    run = Path(run)
    if not run.exists():
        raise ConfigError(f"{run} does not exist")
    if run.is_dir() and not (run / "config.yaml").is_file():
        raise ConfigError(f"{run} is not a robopg run: it has no config.yaml")
    if run.is_dir() and not (run / "checkpoints" / f"{which}.pt").is_file():
        raise ConfigError(f"{run} has no checkpoint checkpoints/{which}.pt to film (it never finished an "
                          f"iteration{'' if which == 'latest' else ' with a better return'})")
    if max_steps is not None and max_steps < 1:
        raise ConfigError(f"--max-steps: must be at least 1, got {max_steps}")
    if width % 2 or height % 2:
        raise ConfigError(f"--width/--height: video sizes must be even, got {width}x{height}")
    # The backend must be chosen before loading the policy, which makes an env (and imports mujoco).
    config_path = run / "config.yaml" if run.is_dir() else run.parent.parent / "config.yaml"
    env_id = Config.load(config_path).env_id if config_path.is_file() else ""
    if env_id and ":" not in env_id:
        if is_mujoco_env(env_id):
            find_gl_backend()
    else:  # no config, or a user's module (importing it may import mujoco): choose the backend first
        try:
            find_gl_backend()
        except RenderError:
            pass  # not needed unless the checkpoint turns out to be a MuJoCo robot's (then raised below)
    from ..api import load

    policy = load(run, which=which)
    env_id = policy.config.env_id
    if policy.config.policy_obs == "privileged":
        raise ConfigError(f"{run}: the policy reads the true physics factors (--policy-obs privileged); render "
                          f"its distilled policy (robopg train --distill-from {run})")
    frames, fps, returns = render_episodes(policy, env_id, episodes, width, height, fps, max_steps, seed,
                                           deterministic, max_seconds, policy.config.env_kwargs,
                                           policy.config.flatten_observations, policy.config.obs_history)
    default = run / ("video.gif" if gif else "video.mp4") if run.is_dir() else run.with_suffix(".mp4")
    path = Path(out) if out else default
    write_video(frames, path, fps, gif=gif or path.suffix.lower() == ".gif")
    h, w = frames[0].shape[:2]
    return Video(path, len(frames), fps, returns, w, h, frames[len(frames) // 2])
