"""A built table as data: its `Cell`s, `Row`s, `Group`s (one per dataset) and the `Table` that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field

from srtbench.tables.layouts import Column


@dataclass
class Cell:
    value: float | str | None  # a string only where the source prints no number (Table 9's "10,94")
    reference: float | str | None = None
    spread: float | None = None  # the standard deviation over training seeds, where `value` is their mean
    note: str | None = None  # where `value` is a fallback, what it is instead: one note under the table


@dataclass
class Row:
    label: str
    cells: list[Cell]


@dataclass
class Group:
    dataset: str
    rows: list[Row]
    reference_dataset: str | None = None


@dataclass
class Table:
    title: str
    columns: list[Column]
    groups: list[Group]
    compared: bool = False
    notes: list[str] = field(default_factory=list)

    def cell(self, dataset: str, label: str, header: str) -> Cell:
        """Test and script helper: the cell of a row label and column header."""
        col = [c.header for c in self.columns].index(header)
        for g in self.groups:
            if g.dataset == dataset:
                for r in g.rows:
                    if r.label == label:
                        return r.cells[col]
        raise KeyError((dataset, label, header))
