"""Configs are dataclasses declared once; the CLI's options are generated from them.

A field's `metadata` may hold `help`, `choices` and `flag` (the option name when it differs from the
field name).  `click_options(Cls)` adds one option per field; `from_options(Cls, kwargs)` builds the
dataclass back from the parsed values, so a hyperparameter is spelled out in exactly one place.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from srtbench.errors import SrtbenchError

C = TypeVar("C")


def field(default: Any, help: str, choices: Iterable[str] | Callable[[], Iterable[str]] | None = None,
          flag: str | None = None):
    """A config field: its help text, its choices (a tuple, or a registry's `names` to read them when asked, so a
    name registered later, a test's model say, is a choice too) and its flag when it differs from the name."""
    meta = {"help": help}
    if choices is not None:
        meta["choices"] = choices if callable(choices) else tuple(choices)
    if flag is not None:
        meta["flag"] = flag
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(inner type, optional?) of an annotation such as `int | None`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def choices_of(f: dataclasses.Field) -> tuple[str, ...] | None:
    """A field's choices as they stand now (None where it has none)."""
    choices = f.metadata.get("choices")
    return None if choices is None else tuple(choices() if callable(choices) else choices)


def option_name(f: dataclasses.Field) -> str:
    return f.metadata.get("flag", f.name.replace("_", "-"))


def click_options(cls: type, exclude: Iterable[str] = (), prefix: str = "") -> Callable:
    """Decorator adding a click option per dataclass field (defaults shown in --help)."""
    hints = typing.get_type_hints(cls)
    skip = set(exclude)

    def deco(fn: Callable) -> Callable:
        for f in reversed(dataclasses.fields(cls)):
            if f.name in skip or not f.init:
                continue
            tp, optional = _base_type(hints[f.name])
            name = prefix + option_name(f)
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            helptext = f.metadata.get("help", "")
            kw: dict[str, Any] = {"help": helptext, "show_default": True, "default": default}
            if "choices" in f.metadata:
                kw["type"] = click.Choice(choices_of(f))
            elif tp is bool:
                fn = click.option(f"--{name}/--no-{name}", f.name, **kw)(fn)
                continue
            elif tp in (int, float, str):
                kw["type"] = tp
            elif typing.get_origin(tp) in (tuple, list):
                inner = typing.get_args(tp)[0]
                kw["type"] = _CommaList(inner)
                kw["default"] = ",".join(str(v) for v in default) if default else None
            if optional and default is None:
                kw["show_default"] = False
            # the parameter is stored under the field's name, whatever the flag is (`lam` for --lambda)
            fn = click.option(f"--{name}", f.name, **kw)(fn)
        return fn

    return deco


class _CommaList(click.ParamType):
    name = "LIST"

    def __init__(self, inner: type):
        self.inner = inner

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            return tuple(value)
        try:
            return tuple(self.inner(v) for v in str(value).split(",") if v.strip())
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of {self.inner.__name__}", param, ctx)


def from_options(cls: type[C], options: dict[str, Any], **overrides: Any) -> C:
    """Build `cls` from parsed CLI options (unknown keys ignored), then apply overrides."""
    names = {f.name for f in dataclasses.fields(cls)}
    kw = {k: v for k, v in options.items() if k in names and v is not None}
    kw.update(overrides)
    try:
        return cls(**kw)
    except (TypeError, ValueError) as err:
        raise SrtbenchError(str(err)) from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain data (for checkpoints and CSV rows): tuples become lists, nested dataclasses dicts."""
    return dataclasses.asdict(cfg)


def _fits(value: Any, tp: Any) -> bool:
    """Whether `value` is a `tp` as a config means it: a whole number for int (not a bool), a finite number for
    float, a tuple or list of such for tuple[...]."""
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if tp is str:
        return isinstance(value, str)
    if typing.get_origin(tp) in (tuple, list):
        inner = typing.get_args(tp)[0]
        return isinstance(value, (tuple, list)) and all(_fits(v, inner) for v in value)
    return True  # other annotations hold what their own checks allow


def validate(cfg: Any) -> None:
    """Every field of the dataclass `cfg` holds a value of its declared type (finite numbers only: a NaN or an
    infinite learning rate, λ or budget never reaches a run) and one of its choices where it has them; a config
    read from a file (a sweep, a checkpoint) is checked the same way as one from the command line."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        tp, optional = _base_type(hints[f.name])
        if value is None and optional:
            continue
        flag = f"--{option_name(f)}"
        kind = {int: "a whole number", float: "a finite number", bool: "true or false", str: "text"}.get(
            tp, f"a list of {typing.get_args(tp)[0].__name__}" if typing.get_origin(tp) in (tuple, list) else "")
        require(_fits(value, tp), f"{flag} must be {kind}, got {value!r}")
        choices = choices_of(f)
        if choices is not None:
            require(value in choices, f"{flag} must be one of {', '.join(choices)}, got {value!r}")


def require(condition: bool, message: str) -> None:
    """Config validation: a failed check is a one-line SrtbenchError."""
    if not condition:
        raise SrtbenchError(message)
