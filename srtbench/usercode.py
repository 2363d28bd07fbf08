"""Code a user names on the command line as `module:function` (`--model`, `--preprocess`, `attack[bpda=...]`):
imported from the current folder too, as under `python -m`, every failure one line.  A data file never names code
(a sweep file needs `--allow-code`)."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable

from srtbench.errors import SrtbenchError, describe


def import_callable(spec: str, option: str) -> Callable:
    """The callable `module:function` names; `option` (e.g. `--model mypkg.nets:build`) heads any error."""
    module_name, _, fn_name = spec.partition(":")
    if not module_name or not fn_name:
        raise SrtbenchError(f"{option}: write module:function")
    if "" not in sys.path and os.getcwd() not in sys.path:  # the `srtbench` script's sys.path lacks the current folder
        sys.path.insert(0, os.getcwd())
    try:
        found = getattr(importlib.import_module(module_name), fn_name)
    except Exception as err:  # noqa: BLE001 - importing user code may raise anything (SyntaxError included)
        raise SrtbenchError(f"{option}: cannot import ({describe(err, 160)})") from None
    if not callable(found):
        raise SrtbenchError(f"{option}: {fn_name} is not callable ({type(found).__name__})")
    return found
