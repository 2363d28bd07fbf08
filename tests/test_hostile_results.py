"""Hostile results (issue 16): labels that try to inject into every output of `srtbench table`, malformed results
CSVs, one rounding rule for every printed number, and README's `table`/`plot` commands run as written."""

from __future__ import annotations

import csv
import glob
import html
import io
import json
import re
import shlex
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from srtbench import results, tables
from srtbench.cli import main
from srtbench.cli.evaluate import report
from srtbench.errors import SrtbenchError
from tests import shipped
from tests import test_newcomer as newcomer

REPO = Path(__file__).resolve().parent.parent


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# ---------------------------------------------------------------- injection through a label

# (label as stored in a results CSV, the row name any table must show): terminal escape sequences and other
# control characters are gone (line breaks and tabs become spaces), everything else is shown literally
HOSTILE_LABELS = [
    (r"\input{/etc/passwd}", r"\input{/etc/passwd}"),
    ("a|b\n| --- |", "a|b | --- |"),
    ("<script>alert(1)</script>", "<script>alert(1)</script>"),
    ("=cmd|' /C calc'!A0", "=cmd|' /C calc'!A0"),
    ("+1", "+1"),
    ("-2", "-2"),
    ("@SUM(1)", "@SUM(1)"),
    ("[bold red]x[/]", "[bold red]x[/]"),
    ("\x1b[31mred\x1b[0m", "red"),
    ("$x^2$ ~ {}", "$x^2$ ~ {}"),
    ("\tTAB\r", " TAB "),
    ("\x1b]8;;http://evil/\x07link\x1b]8;;\x07 \x9b2Jc1 \x07bell\x00nul\x7f", "link c1 bellnul"),
    ("\u202eevil\u202c", "<U+202E>evil<U+202C>"),  # a direction override is shown, not obeyed
    ("S\u200bR\u200cT (\u03bb = 1)", "S<U+200B>R<U+200C>T (\u03bb = 1)"),  # never looks like SRT (λ = 1)
    ("\ufeffAT\u2062\U000e0041", "<U+FEFF>AT<U+2062><U+E0041>"),  # byte-order mark, invisible times, a tag
    ("**b** `c` _i_ [l](http://e) ~~s~~ &amp; x\\", "**b** `c` _i_ [l](http://e) ~~s~~ &amp; x\\"),
    ("[link=http://evil]y[/link] :smile: %comment #1 a_b", "[link=http://evil]y[/link] :smile: %comment #1 a_b"),
]
# two checkpoints that share a label: their paths (free text as well) become part of the row names
HOSTILE_PATHS = [("runs/<img src=x onerror=alert(1)>/m.pt", "dup (<img src=x onerror=alert(1)>/m)"),
                 ("runs/=HYPERLINK(\"e\")\x1b[2J/m.pt", "dup (=HYPERLINK(\"e\")/m)")]
HOSTILE_DATASET = ("=evil|<i>ds</i>\x1b[2J", "=evil|<i>ds</i>")
HOSTILE_ATTACK = ("=1+1|<b>", "=1+1|<b>")
HOSTILE_FLAGS = {"gradient_masking": {"status": "WARN",
                                      "detail": "\x1b]8;;http://evil\x07click\x1b]8;;\x07 [link=http://e]y[/link] "
                                                "| <b>x</b> \\input{x} $ @SUM(1)"},
                 "zero_budget": {"status": "PASS", "detail": ""}}
HOSTILE_FLAGS_SHOWN = "1 PASS; WARN gradient_masking: click [link=http://e]y[/link] | <b>x</b> \\input{x} $ @SUM(1)"


def _hostile_rows(offset: float = 0.0) -> list[dict]:
    """Every hostile label one model (accuracies + offset, so a reference differs from ours in every cell)."""
    rows = []
    for i, (label, _) in enumerate(HOSTILE_LABELS):
        for attack, acc in (("fgsm", 60.0 - i), ("pgd", 40.0 + i)):
            rows.append({"label": label, "checkpoint": f"runs/m{i}.pt", "checkpoint_sha256": f"{i:064x}",
                         "attack": attack, "clean_acc": 80.0 + i / 10 + offset, "robust_acc": acc + offset})
    for j, (path, _) in enumerate(HOSTILE_PATHS):
        rows.append({"label": "dup", "checkpoint": path, "checkpoint_sha256": f"{100 + j:064x}", "attack": "pgd",
                     "clean_acc": 70.0, "robust_acc": 30.0 + j})
    rows.append({"label": "plain", "checkpoint": "runs/plain.pt", "checkpoint_sha256": f"{200:064x}",
                 "attack": HOSTILE_ATTACK[0], "clean_acc": 70.0 + offset, "robust_acc": 12.5 + offset,
                 "dataset": HOSTILE_DATASET[0]})
    return [{"n": 100, "seed": 0, "fraction": 1.0, "dataset": "fashion-mnist", "flags": HOSTILE_FLAGS, **r}
            for r in rows]


def _expected_labels(view: str) -> set[str]:
    shown = [s for _, s in HOSTILE_LABELS] + [s for _, s in HOSTILE_PATHS] + ["plain"]
    if view != "flags":
        return set(shown)
    named = [(s, f"m{i}.pt") for i, (_, s) in enumerate(HOSTILE_LABELS)]
    dups = [(s, "m.pt") for _, s in HOSTILE_PATHS]  # one label, two files m.pt: told apart by their run names
    return {f"{s} ({n})" for s, n in [*named, *dups, ("plain", "plain.pt")]}


# ----- each format parsed back: (header cells, body rows of cells, group heading rows), cells unescaped

def _md_inert(cell: str) -> bool:
    """No markdown/HTML construct left: every special character is backslash-escaped or an entity of ours (an
    underscore inside a word and an ampersand that starts no entity are plain text in CommonMark)."""
    i = 0
    while i < len(cell):
        ch, rest = cell[i], cell[i:]
        if ch == "\\":
            if i + 1 == len(cell) or not re.fullmatch(r"[!-/:-@\[-`{-~]", cell[i + 1]):
                return False
            i += 2
            continue
        if ch == "&" and re.match(r"&#?\w+;", rest) and not re.match(r"&(amp|lt|gt);", rest):
            return False
        if ch == "_" and not (0 < i < len(cell) - 1 and cell[i - 1].isalnum() and cell[i + 1].isalnum()):
            return False
        if ch in "`*[]<>|$~":
            return False
        i += 1
    return True


def parse_markdown(text: str):
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    grid = [[c.strip() for c in re.split(r"(?<!\\)\|", ln[1:-1])] for ln in lines]
    header, body = grid[0], grid[2:]
    headings = [r for r in body if re.fullmatch(r"\*.*\*", r[0]) and all(not c for c in r[1:])]
    cells = [r for r in body if r not in headings]
    unbold = [re.sub(r"\*\*([\d.]+)\*\*", r"\1", c) for r in cells for c in r]  # bold numbers are ours
    shown = [*header, *(h[0][1:-1] for h in headings), *unbold]
    assert all(_md_inert(c) for c in shown), [c for c in shown if not _md_inert(c)]
    unescape = lambda c: html.unescape(re.sub(r"\\(.)", r"\1", c))  # noqa: E731
    return [unescape(c) for c in header], [[unescape(c) for c in r] for r in cells], headings


LATEX_BACK = {r"\textbackslash{}": "\\", r"\textasciicircum{}": "^", r"\textasciitilde{}": "~", r"\textless{}": "<",
              r"\textgreater{}": ">", r"\textbar{}": "|", r"\{": "{", r"\}": "}", r"\$": "$", r"\&": "&", r"\%": "%",
              r"\#": "#", r"\_": "_", "{[}": "[", "{]}": "]", r"$\lambda$": "λ", r"$\Delta$": "Δ", "$-$": "−",
              r"$\times$": "×", "--": "–", "-{}": "-"}
LATEX_COMMANDS = {"textbf", "textbackslash", "textasciicircum", "textasciitilde", "textless", "textgreater", "textbar",
                  "multicolumn", "midrule", "toprule", "bottomrule", "begin", "end", "lambda", "Delta", "times"}


def parse_latex(text: str):
    body = "\n".join(ln for ln in text.splitlines() if not ln.startswith("%"))
    commands = {m.group(1) for m in re.finditer(r"\\([A-Za-z]+|.)", body)}
    assert commands <= LATEX_COMMANDS | set("&%_#${}\\"), commands - LATEX_COMMANDS
    assert "\\input" not in text and "\\write" not in text
    no_math = re.sub(r"\$(\\lambda|\\Delta|-|\\times)\$|\\\$", "", body)
    assert "$" not in no_math
    no_escapes = re.sub(r"\\[{}]", "", body)
    assert no_escapes.count("{") == no_escapes.count("}")
    back = re.compile("|".join(map(re.escape, sorted(LATEX_BACK, key=len, reverse=True))))
    unescape = lambda c: back.sub(lambda m: LATEX_BACK[m.group()], re.sub(r"\\textbf\{([^{}]*)\}", r"\1", c))  # noqa: E731
    rows = [ln.removesuffix(r" \\") for ln in text.splitlines() if ln.endswith(r" \\")]
    grid = [[unescape(c.strip()) for c in re.split(r"(?<!\\)&", r)] for r in rows]
    headings = [r for r in rows if r.startswith(r"\multicolumn")]
    cells = [g for g, r in zip(grid, rows) if not r.startswith(r"\multicolumn")]
    return cells[0], cells[1:], headings


FORMULA = tuple("=+-@\t\r")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_csv(text: str):
    grid = list(csv.reader(io.StringIO(text)))
    header, body = grid[0], grid[1:]
    formulas = [c for r in [header, *body] for c in r
                if (c.lstrip().startswith(FORMULA) or c.startswith(FORMULA)) and not _is_number(c)]
    assert not formulas, formulas  # only a number may start like a formula: a text cell starts with "'" instead
    unquote = lambda c: c[1:] if c[:1] == "'" and c[1:].lstrip().startswith(FORMULA) else c  # noqa: E731
    return [unquote(c) for c in header][1:], [[unquote(c) for c in r][1:] for r in body], []


def parse_rich(text: str):
    lines = text.splitlines()
    header = next(ln for ln in lines if "┃" in ln)
    rows = [[c.strip() for c in ln.split("│")[1:-1]] for ln in lines if "│" in ln]
    headings = [r for r in rows if all(not c for c in r[1:])]
    return [c.strip() for c in header.split("┃")[1:-1]], [r for r in rows if r not in headings], headings


class HTMLCells(HTMLParser):
    """An HTML text read back: its tags and attribute names, the rows of cell texts (entities decoded) with each row's
    class, and every text node."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.rows: list[tuple[list[str], str | None]] = []
        self.texts: list[str] = []
        self.in_cell = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += attrs
        if tag == "tr":
            self.rows.append(([], dict(attrs).get("class")))
        elif tag in ("th", "td") and self.rows:
            self.rows[-1][0].append("")
            self.in_cell = True

    def handle_endtag(self, tag):
        self.in_cell = self.in_cell and tag not in ("th", "td", "tr")

    def handle_data(self, data):
        self.texts.append(data)
        if self.in_cell:
            self.rows[-1][0][-1] += data


def parse_html(text: str):
    """`--format html`: a `<table>` whose only elements are the table's own and `<strong>` (best values), with no
    attribute but class, colspan and scope: a label's `<script>`, `<img onerror=...>` or `<b>` stays text."""
    found = HTMLCells(text)
    assert set(found.tags) <= {"table", "caption", "thead", "tbody", "tr", "th", "td", "strong", "p"}, found.tags
    assert {name for name, _ in found.attributes} <= {"class", "colspan", "scope"}, found.attributes
    header, *body = found.rows
    return header[0], [r for r, cls in body if cls != "group"], [r for r, cls in body if cls == "group"]


PARSERS = {"markdown": parse_markdown, "latex": parse_latex, "csv": parse_csv, "rich": parse_rich, "html": parse_html}


def write_raw(path: Path, rows: list[dict]) -> Path:
    """A results CSV as another tool may write it: every field quoted, free text as given (results.append cleans)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
        writer.writerow(results.COLUMNS)
        for r in rows:
            writer.writerow([results.dumps(r[c]) if c in results.JSON_COLUMNS and c in r else r.get(c, "")
                             for c in results.COLUMNS])
    return path


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    write_raw(folder / "ours.csv", _hostile_rows())
    write_raw(folder / "ref.csv", [r for r in _hostile_rows(offset=1.5) if r["label"] != "dup"])
    return folder


# the views of `srtbench table`, each with its extra arguments; every one is rendered in every format
VIEWS = {"table": (), "compare": ("--compare", "REF"), "flags": ("--flags",)}


@pytest.mark.parametrize("view", list(VIEWS))
@pytest.mark.parametrize("fmt", list(PARSERS))
def test_hostile_labels_render_inert_in_every_format(hostile, fmt, view):
    """The output parses back to as many rows and columns as the table has, each row name is the label as written
    (less its control characters), and no cell holds an active construct of the format (each parser checks)."""
    args = [a.replace("REF", str(hostile / "ref.csv")) for a in VIEWS[view]]
    out = run("table", hostile / "ours.csv", "--format", fmt, *args)
    assert out.exit_code == 0, out.output
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e]", out.output)  # no escape sequence, no ESC
    frame = results.collect([hostile / "ours.csv"])
    table = (tables.flags(frame) if view == "flags" else
             tables.build(frame, "auto", results.collect([hostile / "ref.csv"]) if view == "compare" else None))
    header, rows, headings = PARSERS[fmt](out.output)
    width = len(table.columns) * (3 if fmt == "csv" and table.compared else 1) + 1
    assert len(header) == width and all(len(r) == width for r in rows), (header, rows)
    assert len(rows) == sum(len(g.rows) for g in table.groups)
    assert len(headings) == (0 if fmt == "csv" else len(table.groups))
    assert {r[0].strip() for r in rows} == {s.strip() for s in _expected_labels(view)}
    assert HOSTILE_ATTACK[1] in (header if view != "flags" else [c for r in rows for c in r])
    if view == "flags":
        assert {r[-1] for r in rows} == {HOSTILE_FLAGS_SHOWN}
    if fmt == "rich":
        assert "[bold red]x[/]" in out.output and ":smile:" in out.output  # shown, not interpreted
    if fmt == "csv" and view == "compare":
        deltas = [r[3] for r in rows if r[3]]
        assert deltas and all(float(d) == -1.5 for d in deltas)  # negative numbers, not prefixed text


# what a page of `srtbench report` is made of: the page's own elements, its tables, inline SVG charts and one script
SITE_TAGS = {"html", "head", "meta", "title", "style", "body", "header", "main", "a", "span", "h1", "h2", "p", "div",
             "br", "dl", "dt", "dd", "code", "table", "caption", "thead", "tbody", "tr", "th", "td", "strong",
             "figure", "figcaption", "svg", "text", "line", "rect", "polyline", "circle", "script"}


def test_hostile_labels_render_inert_in_the_site(hostile, tmp_path):
    """Every page of `srtbench report` holds only the site's own elements and its one script (no attribute a label
    could add: no `on...` handler, no link off the site), and shows every label, dataset, attack and flag detail as
    written (less its control characters)."""
    out = run("report", hostile / "ours.csv", "--out", tmp_path / "site", "--no-paper")
    assert out.exit_code == 0, out.output
    pages = sorted((tmp_path / "site").rglob("*.html"))
    texts: dict[str, str] = {}
    for page in pages:
        raw = page.read_text(encoding="utf-8")
        assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e]", raw), page.name
        found = HTMLCells(raw)
        assert set(found.tags) <= SITE_TAGS, (page.name, set(found.tags) - SITE_TAGS)
        assert found.tags.count("script") == 1, page.name
        assert not [n for n, _ in found.attributes if n.startswith("on")], page.name
        links = [v for n, v in found.attributes if n == "href"]
        assert all(re.fullmatch(r"(\.\./)?(index|paper)\.html|(\.\./)?(models|cards)/[A-Za-z0-9._+-]+", v)
                   for v in links), links
        texts[page.name] = "\n".join(t.strip() for t in found.texts)
    shown, labels = set(texts["index.html"].split("\n")), {s.strip() for s in _expected_labels("table")}
    assert labels <= shown, labels - shown
    assert any(HOSTILE_DATASET[1] in t for t in shown) and HOSTILE_ATTACK[1] in shown
    assert sum(HOSTILE_FLAGS_SHOWN.split(": ", 1)[1] in t for t in texts.values()) == len(pages) - 2  # each model


def test_a_note_that_starts_like_markdown_stays_a_paragraph():
    """Notes name datasets (free text) and sit on lines of their own, where `#`, `-`, `1.` or `>` would open a block."""
    notes = ["# heading", "- item", "+ item", "1. first", "> quote", "=== setext", "  ## indented"]
    group = tables.Group("x", [tables.Row("a", [tables.Cell(1.0)])])
    table = tables.Table("t", [tables.Column("clean", "Clean")], [group], notes=notes)
    lines = [ln for ln in tables.render(table, "markdown").splitlines() if ln and ln[0] not in "|*"]
    assert len(lines) == len(notes) and all(re.match(r"\\|\d+\\\.|&gt;", ln) for ln in lines), lines
    assert all(ln.startswith("% ") for ln in tables.render(table, "latex").splitlines()[-len(notes):])


# ---------------------------------------------------------------- results CSVs read with a schema

GOOD_ROW = {"checkpoint": "runs/at.pt", "checkpoint_sha256": "ab" * 32, "label": "AT", "defense": "at",
            "defense_params": "{}", "train_threat": "pixel", "train_budget": '{"epsilon":0.1,"norm":"linf"}',
            "train_seed": "0", "n_labeled": "10000", "n_unlabeled": "50000", "preset": "fmnist-pixel-cpu",
            "train_time_s": "172.3", "model": "small-cnn", "dataset": "fashion-mnist",
            "split": "test", "attack": "fgsm", "attack_params": '{"epsilon":0.1}', "fraction": "1.0",
            "budget": '{"epsilon":0.1}', "budget_source": '{"epsilon":"checkpoint"}', "n": "1000", "seed": "0",
            "clean_acc": "72.0", "robust_acc": "63.4", "robust_ci_low": "0.86", "robust_ci_high": "66.33",
            "mean_distance": "", "median_distance": "", "flags": '{"zero_budget":{"detail":"","status":"PASS"}}',
            "per_example": "", "wall_time_s": "1.3", "device": "cpu", "srtbench_version": "0.1.0",
            "git_commit": "af3e5a3", "command": "srtbench evaluate runs/at.pt", "timestamp": "2026-11-30T00:00:00"}


def csv_text(*rows, header=results.COLUMNS) -> str:
    """A results CSV: each row a dict of overrides of GOOD_ROW, or a list of raw fields."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for r in rows:
        writer.writerow(r if isinstance(r, list) else [{**GOOD_ROW, **r}.get(c, "") for c in header])
    return buf.getvalue()


def without(column: str, **over) -> list[str]:
    """GOOD_ROW with one field deleted: every later field shifts one column left."""
    return [{**GOOD_ROW, **over}.get(c, "") for c in results.COLUMNS if c != column]


FIELDS = len(results.COLUMNS)
PAPER_SUBSET = ("checkpoint,label,dataset,attack,fraction,clean_acc,robust_acc,train_time_min,note\n"
                "paper:table9,AT,cifar10,fgsm,1.0,77.17,50.35,\"1,654\",\n")

# (case, CSV text, exit code of `srtbench table FILE`, the one-line error after "error: FILE" or a text in the output)
CSV_CASES = [
    ("valid", csv_text({}, {"attack": "pgd", "robust_acc": "60.2"}), 0, "| AT | 72.00 | 63.40 | 60.20 |"),
    ("paper-subset-of-columns", PAPER_SUBSET, 0, "| AT | 77.17 | 50.35 |"),
    ("blank-last-line", csv_text({}) + "\n", 0, "| AT | 72.00 | 63.40 |"),
    ("field-deleted", csv_text({"attack": "pgd"}, without("robust_acc")), 2,
     f", line 3: {FIELDS - 1} fields where the header has {FIELDS} (a field missing or an unquoted comma)"),
    ("field-added", csv_text({}, [*without(""), "extra"]), 2,
     f", line 3: {FIELDS + 1} fields where the header has {FIELDS} (a field missing or an unquoted comma)"),
    ("text-in-number", csv_text({"robust_acc": "n/a"}), 2, ", line 2: robust_acc is not a number ('n/a')"),
    ("n-not-whole", csv_text({"n": "1.5"}), 2, ", line 2: n is not a whole number ('1.5')"),
    ("text-in-fraction", csv_text({"fraction": "1.0x"}), 2, ", line 2: fraction is not a number ('1.0x')"),
    ("inf-in-seed", csv_text({"seed": "inf"}), 2, ", line 2: seed is not finite ('inf')"),
    ("robust-acc-above-100", csv_text({"robust_acc": "150"}), 2,
     ", line 2: robust_acc is a percentage outside [0, 100] ('150')"),
    ("robust-acc-negative", csv_text({"robust_acc": "-5"}), 2,
     ", line 2: robust_acc is a percentage outside [0, 100] ('-5')"),
    ("robust-acc-inf", csv_text({"robust_acc": "inf"}), 2, ", line 2: robust_acc is not finite ('inf')"),
    ("wall-time-negative", csv_text({"wall_time_s": "-1"}), 2, ", line 2: wall_time_s is negative ('-1')"),
    ("json-invalid", csv_text({"flags": "{oops"}), 2,
     ", line 2: flags is not valid JSON (Expecting property name enclosed in double quotes)"),
    ("json-not-an-object", csv_text({"attack_params": "[1, 2]"}), 2, ", line 2: attack_params is not a JSON object"),
    ("flag-not-an-object", csv_text({"flags": '{"zero_budget": 1}'}), 2,
     ", line 2: flags entry 'zero_budget' is not a JSON object"),
    ("line-after-multiline-label", csv_text({"label": "A\nT"}, {"robust_acc": "x"}), 2,
     ", line 4: robust_acc is not a number ('x')"),
    ("first-bad-line-named", csv_text({}, {"flags": "{"}, {"n": "x"}), 2, ", line 3: flags is not valid JSON "
     "(Expecting property name enclosed in double quotes)"),
    ("unclosed-quote", csv_text({}) + 'AT,"unclosed\n', 2, ", line 3: not a CSV record (unexpected end of data)"),
    ("duplicate-column", csv_text({}, header=(*results.COLUMNS, "label")), 2, ", line 1: column label appears twice"),
    ("empty-file", "", 2, ": not an srtbench results CSV (the file is empty)"),
    ("not-utf8", b"\xff\xfe\x00l\x00a", 2, ": not a readable results CSV (not UTF-8 text)"),
    ("another-schema", "epoch,loss\n1,0.5\n", 2,
     ": not an srtbench results CSV (missing columns label, attack, fraction, clean_acc, robust_acc, dataset)"),
]


@pytest.mark.parametrize("text, code, expected", [c[1:] for c in CSV_CASES], ids=[c[0] for c in CSV_CASES])
def test_results_csv_is_read_with_a_schema(tmp_path, text, code, expected):
    path = tmp_path / "r.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    out = run("table", path)
    assert out.exit_code == code, out.output
    if code:
        assert out.output == f"error: {path}{expected}\n"
    else:
        assert expected in out.output


@pytest.mark.parametrize("use", ["table", "existing_keys", "append", "plot"])
def test_a_malformed_row_stops_resume_and_plots_too(tmp_path, use):
    """Resuming an evaluation reads the CSV it appends to: a shifted row is refused there as well, and left as is."""
    path = tmp_path / "r.csv"
    path.write_text(csv_text({"attack": "pgd"}, without("robust_acc")))
    before = path.read_text()
    message = f"{path}, line 3: {FIELDS - 1} fields where the header has {FIELDS}"
    if use in ("table", "plot"):
        out = run(*(["table"] if use == "table" else ["plot", "budget", "--out", tmp_path / "f"]), path)
        assert out.exit_code == 2 and message in out.output and out.output.count("\n") == 1, out.output
    else:
        with pytest.raises(SrtbenchError, match=re.escape(message)):
            results.existing_keys(path) if use == "existing_keys" else results.append(path, [
                {"label": "AT", "attack": "fgsm", "fraction": 1.0, "dataset": "fashion-mnist", "clean_acc": 72.0,
                 "robust_acc": 63.4}])
    assert path.read_text() == before


def test_resume_still_reads_what_append_wrote(tmp_path):
    """A carriage return in a label once ended the record (the CSV writer quotes only fields with a newline)."""
    path = tmp_path / "r.csv"
    row = {**GOOD_ROW, "label": "A\x1b[2J\rT", **{c: json.loads(GOOD_ROW[c]) for c in results.JSON_COLUMNS}}
    results.append(path, [row])
    results.append(path, [{**row, "attack": "pgd"}])
    keys = {results.key(results.normalize_row({**row, "attack": a})) for a in ("fgsm", "pgd")}
    assert results.existing_keys(path) == keys
    frame = results.read(path)
    assert list(frame["label"]) == ["A T"] * 2 and list(frame["n"]) == [1000] * 2
    assert list(frame["robust_acc"]) == [63.4] * 2


# ---------------------------------------------------------------- one rounding rule

# (value, two decimals, one decimal): half up on the decimal digits as written, as the tables print them
ROUNDING = [(15.625, "15.63", "15.6"), (55.555, "55.56", "55.6"), (2.675, "2.68", "2.7"), (1.005, "1.01", "1.0"),
            (12.25, "12.25", "12.3"), (0.125, "0.13", "0.1"), (99.995, "100.00", "100.0"), (0.0, "0.00", "0.0")]


@pytest.mark.parametrize("value, two, one", ROUNDING)
def test_the_evaluate_report_rounds_as_the_table_does(value, two, one):
    assert tables.format_value(value, tables.Column("attack", "PGD")) == two
    row = {"robust_acc": value, "robust_ci_low": value, "robust_ci_high": value, "flags": {}, "budget": {},
           "budget_source": {}, "median_distance": "", "wall_time_s": 1.0}
    worst = {"robust_acc": value, "R_stand": value, "R_rob": value, "R_adv": value, "attacks": ["pgd"]}
    summary = SimpleNamespace(
        target=SimpleNamespace(label="AT", path="a.pt", dataset="fashion-mnist", defense="at", train_threat="pixel"),
        clean_acc=value, runs=[SimpleNamespace(row=row, attack="pgd", fraction=1.0)], worst={("pixel", 1.0): worst})
    text = report(summary)
    assert f"clean {two}%" in text
    attack_line = next(ln for ln in text.splitlines() if ln.startswith("pgd"))
    assert f" {two} " in attack_line and f"[{one}, {one}]" in attack_line
    worst_line = next(ln for ln in text.splitlines() if ln.startswith("pixel"))
    assert worst_line.split()[2:6] == [two] * 4


# ---------------------------------------------------------------- README's commands, as written

COMMAND = re.compile(r"srtbench (table|plot budget|plot unlabeled|plot threats)\b")
# commands whose input a README command that trains writes first (not on the shipped tree): what writes it
NEEDS_A_RUN = {"srtbench table results/fmnist/quick": "srtbench reproduce quick"}


def readme_commands() -> list[str]:
    """Every `srtbench table`/`plot budget`/`plot unlabeled`/`plot threats` line of README.md's code blocks, tables and
    text."""
    found, in_code = [], False
    for line in (REPO / "README.md").read_text().splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        spans = ([line.split(" # ")[0].strip()] if in_code
                 else [s.replace("\\|", "|") for s in re.findall(r"`([^`]+)`", line)])
        found += [s for s in spans if COMMAND.match(s)]
    return list(dict.fromkeys(found))


def shell_words(command: str) -> list[str]:
    """What bash passes: words split, `{a,b}` expanded, globs matched in the current folder (the repository as
    shipped, where README's commands run)."""
    words = []
    for word in shlex.split(command):
        braces = re.search(r"\{([^{}]*,[^{}]*)\}", word)
        expanded = [word[:braces.start()] + alt + word[braces.end():] for alt in braces.group(1).split(",")] \
            if braces else [word]
        for w in expanded:
            words += sorted(glob.glob(w)) or [w] if glob.has_magic(w) else [w]
    return words


def test_readme_holds_table_and_plot_commands():
    commands = readme_commands()
    assert len(commands) >= 5 and any("--compare paper" in c for c in commands)
    assert any(c.startswith("srtbench plot budget") for c in commands)


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_runs_as_written(command, tmp_path, monkeypatch):
    readme = (REPO / "README.md").read_text()
    if command in newcomer.COMMANDS:  # tests/test_newcomer.py runs it, after the demo, on the shipped tree
        return
    if command in NEEDS_A_RUN:  # README says, beside the command, what to run first
        assert any(NEEDS_A_RUN[command] in ln for ln in readme.splitlines() if f"`{command}`" in ln)
        return
    monkeypatch.chdir(shipped.tree())  # the tracked files, as a fresh clone holds them
    words = shell_words(command)[1:]
    if "--out" in words:  # outputs go to tmp_path
        i = words.index("--out") + 1
        words[i] = str(tmp_path / Path(words[i]).name)
    out = run(*words)
    assert out.exit_code == 0, out.output
    if words[0] == "plot":
        assert (tmp_path / f"{Path(words[words.index('--out') + 1]).name}.png").stat().st_size > 0
