"""`srtbench table`: results CSVs as the paper's tables (or any pivot), optionally beside the paper's numbers."""

from __future__ import annotations

import click

from srtbench.cli.app import main


@main.command("table")
@click.argument("results", nargs=-1, required=True, type=click.Path())
@click.option("--layout", default="auto", show_default=True,
              help="table1..table6, table8, table9 (the paper's rows and columns), auto (whatever the CSVs hold) or "
              "threats (per model the worst case under each threat group, headed by its budget; their mean and min)")
@click.option("--format", "fmt", default="markdown", show_default=True,
              help="markdown, latex, csv, rich or html (a <table> for a page)")
@click.option("--compare", default=None, metavar="paper|PATH",
              help="show each cell as ours / reference (difference); 'paper' = the published numbers")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="also write the table to this file")
@click.option("--show", type=click.Choice(("accuracy", "flags", "cost")), default="accuracy", show_default=True,
              help="accuracy: the layout's table; flags: every row's sanity flags; cost: every row's forward and "
              "backward passes per example, wall time and peak memory")
@click.option("--flags", "show_flags", is_flag=True, help="the same as --show flags")
@click.option("--attacks", default=None, help="comma-separated attacks to show as columns (default: the layout's)")
@click.option("--title", default=None, help="the table's title (default: the layout's)")
@click.option("--per-seed", is_flag=True, help="a row per training seed (default: runs that differ only in their "
              "seed are one row, mean ± standard deviation)")
@click.option("--versus", default=None, metavar="LABEL",
              help="test every other row against this one (e.g. SRT), per attack column: notes under the table give "
              "the exact McNemar p per training seed (same test images only) and Welch's p over the seeds")
def table(results, layout, fmt, compare, out, show, show_flags, attacks, title, per_seed, versus):
    """Pivot results CSVs (files or folders) into a table; best value per column in bold, '–' where missing."""
    from srtbench import results as results_csv
    from srtbench import tables
    from srtbench.config import require
    from srtbench.runtime import atomic_write_text

    if out:
        from srtbench.runtime import check_writable

        check_writable(out, "a text file (e.g. results/table.md)")
    chosen = tables.LAYOUTS.get(layout)
    changes = {"title": title} if title else {}
    if attacks:
        changes["attacks"] = tuple(a.strip() for a in attacks.split(",") if a.strip())
    if changes:
        import dataclasses

        chosen = dataclasses.replace(chosen, **changes)
    renderer = tables.FORMATS.get(fmt)
    require(compare is None or chosen.paper is not None or compare != "paper",
            "--compare paper needs one of the paper's layouts (--layout table1 ... table9)")
    reference = tables.reference_results(compare) if compare else None
    frame = results_csv.collect(results)
    show = "flags" if show_flags else show
    built = {"flags": tables.flags, "cost": tables.cost}[show](frame) if show != "accuracy" else \
        tables.build(frame, chosen, reference, per_seed=per_seed, versus=versus)
    text = renderer(built)
    if out:
        atomic_write_text(out, text)
    click.echo(text, nl=False)  # the renderers escape every cell themselves; rich's own styling codes stay
