"""The site's vendored assets (its table sorter and stylesheet, inlined in every page) and the Content Security Policy
that lets exactly them run: a page opens from disk and fetches nothing, and no other script or style can run in it."""

from __future__ import annotations

import base64
import functools
import hashlib
from importlib import resources


@functools.cache
def asset(name: str) -> str:
    """The text of `srtbench/site/assets/NAME` (package data: in a wheel as in a checkout)."""
    return resources.files("srtbench.site").joinpath("assets", name).read_text(encoding="utf-8")


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def script() -> str:
    return asset("sort.js")


def style() -> str:
    return asset("style.css")


def policy() -> str:
    """Nothing loads (default-src 'none'); the one inline script and stylesheet run by their hashes; links between
    pages still work (navigation is no fetch).  A label that slipped through escaping could not run a script."""
    return (f"default-src 'none'; script-src {_digest(script())}; style-src {_digest(style())}; "
            "img-src data:; base-uri 'none'; form-action 'none'")
