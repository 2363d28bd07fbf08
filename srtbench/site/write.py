"""Writing the site: every page and card into one folder, each file atomically, every name a safe one inside it, and
only the files an earlier build of the same folder wrote removed (its list is kept in `.srtbench-site`)."""

from __future__ import annotations

import re
from pathlib import Path

from srtbench.cards import to_json
from srtbench.errors import SrtbenchError
from srtbench.files import inside, open_regular
from srtbench.runtime import atomic_path
from srtbench.site.data import Site
from srtbench.site.model import model_page
from srtbench.site.pages import index, paper

MARKER = ".srtbench-site"  # the files the last build wrote, one a line
CARDS = "cards"
OURS = re.compile(rf"(index|paper)\.html|models/[A-Za-z0-9._+-]+\.html|{CARDS}/[A-Za-z0-9._+-]+\.json")


def pages(site: Site) -> dict[str, str]:
    """Every file of the site: its path inside the site's folder, and its text."""
    files = {"index.html": index(site), "paper.html": paper(site)}
    for model in site.models:
        files[model.page] = model_page(model, CARDS)
        files.update({f"{CARDS}/{name}": to_json(card) for card, name in zip(model.cards, model.card_files)})
    return files


def _previous(out: Path) -> set[str]:
    """What an earlier build wrote into `out`; a folder holding anything else is refused, so that a mistyped --out
    never mixes the site into, or removes files from, another folder."""
    if out.exists() and not out.is_dir():
        raise SrtbenchError(f"--out {out} is a file; name a folder for the site")
    if not out.is_dir() or not any(out.iterdir()):
        return set()
    if not (out / MARKER).is_file():
        raise SrtbenchError(f"--out {out} holds files that srtbench report did not write; name a new or empty folder")
    with open_regular(out / MARKER, "r", "site list") as handle:
        return {line.strip() for line in handle if OURS.fullmatch(line.strip())}


def _write(path: Path, content: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(content, encoding="utf-8")


def write(site: Site, out: str | Path) -> list[Path]:
    """Write the site into `out` (made if absent); returns the files written, index.html first."""
    out = Path(out)
    previous = _previous(out)
    files = pages(site)
    out.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        assert OURS.fullmatch(rel), rel  # names are made of safe_name parts: nothing else is ever written
        _write(inside(out, out / rel, "site file"), content)
    for rel in sorted(previous - set(files)):  # pages of models no longer in the results
        stale = out / rel
        if stale.is_file() and not stale.is_symlink():
            inside(out, stale, "site file").unlink()
    _write(out / MARKER, "".join(f"{rel}\n" for rel in sorted(files)))
    return [out / rel for rel in files]
