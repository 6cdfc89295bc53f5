"""Search spaces for ``robopg tune``: per update rule, the settings worth searching and their ranges; a YAML file
(``--space FILE``) changes, adds or drops any of them. Imports neither torch nor Optuna.

A space file is a mapping from train options (a run's config.yaml's keys) to what each trial does with it::

    lr: {low: 1e-4, high: 3e-3, log: true}   # a range: float, or int for integer options
    batch_size: [1024, 2048, 4096]           # choices
    hidden_sizes: [64x64, 128x128]
    entropy_coef: 0.0                         # fixed: every trial uses this value
    value_lr: null                            # not searched: the preset's (or the options') value
    defaults: false                           # optional: start from nothing, not the rule's default space
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .. import codec
from ..config import Config, ConfigError, names


@dataclass(frozen=True)
class Param:
    kind: str                     # "float", "int", "choice" or "fixed"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()           # Optuna's choices (lists such as hidden sizes written as text, "64x64")

    def suggest(self, name: str, trial) -> Any:
        """The value an Optuna trial picks for option ``name``, as the config holds it."""
        if self.kind == "float":
            return trial.suggest_float(name, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        if self.kind == "fixed":
            return self.choices[0]
        value = trial.suggest_categorical(name, self.choices)
        return codec.parse_value(name, value) if _is_list(name) else value

    def to_dict(self) -> dict[str, Any]:
        if self.kind in ("float", "int"):
            return {"low": self.low, "high": self.high, "log": self.log}
        return {"choices": list(self.choices)} if self.kind == "choice" else {"fixed": self.choices[0]}


def _needs_value(c: Config) -> bool:
    return c.baseline == "value"


# Per update rule (``algorithms.ALGORITHMS``' keys): the option, its range, and when it applies to a config.
SPACES: dict[str, dict[str, tuple[Param, Any]]] = {
    "pg": {
        "lr": (Param("float", 1e-4, 1e-2, log=True), None),
        "value_lr": (Param("float", 1e-4, 1e-2, log=True), _needs_value),
        "batch_size": (Param("choice", choices=(512, 1024, 2048, 4096)), None),
        "gamma": (Param("choice", choices=(0.97, 0.98, 0.99, 0.995)), None),
        "lam": (Param("choice", choices=(0.9, 0.95, 0.98, 1.0)), lambda c: c.estimator == "gae"),
        "lr_schedule": (Param("choice", choices=("constant", "linear")), None),
        "normalize_rewards": (Param("choice", choices=(False, True)), None),
        "init_log_std": (Param("float", -1.6, 0.0), lambda c: True),
        "hidden_sizes": (Param("choice", choices=("64x64", "128x128")), None),
    },
}
TUNABLE = set(names("setting", "arm", "runtime"))


def _field(name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(Config) if f.name == name)


def default_space(base: Config) -> dict[str, Param]:
    """The default space of ``base``'s update rule, less what does not apply to it (lam without GAE...)."""
    rule = getattr(base, "algorithm", "pg")
    if rule not in SPACES:
        raise ConfigError(f"--space: robopg has no default search space for the update rule {rule!r}; give one "
                          "with --space FILE.yaml (see docs/tuning.md)")
    return {name: p for name, (p, applies) in SPACES[rule].items() if applies is None or applies(base)}


def load_space(path: str | Path, base: Config) -> dict[str, Param]:
    """The default space, changed by the file at ``path`` (see the module's docstring)."""
    if not Path(path).is_file():
        raise ConfigError(f"--space: no such file {path}")
    try:
        data = codec.load_yaml(Path(path).read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError(f"--space: {path} is not valid YAML: {getattr(e, 'problem', None) or e}"
                          + (f" at line {mark.line + 1}" if mark is not None else "")) from None
    if not isinstance(data, dict):
        raise ConfigError(f"--space: {path} must hold a mapping of option: range, choices or value")
    space = default_space(base) if data.pop("defaults", True) is not False else {}
    for name, spec in data.items():
        if name not in TUNABLE:
            raise ConfigError(f"--space: {name!r} in {path} is not an option a trial can set")
        if spec is None:
            space.pop(name, None)
            continue
        try:
            space[name] = parse_param(name, spec)
        except ConfigError as e:
            raise ConfigError(f"--space: {name} in {path}: {str(e).partition(': ')[2] or e}") from None
    return space


def parse_param(name: str, spec: Any) -> Param:
    """One entry of a space file (or of a stored study): a range, choices, or a fixed value."""
    if isinstance(spec, dict) and "fixed" in spec:
        return Param("fixed", choices=(codec.check_value(name, spec["fixed"]),))
    if isinstance(spec, dict) and "choices" in spec:
        spec = spec["choices"]
    if isinstance(spec, dict):
        unknown = set(spec) - {"low", "high", "log"}
        if unknown or "low" not in spec or "high" not in spec:
            raise ConfigError(f"{codec.option(name)}: a range is {{low: L, high: H, log: true|false}}, got {spec}")
        kind = codec.field_type(_field(name))
        if kind not in ("int", "float"):
            raise ConfigError(f"{codec.option(name)}: a range needs a number option; give a list of choices")
        low, high = codec.check_value(name, spec["low"]), codec.check_value(name, spec["high"])
        if not low < high or spec.get("log") and low <= 0:
            raise ConfigError(f"{codec.option(name)}: need low < high (and low > 0 with log), got {low}, {high}")
        return Param(kind, low, high, bool(spec.get("log", False)))
    # A list is choices, except for a list option (hidden_sizes: [64, 64] is one value; [64x64, 128x128] two).
    if isinstance(spec, list) and (not _is_list(name) or spec and all(isinstance(s, (list, str)) for s in spec)):
        if not spec:
            raise ConfigError(f"{codec.option(name)}: give at least one choice")
        values = [codec.check_value(name, v) for v in spec]
        # Optuna's choices are numbers, text or booleans: a list value travels as text, 64x64.
        return Param("choice", choices=tuple("x".join(map(str, v)) if isinstance(v, list) else v for v in values))
    return Param("fixed", choices=(codec.check_value(name, spec),))


def starting_point(space: dict[str, Param], base: Config) -> dict[str, Any]:
    """``base``'s values of the searched settings that lie inside the space, as Optuna holds them: the first
    trial of a study runs them, so the preset is among the trials and the study can only improve on it."""
    point = {}
    for name, p in space.items():
        value = getattr(base, name)
        value = "x".join(map(str, value)) if _is_list(name) else value
        if p.kind in ("float", "int") and p.low <= value <= p.high or p.kind == "choice" and value in p.choices:
            point[name] = value
    return point


def _is_list(name: str) -> bool:
    return codec.field_type(_field(name)) == "list"


def fit_to(space: dict[str, Param], base: Config) -> dict[str, Param]:
    """``space`` without the choices that cannot work with ``base`` (e.g. batch sizes above the step budget, when
    others fit); ConfigError if the first trial's config, every parameter at its first value, cannot work."""
    fitted = {}
    for name, p in space.items():
        works = tuple(v for v in p.choices if _works(dataclasses.replace(base, **{name: _value(name, v)})))
        fitted[name] = dataclasses.replace(p, choices=works) if p.kind == "choice" and works else p
    first = {name: _value(name, p.low if p.kind in ("float", "int") else p.choices[0]) for name, p in fitted.items()}
    try:
        dataclasses.replace(base, **first).validate()
    except ConfigError as e:
        raise ConfigError(f"--space: the trials cannot run with these options: {e}") from None
    return fitted


def _value(name: str, value: Any) -> Any:
    return codec.parse_value(name, value) if isinstance(value, str) and _is_list(name) else value


def _works(config: Config) -> bool:
    try:
        config.validate()
        return True
    except ConfigError:
        return False


def space_to_dict(space: dict[str, Param]) -> dict[str, dict]:
    return {name: p.to_dict() for name, p in space.items()}


def space_from_dict(data: dict[str, dict]) -> dict[str, Param]:
    return {name: parse_param(name, spec) for name, spec in data.items()}
