"""Per-env physics parameters of MuJoCo robots, as scale factors of the nominal model.

One spec serves both backends: a mapping from a parameter name to per-env factors, e.g.
``{"body_mass": np.full((num_envs, nbody), 1.2), "gravity": np.full(num_envs, 0.9)}``. Each value has
shape ``(num_envs,)`` (one factor per env, for every element of the field) or ``(num_envs, *shape)``
(``param_shapes(model)``: one factor per element). The factor multiplies the nominal model's value:

========================  ============================================================  ==================
name                      what it scales                                                per-env shape
========================  ============================================================  ==================
``body_mass``             ``body_mass`` and, by the same factor, ``body_inertia``        ``(nbody,)``
                          (a body of uniformly scaled density: its inertia stays
                          consistent with its mass)
``geom_friction``         ``geom_friction`` (sliding, torsional, rolling)                ``(ngeom, 3)``
``dof_damping``           ``dof_damping``                                                ``(nv,)``
``dof_armature``          ``dof_armature``                                               ``(nv,)``
``actuator_gear``         ``actuator_gear`` (the whole row: a motor's torque per unit    ``(nu,)``
                          of control, i.e. its gain)
``gravity``               ``opt.gravity``, component by component                        ``(3,)``
========================  ============================================================  ==================

Factors must be finite; those of mass are > 0, of friction, damping and armature >= 0 (gear and gravity
may flip sign). A factor of 1 is the nominal value, bit for bit, and so are the model's constants: after a
change to a field ``mj_setConst`` reads (mass, inertia, armature, gear, gravity) it is run, on an env's
own ``MjModel`` here and with ``mujoco.batch.Batch.set_const`` in the native backend, and on an unchanged
model it reproduces the compiled constants exactly. Both backends compute the new values with the same
float64 products (``nominal * factor``), so the same factors give the same trajectories to the bit.

``set_physics(venv, params, ids=None)`` / ``get_physics(venv)`` work on robopg's native vector env (which
has the same methods) and on a Gymnasium ``SyncVectorEnv`` of MuJoCo envs (editing each
``env.unwrapped.model``). The factors are part of the env state that checkpoints save.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import EnvError

PARAMS: tuple[str, ...] = ("body_mass", "geom_friction", "dof_damping", "dof_armature", "actuator_gear", "gravity")
# The MjModel fields each parameter scales ('opt.gravity' is model.opt.gravity).
FIELDS: dict[str, tuple[str, ...]] = {
    "body_mass": ("body_mass", "body_inertia"), "geom_friction": ("geom_friction",),
    "dof_damping": ("dof_damping",), "dof_armature": ("dof_armature",), "actuator_gear": ("actuator_gear",),
    "gravity": ("opt.gravity",),
}
# Parameters whose fields mj_setConst reads (MjModel._setconst_inputs, and MjOption fields).
SETCONST: frozenset[str] = frozenset({"body_mass", "dof_armature", "actuator_gear", "gravity"})
_LOWER = {"body_mass": ("> 0", lambda f: f > 0), "geom_friction": (">= 0", lambda f: f >= 0),
          "dof_damping": (">= 0", lambda f: f >= 0), "dof_armature": (">= 0", lambda f: f >= 0)}
# Where a Gymnasium env keeps its factors and nominal values (a picklable dict of arrays).
ATTR = "_robopg_physics"


def param_shapes(model) -> dict[str, tuple[int, ...]]:
    """Each parameter's per-env shape for ``model`` (an ``MjModel``)."""
    return {"body_mass": (model.nbody,), "geom_friction": (model.ngeom, 3), "dof_damping": (model.nv,),
            "dof_armature": (model.nv,), "actuator_gear": (model.nu,), "gravity": (3,)}


def read_field(model, field: str):
    """``model``'s field (a live array), named as in ``MjModel`` or as ``'opt.<name>'`` for an MjOption field."""
    return getattr(model.opt, field[4:]) if field.startswith("opt.") else getattr(model, field)


def nominal_fields(model) -> dict[str, np.ndarray]:
    """Copies of every field a parameter scales, from ``model`` as compiled."""
    return {field: read_field(model, field).copy() for fields in FIELDS.values() for field in fields}


def scaled(name: str, field: str, nominal: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """``field``'s values for factors of parameter ``name``: ``nominal`` has the field's own shape, ``factors``
    the parameter's full shape with any leading dims (envs). The one formula both backends use."""
    if field == "body_inertia":                       # (nbody, 3), by the body's mass factor
        return nominal * factors[..., None]
    if field == "actuator_gear":                      # (nu, 6), the whole row
        return nominal * factors[..., None]
    return nominal * factors


def check_params(params: Mapping[str, Any], model, num: int, what: str = "set_physics") -> dict[str, np.ndarray]:
    """Validated factors for ``num`` envs, each as a float64 array of shape ``(num, *param_shapes(model)[name])``.

    Raises ``EnvError`` naming the parameter for an unknown name, a wrong shape, a non-number, NaN or inf, or a
    factor below its bound (a negative mass or friction...), before anything is changed."""
    if not isinstance(params, Mapping):
        raise EnvError(f"{what}: physics parameters must be a dict of name -> per-env factors, got "
                       f"{type(params).__name__}")
    shapes = param_shapes(model)
    out = {}
    for name, value in params.items():
        if name not in shapes:
            raise EnvError(f"{what}: unknown physics parameter {name!r}; the parameters are {', '.join(PARAMS)}")
        try:
            arr = np.asarray(value)
        except Exception as e:
            raise EnvError(f"{what}: physics parameter {name!r} is not an array of numbers ({e})") from e
        if arr.dtype.kind not in "fiu":
            raise EnvError(f"{what}: physics parameter {name!r} must be numbers, got dtype {arr.dtype}")
        full = (num, *shapes[name])
        if arr.shape == (num,):
            arr = np.broadcast_to(arr.reshape((num,) + (1,) * len(shapes[name])), full)
        elif arr.shape != full:
            raise EnvError(f"{what}: physics parameter {name!r} must have shape ({num},) or {full} "
                           f"(envs, {'x'.join(map(str, shapes[name]))}), got {arr.shape}")
        arr = np.array(arr, dtype=np.float64)  # a copy, owned
        if not np.isfinite(arr).all():
            raise EnvError(f"{what}: physics parameter {name!r} has non-finite factors (NaN or inf)")
        if name in _LOWER:
            bound, ok = _LOWER[name]
            if not ok(arr).all():
                raise EnvError(f"{what}: physics parameter {name!r} has factors that are not {bound} (min "
                               f"{arr.min():g}); a {name.split('_')[-1]} factor must be {bound}")
        out[name] = arr
    return out


def check_ids(ids, num_envs: int, what: str = "set_physics") -> np.ndarray:
    if ids is None:
        return np.arange(num_envs)
    arr = np.asarray(ids)
    if arr.dtype == np.bool_:
        if arr.shape != (num_envs,):
            raise EnvError(f"{what}: a bool mask of envs must have shape ({num_envs},), got {arr.shape}")
        return np.flatnonzero(arr)
    if arr.ndim != 1 or arr.dtype.kind not in "iu" or (len(arr) and (arr.min() < 0 or arr.max() >= num_envs)) \
            or (len(arr) > 1 and not (np.diff(np.sort(arr)) > 0).all()):
        raise EnvError(f"{what}: ids must be distinct env indices in [0, {num_envs}), got {ids!r}")
    return arr


# --- one MjModel (a Gymnasium env's) -------------------------------------------------------------------

def _record(env) -> dict:
    """The env's factors and nominal fields, made on first use (while its model is still nominal)."""
    rec = env.__dict__.get(ATTR)
    if rec is None:
        model = env.model
        rec = {"nominal": nominal_fields(model),
               "factors": {name: np.ones(shape) for name, shape in param_shapes(model).items()}}
        env.__dict__[ATTR] = rec
    return rec


def apply_to_model(model, nominal: Mapping[str, np.ndarray], factors: Mapping[str, np.ndarray]) -> None:
    """Write ``nominal * factors`` (one env's factors, each of its parameter's shape) into ``model``'s fields,
    then run ``mj_setConst`` if a field it reads changed (on a scratch MjData: the env's own is untouched)."""
    import mujoco

    for name, f in factors.items():
        for field in FIELDS[name]:
            read_field(model, field)[...] = scaled(name, field, nominal[field], f)
    if SETCONST.intersection(factors):
        mujoco.mj_setConst(model, mujoco.MjData(model))


def set_env_physics(env, factors: Mapping[str, np.ndarray]) -> None:
    """Set one Gymnasium MuJoCo env's factors (validated, each of its parameter's per-env shape)."""
    base = env.unwrapped
    rec = _record(base)
    apply_to_model(base.model, rec["nominal"], factors)
    for name, f in factors.items():
        rec["factors"][name] = np.array(f, dtype=np.float64)


def get_env_physics(env) -> dict[str, np.ndarray] | None:
    """One Gymnasium env's factors (copies), or None if they were never set (nominal)."""
    rec = env.unwrapped.__dict__.get(ATTR)
    return None if rec is None else {k: v.copy() for k, v in rec["factors"].items()}


def restore_env_physics(env, factors: Mapping[str, np.ndarray] | None) -> None:
    """Give a Gymnasium env the factors ``get_env_physics`` returned (None: nominal), as saved in a checkpoint."""
    base = env.unwrapped
    if factors is None and base.__dict__.get(ATTR) is None:
        return  # nominal, never changed
    rec = _record(base)
    if factors is None:
        factors = {name: np.ones_like(f) for name, f in rec["factors"].items()}
    checked = check_params({k: np.asarray(v)[None] for k, v in factors.items()}, base.model, 1, "restore")
    set_env_physics(base, {k: v[0] for k, v in checked.items()})


# --- vector envs: robopg's native one, or a Gymnasium SyncVectorEnv -------------------------------------

def _sub_envs(venv) -> Sequence:
    envs = getattr(venv, "envs", None)
    if envs is None or not all(getattr(e.unwrapped, "model", None) is not None for e in envs):
        raise EnvError(f"physics parameters need robopg's native vector env or a Gymnasium SyncVectorEnv of "
                       f"MuJoCo envs, got {type(venv).__name__}")
    return envs


def set_physics(venv, params: Mapping[str, Any], ids=None) -> None:
    """Give envs ``ids`` (all by default; indices or a bool mask) the factors ``params`` (name -> ``(len(ids),)``
    or ``(len(ids), *shape)``). Parameters not named keep their factors. Takes effect from the next step;
    to compare backends, set them, then reset. Everything is checked before anything changes."""
    if hasattr(venv, "set_physics"):
        venv.set_physics(params, ids)
        return
    envs = _sub_envs(venv)
    ids = check_ids(ids, len(envs))
    checked = check_params(params, envs[0].unwrapped.model, len(ids))
    for row, i in enumerate(ids):
        set_env_physics(envs[i], {name: f[row] for name, f in checked.items()})


def get_physics(venv) -> dict[str, np.ndarray]:
    """Every env's factors for every parameter, ``name -> (num_envs, *shape)`` (ones where nominal)."""
    if hasattr(venv, "get_physics"):
        return venv.get_physics()
    envs = _sub_envs(venv)
    shapes = param_shapes(envs[0].unwrapped.model)
    out = {name: np.ones((len(envs), *shape)) for name, shape in shapes.items()}
    for i, env in enumerate(envs):
        for name, f in (get_env_physics(env) or {}).items():
            out[name][i] = f
    return out
