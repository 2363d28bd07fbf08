"""Results CSVs pivoted into the paper's tables (Tables 1-6, 8, 9) or into whatever the CSVs hold (`auto`).

A `Layout` is plain data: the rows (the paper's row names, in its order), the attacks of its columns
(after "Clean", in its order), whether it has a "Time (mins)" column, and the paper table it mirrors.
`build` turns results rows into a `Table` (one group per dataset, cells as numbers, "–" where a
result is missing); `render` writes it as markdown, LaTeX, CSV or a rich text table, with the best
value of each column and dataset in bold.  Numbers are shown exactly as in the CSVs, rounded to two
decimals as in the paper.

The "Worst case" column is the per-example worst case over the table's attacks: an example counts as
robust only if every attack failed on it (read from the per-example side files; "–" where any is missing).
The `threats` layout is a robustness profile: per model the same worst case under each threat group, headed by its
budget, then their mean and minimum.

One concept a module, each importing only those above it:
layouts (Column, Layout, LAYOUTS) and model (Cell, Row, Group, Table); labels (a row name per model),
seeds (training seeds), worst (the "Worst case" column), rows (a layout's rows and their cells);
profile (the threat profile's columns and cells); paper (the paper's reference numbers); significance (each row
tested against one: McNemar per seed, Welch over seeds); pivot (`build`);
formatting (numbers as printed), formats (`render`); sanity (the sanity-flags table, `flags`); compute (the compute
behind each row, `cost`).  This package only
re-exports what callers use.
"""

from srtbench.tables import profile  # noqa: F401  (registers the threat profile's column set and cells)
from srtbench.tables.compute import cost
from srtbench.tables.formats import FORMATS, render, to_markdown
from srtbench.tables.formatting import fixed, format_value
from srtbench.tables.labels import distinguish_models
from srtbench.tables.layouts import LAYOUTS, Column, Layout
from srtbench.tables.model import Cell, Group, Row, Table
from srtbench.tables.paper import PAPER_DIR, reference_results
from srtbench.tables.pivot import build
from srtbench.tables.sanity import flags

__all__ = ["FORMATS", "LAYOUTS", "PAPER_DIR", "Cell", "Column", "Group", "Layout", "Row", "Table",
           "build", "cost", "distinguish_models", "fixed", "flags", "format_value", "reference_results", "render",
           "to_markdown"]
