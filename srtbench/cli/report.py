"""`srtbench card` and `srtbench report`: results published as model cards (JSON) and as a static site."""

from __future__ import annotations

from pathlib import Path

import click

from srtbench.cli.app import echo, main

PAPER = click.option("--paper/--no-paper", default=True, show_default=True,
                     help="set the paper's published numbers beside ours (where they are installed)")


def _paper(wanted: bool):
    """The paper's numbers (results/paper/), or None where not wanted or not installed."""
    from srtbench import tables

    return tables.reference_results("paper") if wanted and tables.PAPER_DIR.is_dir() else None


def _is_results(path: str) -> bool:
    return Path(path).is_dir() or Path(path).suffix.lower() == ".csv"


def _rows_of_checkpoints(checkpoints: list[str], results_paths: tuple[str, ...]):
    """The rows of each checkpoint, found by its SHA-256 among the results; none found is a one-line error."""
    from srtbench import results
    from srtbench.cards import checkpoint_rows
    from srtbench.errors import SrtbenchError
    from srtbench.evaluate.targets import sha256
    from srtbench.files import open_regular

    frame = results.collect(results_paths)
    found = []
    for path in checkpoints:
        with open_regular(path, "rb", "checkpoint"):  # a regular file (a FIFO would never end)
            digest = sha256(path)
        rows = checkpoint_rows(frame, [digest])
        if rows.empty:
            raise SrtbenchError(f"no results rows of {path} (SHA-256 {digest[:12]}...) in "
                                f"{', '.join(results_paths)}: evaluate it first, or name its results with --results")
        found.append(rows)
    return found


@main.command("card")
@click.argument("sources", nargs=-1, required=True, type=click.Path(), metavar="CKPT-or-RESULTS...")
@click.option("--results", "results_paths", multiple=True, type=click.Path(), default=("results",),
              show_default=True, help="where a checkpoint's rows are looked for (by its SHA-256); repeatable")
@click.option("--out", default="cards", show_default=True, type=click.Path(file_okay=False),
              help="folder for the cards, one JSON file each")
@PAPER
def card(sources, results_paths, out, paper):
    """Write model cards: one JSON file per model × dataset × threat.

    A card holds RobustBench's fields (name, source, architecture, training data, threat, budget, clean, AutoAttack
    and reported accuracy, passes, date) with every attack's accuracy and interval, the sanity flags, the srtbench
    version and git commit.  A source is a results CSV or folder, or a checkpoint whose rows are found by its SHA-256
    among --results."""
    import pandas as pd

    from srtbench import cards, results
    from srtbench.files import inside, unique_name
    from srtbench.runtime import atomic_path

    checkpoints = [s for s in sources if not _is_results(s)]
    named = [s for s in sources if _is_results(s)]
    frames = _rows_of_checkpoints(checkpoints, results_paths) if checkpoints else []
    frames += [results.collect(named)] if named else []
    built = cards.build_cards(pd.concat(frames, ignore_index=True).drop_duplicates(["source", *results.KEY]),
                              _paper(paper))
    taken: set[str] = set()
    for one in built:
        path = inside(out, Path(out) / unique_name(cards.card_filename(one), taken), "card")
        with atomic_path(path) as tmp:
            tmp.write_text(cards.to_json(one), encoding="utf-8")
        echo(f"wrote {path}")


@main.command("report")
@click.argument("results_paths", nargs=-1, required=True, type=click.Path(), metavar="RESULTS...")
@click.option("--out", default="site", show_default=True, type=click.Path(file_okay=False),
              help="folder for the site (new, empty, or one this command wrote before)")
@PAPER
def report(results_paths, out, paper):
    """Build a static site of results: leaderboards, a page per model, the paper's tables.

    From results CSVs (files or folders): a leaderboard per dataset × threat (sortable; clean, AutoAttack or the
    strongest attack, the per-example worst case, flags, mean ± std over seeds), a page per model (its card, every
    attack with its 95% interval, settings, cost, flags, budget and training curves) and the paper's tables beside
    ours.  It opens from disk (site/index.html) and fetches nothing."""
    from srtbench import results
    from srtbench.site import build_site

    written = build_site(results.collect(results_paths), out, _paper(paper))
    echo(f"wrote {len(written)} files to {out}; open {written[0]}")
