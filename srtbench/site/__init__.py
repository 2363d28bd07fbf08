"""`srtbench report`: a static site of results (leaderboards, a page per model, the paper's tables beside ours) that
opens from disk, fetches nothing and runs only its own vendored sorter.

One concept a module: data (what the site shows, assembled from results rows and model cards), markup (escaped HTML
pieces and the page), charts (inline SVG), pages (the leaderboards and the paper's tables), model (a model's page),
assets (the vendored sorter and stylesheet and the Content Security Policy that admits only them), write (the folder).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from srtbench.site.data import Site, assemble
from srtbench.site.write import write


def build_site(frame: pd.DataFrame, out: str | Path, reference: pd.DataFrame | None = None) -> list[Path]:
    """The site of results rows (`results.collect`) written into `out`; `reference`: the paper's numbers."""
    return write(assemble(frame, reference), out)


__all__ = ["Site", "assemble", "build_site", "write"]
