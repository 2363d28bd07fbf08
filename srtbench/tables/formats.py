"""The output formats of a table (markdown, LaTeX, CSV, rich text, HTML), each escaping free text, best values in bold.

`render` writes a `Table` in one of FORMATS, with the best value of each column and dataset in bold.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Callable

import pandas as pd

from srtbench import results
from srtbench.data import display_name
from srtbench.registry import Registry
from srtbench.tables.formatting import _delta, _difference, _spread_text, format_value, round2
from srtbench.tables.layouts import Column
from srtbench.tables.model import Group, Table


def _best(group: Group, col_index: int, column: Column) -> set[str]:
    shown = {}
    for row in group.rows:
        v = row.cells[col_index].value
        if isinstance(v, (int, float)) and not math.isnan(v):
            shown[row.label] = round2(v)
    if len(shown) < 2:
        return set()
    best = max(shown.values()) if column.higher_is_better else min(shown.values())
    return {label for label, v in shown.items() if v == best}


def _heading(table: Table, group: Group) -> str:
    heading = display_name(group.dataset)
    if table.compared and group.reference_dataset:
        heading += f" (ours / paper {display_name(group.reference_dataset)} (Δ))"
    return heading


def _text_grid(table: Table, escape: Callable[[str], str],
               bold: Callable[[str], str]) -> list[tuple[str, list[list[str]]]]:
    """Per group: its heading and the rows of cell texts (label first), every text passed through the format's
    `escape` (labels, paths and flag details are free text) and the best values then through `bold`."""
    out = []
    for group in table.groups:
        best = [_best(group, i, c) for i, c in enumerate(table.columns)]
        rows = []
        for row in group.rows:
            texts = [escape(row.label)]
            for i, (cell, col) in enumerate(zip(row.cells, table.columns)):
                text = escape(format_value(cell.value, col) + _spread_text(cell))
                if row.label in best[i]:
                    text = bold(text)
                if table.compared:
                    text = f"{text} / {escape(format_value(cell.reference, col))} ({escape(_difference(cell, col))})"
                texts.append(text)
            rows.append(texts)
        out.append((escape(_heading(table, group)), rows))
    return out


FORMATS: Registry[Callable[[Table], str]] = Registry("table format")

# markdown (GFM) and HTML constructs a label could start: escaped with a backslash, or as an entity; an underscore
# inside a word and an ampersand that starts no entity are text already, and stay readable
_MARKDOWN_SPECIAL = re.compile(r"[\\`*\[\]|$~<>]|&(?=#?\w+;)|_(?![^\W_])|(?<![^\W_])_")
_HTML_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def _markdown(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(lambda m: _HTML_ENTITIES.get(m.group(), "\\" + m.group()),
                                 results.clean_text(text))


def _markdown_paragraph(text: str) -> str:
    """`_markdown` for a line of its own, whose start could also open a heading, list or quote."""
    text = _markdown(text).lstrip()
    number = re.match(r"\d+(?=[.)])", text)
    if number:
        return text[: number.end()] + "\\" + text[number.end():]
    return "\\" + text if text[:1] in ("#", ">", "+", "-", "=") else text


@FORMATS.register("markdown")
def to_markdown(table: Table) -> str:
    headers = ["Defense", *[c.header for c in table.columns]]
    lines = [f"**{_markdown(table.title)}**", "", "| " + " | ".join(map(_markdown, headers)) + " |",
             "| --- |" + " ---: |" * len(table.columns)]
    for heading, rows in _text_grid(table, _markdown, lambda t: f"**{t}**"):
        lines.append(f"| *{heading}* |" + " |" * len(table.columns))
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [f"\n{_markdown_paragraph(n)}." for n in table.notes]
    return "\n".join(lines) + "\n"


# every character TeX would read as markup, as text; brackets braced so that none is read as the optional
# argument of the `\\` before it
_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "%": r"\%", "#": r"\#",
                  "_": r"\_", "^": r"\textasciicircum{}", "~": r"\textasciitilde{}", "<": r"\textless{}",
                  ">": r"\textgreater{}", "|": r"\textbar{}", "[": "{[}", "]": "{]}",
                  "λ": r"$\lambda$", "±": r"$\pm$", "Δ": r"$\Delta$", "−": "$-$", "×": r"$\times$", "–": "--"}


def _latex(text: str) -> str:
    out = ""
    for ch in results.clean_text(text):
        piece = _LATEX_ESCAPES.get(ch, ch)
        out += ("{}" if out.endswith("-") and piece.startswith("-") else "") + piece  # no -- or --- ligature
    return out


@FORMATS.register("latex")
def to_latex(table: Table) -> str:
    n = len(table.columns) + 1
    lines = [f"% {_latex(table.title)}", r"\begin{tabular}{l" + "r" * len(table.columns) + "}", r"\toprule",
             " & ".join(_latex(h) for h in ["Defense", *[c.header for c in table.columns]]) + r" \\"]
    for heading, rows in _text_grid(table, _latex, lambda t: rf"\textbf{{{t}}}"):
        lines += [r"\midrule", rf"\multicolumn{{{n}}}{{c}}{{{heading}}} \\", r"\midrule"]
        lines += [" & ".join(r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [f"% {_latex(n)}" for n in table.notes]
    return "\n".join(lines) + "\n"


def _csv_text(text: str) -> str:
    """A text cell a spreadsheet shows as text: one that would start a formula gets a leading quote."""
    return results.spreadsheet_safe(results.clean_text(text))


@FORMATS.register("csv")
def to_csv(table: Table) -> str:
    """Machine-readable: one line per row, numbers rounded to two decimals (differences with an ASCII minus),
    empty where missing; text cells never start a spreadsheet formula."""
    headers = ["dataset", "label"]
    spread = [any(r.cells[i].spread is not None for g in table.groups for r in g.rows)
              for i in range(len(table.columns))]  # a column of means gets a column of their standard deviations
    for c, has_spread in zip(table.columns, spread):
        headers += [c.header] + ([f"{c.header} ±"] if has_spread else [])
        headers += [f"{c.header} (paper)", f"{c.header} Δ"] if table.compared else []
    lines = []
    for group in table.groups:
        for row in group.rows:
            line = [_csv_text(group.dataset), _csv_text(row.label)]
            for cell, col, has_spread in zip(row.cells, table.columns, spread):
                values = [cell.value] + ([cell.spread] if has_spread else [])
                values += [cell.reference, _delta(cell, col)] if table.compared else []
                line += ["" if v is None or (isinstance(v, float) and math.isnan(v)) else
                         _csv_text(v) if isinstance(v, str) else format_value(v, col).replace(",", "")
                         for v in values]
            lines.append(line)
    frame = pd.DataFrame(lines, columns=[_csv_text(h) for h in headers])
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue()


def html_text(text: str) -> str:
    """Free text as HTML shows it verbatim, in an element or a quoted attribute: `clean_text`, then every `<`, `>`,
    `&` and quote an entity."""
    return html.escape(results.clean_text(str(text)), quote=True)


@FORMATS.register("html")
def to_html(table: Table) -> str:
    """A `<table>` (a fragment to place in a page: `srtbench report` does): a `<tbody>` per dataset headed by a row of
    class "group", label cells `<th scope="row">`, best values in `<strong>`, the notes as paragraphs after it."""
    headers = "".join(f'<th scope="col">{html_text(h)}</th>' for h in ["Defense", *[c.header for c in table.columns]])
    lines = [f'<table class="results"><caption>{html_text(table.title)}</caption>',
             f"<thead><tr>{headers}</tr></thead>"]
    for heading, rows in _text_grid(table, html_text, lambda t: f"<strong>{t}</strong>"):
        lines.append(f'<tbody><tr class="group"><th colspan="{len(table.columns) + 1}">{heading}</th></tr>')
        lines += [f'<tr><th scope="row">{r[0]}</th>' + "".join(f"<td>{c}</td>" for c in r[1:]) + "</tr>" for r in rows]
        lines.append("</tbody>")
    lines.append("</table>")
    lines += [f'<p class="note">{html_text(n)}.</p>' for n in table.notes]
    return "\n".join(lines) + "\n"


RICH_MAX_WIDTH = 240


@FORMATS.register("rich")
def to_rich(table: Table) -> str:
    """A box-drawn text table; no text is read as rich markup or emoji (labels are shown as written)."""
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    def styled(text: str) -> Text:  # "\x00" ... "\x01" marks a best value (control characters are gone from texts)
        out = Text()
        for i, part in enumerate(re.split("[\x00\x01]", text)):
            out.append(part, style="bold" if i % 2 else "")
        return out

    out = RichTable(title=Text(results.clean_text(table.title)), title_justify="left")
    out.add_column(Text("Defense"))
    for c in table.columns:
        out.add_column(Text(results.clean_text(c.header)), justify="left" if c.kind == "text" else "right")
    for gi, (heading, rows) in enumerate(_text_grid(table, results.clean_text, lambda t: f"\x00{t}\x01")):
        out.add_row(Text(heading, style="italic"), end_section=False)
        for i, r in enumerate(rows):
            out.add_row(*map(styled, r), end_section=(i == len(rows) - 1 and gi < len(table.groups) - 1))
    buf = io.StringIO()
    plain = dict(file=buf, force_terminal=False, markup=False, emoji=False, highlight=False)
    # as wide as the table needs (a number never wraps), up to a wide screen: only long text (flag details) wraps
    width = Console(width=1 << 16, **plain).measure(out).maximum
    console = Console(width=min(max(100, width), RICH_MAX_WIDTH), **plain)
    console.print(out)
    for n in table.notes:
        console.print(Text(results.clean_text(n) + "."))
    return buf.getvalue()


def render(table: Table, fmt: str = "markdown") -> str:
    return FORMATS.get(fmt)(table)
