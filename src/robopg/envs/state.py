"""Exact environment state, for resume: capture and restore every sub-env of a vector env so that the next
step is bit-identical to an uninterrupted run's."""

from __future__ import annotations

import pickle
from typing import Any

import gymnasium as gym
import numpy as np

from ..errors import EnvError
from ..physics import get_env_physics, restore_env_physics
from .guard import EnvGuard

# --- exact state, for resume --------------------------------------------------------------------------
# Gymnasium's MuJoCo envs pickle by re-creating themselves from their arguments (EzPickle), so the physics
# state is lost. We save, per sub-env: the wrappers' counters, the env's RNG, and for MuJoCo the full
# integration state (mj_getState: qpos, qvel, act, warm-start accelerations...), which makes the next
# mj_step bit-identical. Other envs (CartPole...) are plain Python objects: their __dict__ is pickled.

def _wrapper_chain(env: gym.Env) -> list[gym.Env]:
    """The env's wrappers, outermost first, then the env itself; robopg's EnvGuard, which holds no state a
    resumed run needs, is left out (so runs saved before it existed resume too)."""
    chain = [env]
    while isinstance(chain[-1], gym.Wrapper):
        chain.append(chain[-1].env)
    return [e for e in chain if not isinstance(e, EnvGuard)]


# MjData fields an env may read before its next mj_step. After mj_step they hold what was computed one substep
# behind the state (and mj_rnePostConstraint's forces, which Gymnasium computes after each step), not what
# mj_forward computes from the state: Ant's forward reward starts from data.body(...).xpos, Humanoid's from
# the centre of mass of data.xipos. A restore sets them back, so that resuming gives the same numbers.
MUJOCO_DERIVED = ("xpos", "xquat", "xmat", "xipos", "ximat", "geom_xpos", "geom_xmat", "site_xpos", "site_xmat",
                  "subtree_com", "cinert", "cdof", "cvel", "cacc", "cfrc_int", "cfrc_ext", "qfrc_constraint",
                  "actuator_force", "sensordata")


def get_env_state(env: gym.Env) -> bytes:
    chain = _wrapper_chain(env)
    wrappers = [{k: v for k, v in w.__dict__.items() if k != "env" and _picklable(v)}
                for w in chain[:-1]]
    base = chain[-1]
    state: dict[str, Any] = {"wrappers": wrappers, "np_random": base.np_random.bit_generator.state}
    model = getattr(base, "model", None)
    data = getattr(base, "data", None)
    if model is not None and data is not None and type(data).__name__ == "MjData":
        import mujoco
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        buf = np.empty(mujoco.mj_stateSize(model, spec))
        mujoco.mj_getState(model, data, buf, spec)
        state["mujoco"] = buf
        state["derived"] = {name: getattr(data, name).copy() for name in MUJOCO_DERIVED}
        state["attrs"] = {k: v for k, v in base.__dict__.items()
                          if k not in ("model", "data", "mujoco_renderer", "_np_random") and _picklable(v)}
        state["physics"] = get_env_physics(base)  # per-env physics factors (robopg.physics), None if nominal
    else:
        state["attrs"] = {k: v for k, v in base.__dict__.items() if k != "_np_random" and _picklable(v)}
    return pickle.dumps(state)


def set_env_state(env: gym.Env, blob: bytes) -> None:
    state = pickle.loads(blob)
    chain = _wrapper_chain(env)
    if len(chain) - 1 != len(state["wrappers"]):
        raise EnvError("saved environment state does not match this environment's wrappers")
    for w, saved in zip(chain[:-1], state["wrappers"]):
        w.__dict__.update(saved)
    base = chain[-1]
    base.__dict__.update(state["attrs"])
    base.np_random.bit_generator.state = state["np_random"]
    if "mujoco" in state:
        import mujoco

        restore_env_physics(base, state.get("physics"))  # before mj_forward, which uses the model
        mujoco.mj_setState(base.model, base.data, state["mujoco"], mujoco.mjtState.mjSTATE_INTEGRATION)
        mujoco.mj_forward(base.model, base.data)
        for name, value in state.get("derived", {}).items():  # after mj_forward, which recomputes them
            getattr(base.data, name)[...] = value


def _picklable(v: Any) -> bool:
    try:
        pickle.dumps(v)
        return True
    except Exception:
        return False


def get_vector_state(venv: gym.vector.VectorEnv) -> list[bytes] | bytes | None:
    """Per-sub-env state of a SyncVectorEnv (or the whole state of a vector env that offers
    ``get_state()``, as the native backend does); None for sub-envs living in other processes."""
    if hasattr(venv, "get_state"):
        return venv.get_state()
    envs = getattr(venv, "envs", None)
    if envs is None:
        return None
    return [get_env_state(e) for e in envs]


def set_vector_state(venv: gym.vector.VectorEnv, states: list[bytes] | bytes) -> None:
    if hasattr(venv, "set_state"):
        venv.set_state(states)
        return
    envs = getattr(venv, "envs", None)
    if envs is None or len(envs) != len(states):
        raise EnvError("saved environment states do not match this vector env")
    for e, s in zip(envs, states):
        set_env_state(e, s)
