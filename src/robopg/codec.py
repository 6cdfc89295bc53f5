"""The config codec: ``Config``'s fields as command-line options, option values parsed, and a config's
values turned back into ``robopg train`` arguments. Every command that takes config options uses it.

Why our own and not tyro (which does typed dataclass CLIs well): a robopg option's default is "whatever the
env's preset says", so every option must parse to "not given" (None) when absent; commands take subsets of
the fields with their own defaults (``variance``'s gamma is 1); ``sweep --grid`` parses values of any field
from text; and a sweep turns configs back into argv for its child processes. Each is a few lines on argparse
over the field metadata, and none is what tyro is built for; it would also add an import to every start-up.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from .config import CHECKS, Config, ConfigError, fields

_DEFAULTS = Config()


def option(name: str) -> str:
    """The command-line spelling of a field: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def field_type(f: dataclasses.Field) -> str:
    return f.type if isinstance(f.type, str) else f.type.__name__


def parse_int(text: str) -> int:
    """An integer, also written as ``1e6`` or ``1_000_000`` (step budgets are written so), if integral."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    value = float(text)  # raises ValueError for text that is no number
    if not math.isfinite(value) or value != int(value):
        raise ValueError(f"{text!r} is not an integer")
    return int(value)


def parse_seed(text: str) -> int:
    """A seed: an integer in [0, 2**32 - 1], the range numpy's and torch's generators take."""
    value = parse_int(text)
    if not 0 <= value < 2 ** 32:
        raise ValueError(f"{text!r} is not in [0, 2**32 - 1]")
    return value


def parse_bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise ValueError(f"{text!r} is not true or false")


def parse_value(name: str, text: str) -> Any:
    """The value of field ``name`` written as one piece of text (lists as ``64x64``); ConfigError if invalid."""
    f = _field(name)
    typ = field_type(f)
    try:
        if typ == "int":
            value: Any = parse_int(text)
        elif typ == "float":
            value = float(text)
        elif typ == "bool":
            value = parse_bool(text)
        elif typ == "list":
            value = [parse_int(x) for x in text.replace(",", "x").split("x")]
        elif typ == "dict":
            value = dict(parse_pair(item) for item in text.split())
        else:
            value = text
    except ValueError:
        raise ConfigError(f"{option(name)}: {text!r} is not a valid {typ}") from None
    if "choices" in f.metadata and value not in f.metadata["choices"]:
        raise ConfigError(f"{option(name)}: {text!r} is not one of {', '.join(f.metadata['choices'])}")
    return value


# --- YAML values: --env-kwargs items and config files ---------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where ``3e-4`` and ``1e6`` are strings (a float needs a dot); YAML 1.2, and
    everyone writing a learning rate, reads them as numbers."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def load_yaml(text: str) -> Any:
    """A YAML document, numbers read by YAML 1.2's rules (``lr: 3e-4`` is a float); yaml.YAMLError if invalid."""
    return yaml.load(text, Loader=_Loader)


def yaml_value(text: str) -> Any:
    """One value written as YAML (``2`` -> 2, ``0.5`` -> 0.5, ``true``, ``3e-4``, ``[1, 2]``, text -> text); a
    value with a comma outside brackets and quotes is a list: ``0.5,0.1`` -> [0.5, 0.1]."""
    stripped = text.strip()
    if "," in stripped and stripped[:1] not in "[{'\"":
        stripped = f"[{stripped}]"
    try:
        return yaml.load(stripped, Loader=_Loader) if stripped else ""
    except yaml.YAMLError as e:
        raise ValueError(f"{text!r} is not a YAML value ({str(e).splitlines()[0]})") from None


def yaml_text(value: Any) -> str:
    """The inverse of ``yaml_value``: text that reads back as ``value``."""
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf).strip().removesuffix("...").strip()
    if isinstance(value, str) and "," in text and text[:1] not in "'\"":
        text = "'" + value.replace("'", "''") + "'"  # else it would read back as a list
    return text


def parse_pair(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> (KEY, the YAML value of VALUE)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise ValueError(f"{text!r} is not KEY=VALUE (KEY a Python name)")
    return key, yaml_value(value)


def _field(name: str) -> dataclasses.Field:
    for f in fields():
        if f.name == name:
            return f
    raise ConfigError(f"{option(name)}: no such option")


def _argparse_type(name: str, typ: str):
    parse = {"int": parse_int, "float": float, "str": str, "seed": parse_seed}[typ]

    def convert(text: str):
        try:
            return parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {typ} value: {text!r}") from None

    convert.__name__ = typ  # argparse names the type in its messages
    return convert


def add_options(parser, names: Iterable[str] | None = None, skip: Iterable[str] = (),
                defaults: dict[str, Any] | None = None, help_suffix: str = "unless the env's preset sets it") -> None:
    """Add Config's fields (all, or ``names``, minus ``skip``) to ``parser`` (or an argument group).

    Without ``defaults`` an option absent from the command line parses to None: the preset (or Config's
    default) decides. ``defaults`` gives a command its own default for some fields.
    """
    skip, defaults = set(skip), defaults or {}
    wanted = [f for f in fields() if (names is None or f.name in names) and f.name not in skip
              and not f.metadata.get("positional")]
    for f in wanted:
        typ = field_type(f)
        own = f.name in defaults
        default = defaults[f.name] if own else getattr(_DEFAULTS, f.name)
        text = f"{f.metadata['help']} (default: {default!r}{'' if own else ', ' + help_suffix})"
        kw: dict = {"dest": f.name, "default": default if own else None, "help": text}
        if typ == "bool":
            parser.add_argument(option(f.name), action=argparse.BooleanOptionalAction, **kw)
        elif typ == "dict":
            parser.add_argument(option(f.name), nargs="+", action=_PairsAction, metavar="KEY=VALUE", **kw)
        elif typ == "list":
            parser.add_argument(option(f.name), nargs="+", type=_argparse_type(f.name, "int"), metavar="N", **kw)
        else:
            if "choices" in f.metadata:
                kw["choices"] = f.metadata["choices"]
            parser.add_argument(option(f.name), type=_argparse_type(f.name, typ), **kw)


class _PairsAction(argparse.Action):
    """``--env-kwargs a=1 b=x`` -> {"a": 1, "b": "x"}; given twice, the second adds to the first."""

    def __call__(self, parser, namespace, values, option_string=None):
        pairs = dict(getattr(namespace, self.dest, None) or {})
        for item in values:
            try:
                key, value = parse_pair(item)
            except ValueError as e:
                raise argparse.ArgumentError(self, str(e)) from None
            pairs[key] = value
        setattr(namespace, self.dest, pairs)


def given(args: argparse.Namespace, skip: Iterable[str] = ()) -> dict[str, Any]:
    """The config values given on the command line (options left out parse to None and are dropped)."""
    skip = set(skip)
    return {f.name: getattr(args, f.name) for f in fields()
            if f.name not in skip and getattr(args, f.name, None) is not None}


def to_argv(values: dict[str, Any]) -> list[str]:
    """Config values as ``robopg train`` options: the inverse of ``add_options`` + ``given``."""
    argv: list[str] = []
    for key, v in values.items():
        if v is None:  # an algorithm option left to the algorithm's default: not given
            continue
        if isinstance(v, bool):
            argv.append(option(key) if v else "--no-" + key.replace("_", "-"))
        elif isinstance(v, list):
            argv += [option(key), *map(str, v)]
        elif isinstance(v, dict):
            argv += [option(key), *(f"{k}={yaml_text(x)}" for k, x in v.items())] if v else []
        else:
            argv += [option(key), repr(v) if isinstance(v, float) else str(v)]
    return argv


# An argparse type for seeds outside Config (eval's and video's episode seeds): "invalid seed value: '-1'".
SEED = _argparse_type("seed", "seed")


# --- config files -----------------------------------------------------------------------------------------------
def load_config_file(path: str | Path) -> dict[str, Any]:
    """The options a YAML config file sets (``robopg train --config``): the schema of a run's config.yaml, any
    subset of its keys. Each value is checked against its field here, so an error names the key and the file."""
    path = Path(path)
    try:
        data = load_yaml(path.read_text())
    except OSError as e:
        raise ConfigError(f"--config: cannot read {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"--config: {path} is not valid YAML: {getattr(e, 'problem', None) or e}{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config: {path} must hold a mapping of option: value, not {type(data).__name__}")
    known = {f.name: f for f in fields()}
    values = {}
    for key, value in data.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f"did you mean {close[0]}?" if close else "the keys are those of a run's config.yaml"
            raise ConfigError(f"--config: unknown key {key!r} in {path} ({hint})")
        why = _typed(known[key], value)
        if isinstance(why, str):
            raise ConfigError(f"--config: {key} in {path}: {why}")
        values[key] = why[0]
    return values


def check_value(name: str, value: Any) -> Any:
    """``value`` as field ``name`` holds it (YAML's 2 for a float field -> 2.0, "64x64" -> [64, 64]); ConfigError
    naming the option if it has the wrong type, is not a choice or fails its check."""
    why = _typed(_field(name), value)
    if isinstance(why, str):
        raise ConfigError(f"{option(name)}: {why}")
    return why[0]


def _typed(f: dataclasses.Field, value: Any) -> tuple[Any] | str:
    """(value as field ``f`` holds it,), or why it cannot be: wrong type, not a choice, or failing its check."""
    typ = field_type(f)
    if value is None and f.default is None:
        return (None,)  # "not given": the algorithm's own default (a run's config.yaml holds these as null)
    if isinstance(value, str) and typ in ("int", "float", "bool", "list"):
        try:
            value = parse_value(f.name, value)  # text the YAML 1.2 rules did not catch, e.g. 64x64
        except ConfigError as e:
            return str(e).partition(": ")[2]
    ok = {"int": lambda v: isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer(),
          "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          "bool": lambda v: isinstance(v, bool), "str": lambda v: isinstance(v, str),
          "list": lambda v: isinstance(v, list), "dict": lambda v: isinstance(v, dict)}[typ]
    if not ok(value):
        return f"expected {_KINDS[typ]}, got {value!r}"
    value = int(value) if typ == "int" else float(value) if typ == "float" else value
    if "choices" in f.metadata and value not in f.metadata["choices"]:
        return f"{value!r} is not one of {', '.join(f.metadata['choices'])}"
    why = CHECKS[f.metadata["check"]](value) if "check" in f.metadata else None
    return why if why else (value,)


_KINDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "text",
          "list": "a list of integers", "dict": "a mapping of name: value"}
