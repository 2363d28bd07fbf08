"""The site's overview pages: the leaderboards (index.html, one per dataset × threat) and the paper's tables beside
ours (paper.html, rendered by the tables' own HTML format)."""

from __future__ import annotations

from srtbench.data import display_name
from srtbench.site.data import Board, Entry, Site, headline
from srtbench.site.markup import badge, budget, cell, link, number, page, table, text, whole
from srtbench.tables import render

LEADERBOARD = ("Model", "Defense", "Architecture", "Unlabeled", "Budget", "Clean", "AutoAttack / strongest",
               "Worst case", "Reported", "Flags", "Evaluated")


def _model_cell(site: Site, entry: Entry) -> str:
    first = entry.cards[0]
    name = link(site.page_of(first), entry.name)
    if len(entry.cards) > 1:
        seeds = " ".join(link(site.page_of(c), f"seed {s}") for c, s in zip(entry.cards, entry.seeds))
        name += f'<br><span class="small">mean ± std over {len(entry.cards)} seeds: {seeds}</span>'
    return cell(name, raw=True)


def flag_badges(flags: dict[str, str], details: dict[str, str] | None = None) -> str:
    """A WARN badge per warning flag (its details as the tooltip), then one badge counting those that pass."""
    warned = [badge(name, "WARN", (details or {}).get(name, "")) for name, s in flags.items() if s == "WARN"]
    passed = sum(s == "PASS" for s in flags.values())
    return "".join(warned) + (badge(f"{passed} PASS", "PASS") if passed else "") or "none recorded"


def _flags_cell(entry: Entry) -> str:
    flags = entry.flags()
    details = {name: "; ".join(d for c in entry.cards for d in c["flags"].get(name, {}).get("details", []))
               for name in flags}
    warnings = sum(s == "WARN" for s in flags.values())
    return f'<td data-value="{warnings}">{flag_badges(flags, details)}</td>'


def _entry_row(site: Site, entry: Entry) -> str:
    first = entry.cards[0]
    clean = entry.stat(lambda c: c["clean_acc"])
    head = entry.stat(lambda c: headline(c)[0])
    worst = entry.stat(lambda c: c["worst_case_acc"])
    reported, where = entry.reported()
    attack = f'<br><span class="small">{text(entry.headline_attacks)}</span>' if head.value is not None else ""
    source = f'<br><span class="small">{text(where)}</span>' if where else ""
    training = first["training"]
    cells = [_model_cell(site, entry), cell(training["defense"] or ""), cell(first["architecture"] or ""),
             whole(training["unlabeled"]), cell(budget(first["budget"])),
             number(clean.value, clean.spread), number(head.value, head.spread, extra=attack),
             number(worst.value, worst.spread), number(reported, extra=source), _flags_cell(entry),
             cell(max((c["evaluated"] or "" for c in entry.cards), default=""), cls="date")]
    return f'<tr data-model="{text(entry.name)}">' + "".join(cells) + "</tr>"


def _board(site: Site, board: Board) -> str:
    rows = [_entry_row(site, e) for e in board.entries]
    return f"<h2>{text(board.title)}</h2>\n" + table(LEADERBOARD, rows, cls="leaderboard")


INTRO = ("One leaderboard per dataset and threat, best first by AutoAttack's accuracy where it ran, else the strongest "
         "attack's. Worst case: the examples that every attack of the threat failed on (from the per-example files; "
         "'–' where one is missing). Reported: the paper's number for a row of the same name under the same attack, "
         "on the dataset or the one it stands in for. Click a column header to sort.")


def index(site: Site) -> str:
    body = [f'<p class="note">{text(INTRO)}</p>']
    body += [_board(site, b) for b in site.boards]
    body += [f'<p class="note">{text(n)}.</p>' for n in site.notes]
    return page("Leaderboards", "\n".join(body))


def paper(site: Site) -> str:
    if not site.paper_tables:
        body = '<p class="note">No table of the paper to compare with: the results hold none of its layouts, or ' \
               "the paper's numbers are not installed.</p>"
    else:
        names = ", ".join(dict.fromkeys(display_name(g.dataset) for t in site.paper_tables for g in t.groups))
        body = (f'<p class="note">{text(f"Each cell: ours / the paper (Δ). Datasets: {names}.")}</p>\n' +
                "\n".join(render(t, "html") for t in site.paper_tables))
    return page("The paper's tables beside ours", body)
