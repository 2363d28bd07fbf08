"""Configs are dataclasses declared once; the CLI's options are generated from them.

A field's `metadata` may hold `help`, `choices` and `flag` (the option name when it differs from the
field name).  `click_options(Cls)` adds one option per field; `from_options(Cls, kwargs)` builds the
dataclass back from the parsed values, so a hyperparameter is spelled out in exactly one place.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from srtbench.errors import SrtbenchError

C = TypeVar("C")


def field(default: Any, help: str, choices: Iterable[str] | None = None, flag: str | None = None):
    meta = {"help": help}
    if choices is not None:
        meta["choices"] = tuple(choices)
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
                kw["type"] = click.Choice(f.metadata["choices"])
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


def require(condition: bool, message: str) -> None:
    """Config validation: a failed check is a one-line SrtbenchError."""
    if not condition:
        raise SrtbenchError(message)
