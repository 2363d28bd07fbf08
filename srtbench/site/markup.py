"""The site's HTML pieces: escaped text (the tables' own escaping), number cells that carry their exact value, badges,
sortable tables and the page around them (inline stylesheet and sorter, a Content Security Policy, no fetch)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from srtbench import __version__
from srtbench.site import assets
from srtbench.tables.formats import html_text as text
from srtbench.tables.formatting import MISSING, fixed
from srtbench.tables.profile import budget_text


def number(value: float | None, spread: float | None = None, digits: int = 2, extra: str = "") -> str:
    """A number cell: the value as the tables print it (`fixed`, ± the spread over seeds), its exact value in
    data-value (what the sorter reads, and what a reader can check against the CSV)."""
    if value is None:
        return f'<td class="num" data-value="">{MISSING}</td>'
    shown = fixed(value, digits) + (f" ± {fixed(spread, digits)}" if spread is not None else "")
    return f'<td class="num" data-value="{float(value)!r}">{shown}{extra}</td>'


def whole(value: int | None) -> str:
    """A count cell: thousands separated, its exact value in data-value."""
    if value is None:
        return f'<td class="num" data-value="">{MISSING}</td>'
    return f'<td class="num" data-value="{int(value)}">{int(value):,}</td>'


def cell(content: str = "", raw: bool = False, cls: str = "") -> str:
    """A text cell: `content` escaped, or (`raw`) markup made here of escaped parts."""
    attribute = f' class="{cls}"' if cls else ""
    return f"<td{attribute}>{content if raw else text(content)}</td>"


def badge(name: str, status: str, title: str = "") -> str:
    kind = "pass" if status == "PASS" else "warn"
    tip = f' title="{text(title)}"' if title else ""
    return f'<span class="badge {kind}"{tip}>{text(name)}</span>'


def link(href: str, label: str) -> str:
    """A link to a page of the site: `href` is ours (safe names only), `label` is escaped."""
    return f'<a href="{text(href)}">{text(label)}</a>'


def table(headers: Sequence[str], rows: Iterable[str], caption: str = "", sortable: bool = True,
          cls: str = "") -> str:
    """A table of escaped headers and rows of cells made here (`<tr>` markup), sortable by a click on a header, in a
    box that scrolls sideways where the page is narrower."""
    classes = " ".join(filter(None, ["sortable" if sortable else "", cls]))
    head = "".join(f'<th scope="col">{text(h)}</th>' for h in headers)
    title = f"<caption>{text(caption)}</caption>" if caption else ""
    return f'<div class="scroll"><table class="{classes}">{title}<thead><tr>{head}</tr></thead><tbody>\n' + \
        "\n".join(rows) + "\n</tbody></table></div>"


def facts(pairs: Iterable[tuple[str, str]]) -> str:
    """A definition list of (term, markup made here) pairs; a term is escaped."""
    return '<dl class="facts">' + "".join(f"<dt>{text(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def settings_text(settings: dict) -> str:
    """An attack's settings as `k=v, ...` (numbers to six significant digits: a budget scaled by a fraction carries
    float noise)."""
    return ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={json.dumps(v, ensure_ascii=False)}"
                     if not isinstance(v, str) else f"{k}={v}" for k, v in settings.items())


def budget(budget: dict) -> str:
    """A budget as the tables' headers state it ("ε 0.1", "30°, 3 px"); "–" where none is recorded."""
    return budget_text(json.dumps(budget)) if budget else MISSING


def page(title: str, body: str, depth: int = 0) -> str:
    """A whole page: `body` is markup made here; `depth` is how far below the site's root the page lies."""
    up = "../" * depth
    nav = (f'<header class="site"><a href="{up}index.html">Leaderboards</a><a href="{up}paper.html">Paper tables</a>'
           f'<span class="small">srtbench {text(__version__)}</span></header>')
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{assets.policy()}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{text(title)}</title>\n<style>{assets.style()}</style></head>\n"
            f"<body>{nav}<main>\n<h1>{text(title)}</h1>\n{body}\n</main>\n<script>{assets.script()}</script>"
            "</body></html>\n")
