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
import math
from collections.abc import Iterable
from typing import Any

from .config import Config, ConfigError, fields

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
        else:
            value = text
    except ValueError:
        raise ConfigError(f"{option(name)}: {text!r} is not a valid {typ}") from None
    if "choices" in f.metadata and value not in f.metadata["choices"]:
        raise ConfigError(f"{option(name)}: {text!r} is not one of {', '.join(f.metadata['choices'])}")
    return value


def _field(name: str) -> dataclasses.Field:
    for f in fields():
        if f.name == name:
            return f
    raise ConfigError(f"{option(name)}: no such option")


def _argparse_type(name: str, typ: str):
    parse = {"int": parse_int, "float": float, "str": str}[typ]

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
        elif typ == "list":
            parser.add_argument(option(f.name), nargs="+", type=_argparse_type(f.name, "int"), metavar="N", **kw)
        else:
            if "choices" in f.metadata:
                kw["choices"] = f.metadata["choices"]
            parser.add_argument(option(f.name), type=_argparse_type(f.name, typ), **kw)


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
        else:
            argv += [option(key), repr(v) if isinstance(v, float) else str(v)]
    return argv
