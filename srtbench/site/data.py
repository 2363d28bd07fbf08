"""What the site shows, assembled from results rows: the cards, one leaderboard per dataset × threat (a run trained
at several seeds one entry, mean ± std), the models (one page each), the paper's tables beside ours, the notes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from srtbench import cards as model_cards
from srtbench import measurements
from srtbench.data import display_name
from srtbench.errors import SrtbenchError
from srtbench.files import inside, unique_name
from srtbench.runtime import notice
from srtbench.tables import LAYOUTS, Table, build, distinguish_models
from srtbench.tables.seeds import aggregate_seeds

Card = dict[str, Any]


@dataclass
class Stat:
    """A leaderboard number: one model's value, or the mean over a run's seeds with their standard deviation."""

    value: float | None
    spread: float | None = None

    @classmethod
    def of(cls, values: list[float | None]) -> Stat:
        known = [float(v) for v in values if v is not None]
        if len(known) < 2:
            return cls(known[0] if known else None)
        mean = sum(known) / len(known)
        return cls(mean, math.sqrt(sum((v - mean) ** 2 for v in known) / (len(known) - 1)))


def headline(card: Card) -> tuple[float | None, str]:
    """A card's robust accuracy as the leaderboard ranks it: AutoAttack's where it ran, else the strongest attack's,
    and that attack's header."""
    if card["autoattack_acc"] is not None:
        return card["autoattack_acc"], "AutoAttack"
    strongest = card["strongest_attack"]
    return (strongest["robust_acc"], strongest["header"]) if strongest else (None, "")


@dataclass
class Entry:
    """One leaderboard row: the cards of one model (a run's seeds: one card each) under one dataset and threat."""

    name: str
    cards: list[Card]
    seeds: list[int] = field(default_factory=list)  # the training seeds averaged, where several

    def stat(self, get) -> Stat:
        return Stat.of([get(c) for c in self.cards])

    @property
    def headline_attacks(self) -> str:
        return ", ".join(dict.fromkeys(h for _, h in map(headline, self.cards) if h))

    def reported(self) -> tuple[float | None, str]:
        """The paper's number for the headline attack, and where it is printed ("Table 4, MNIST")."""
        attack = "autoattack" if self.cards[0]["autoattack_acc"] is not None else \
            (self.cards[0]["strongest_attack"] or {}).get("attack")
        for entry in self.cards[0]["reported"]:
            if attack in entry["robust_acc"]:
                where = f"{entry['table'].replace('table', 'Table ')}, {display_name(entry['dataset'])}"
                return entry["robust_acc"][attack], where
        return None, ""

    def flags(self) -> dict[str, str]:
        """Every flag of its cards: WARN where any card warns."""
        out: dict[str, str] = {}
        for card in self.cards:
            for name, flag in card["flags"].items():
                out[name] = "WARN" if "WARN" in (out.get(name), flag["status"]) else "PASS"
        return out


@dataclass
class Board:
    dataset: str
    threat: str
    entries: list[Entry]

    @property
    def title(self) -> str:
        return f"{display_name(self.dataset)}: {model_cards.threat_name(self.threat)}"


@dataclass
class Model:
    """One page: a checkpoint's cards on one dataset (a card per threat), and its file in the site."""

    name: str
    cards: list[Card]
    page: str = ""
    card_files: list[str] = field(default_factory=list)  # its cards' JSON files, in the site's cards/ folder


@dataclass
class Site:
    cards: list[Card]
    boards: list[Board]
    models: list[Model]
    paper_tables: list[Table]
    notes: list[str]

    def page_of(self, card: Card) -> str:
        return next(m.page for m in self.models if any(c is card for c in m.cards))


def _entry_names(ours: pd.DataFrame) -> dict[tuple[str, str], tuple[str, str, int | None]]:
    """(model identity, dataset) -> (entry key, entry name, training seed): the tables' rows, a run trained at
    several seeds one of them (`aggregate_seeds`), named as the tables name them (`distinguish_models`)."""
    merged, _ = aggregate_seeds(ours)
    merged = distinguish_models(merged)
    out = {}
    for _, row in merged.iterrows():
        members = row.get("seed_rows")
        members = members if isinstance(members, tuple) else ((None, row),)
        for seed, member in members:
            out[(measurements.identity(member), str(row["dataset"]))] = (measurements.identity(row), str(row["label"]),
                                                                         seed)
    return out


def _key(card: Card) -> tuple[str, str]:
    return (str(card["source"]["sha256"] or card["source"]["checkpoint"]), card["dataset"])


def boards(cards: list[Card], names: dict[tuple[str, str], tuple[str, str, int | None]]) -> list[Board]:
    """One board per dataset × threat (in the cards' order), its entries by headline accuracy, best first."""
    found: dict[tuple[str, str], dict[str, Entry]] = {}
    for card in cards:
        key, name, seed = names.get(_key(card), (_key(card)[0], card["row_name"], None))
        entry = found.setdefault((card["dataset"], card["threat"]), {}).setdefault(key, Entry(name, []))
        entry.cards.append(card)
        entry.seeds += [seed] if seed is not None else []
    out = []
    for (dataset, threat), entries in found.items():
        for entry in entries.values():  # a run's seeds in order
            if len(entry.seeds) == len(entry.cards) > 1:
                entry.seeds, entry.cards = map(list, zip(*sorted(zip(entry.seeds, entry.cards), key=lambda p: p[0])))
        values = {id(e): e.stat(lambda c: headline(c)[0]).value for e in entries.values()}
        ranked = sorted(entries.values(), key=lambda e: math.inf if values[id(e)] is None else -values[id(e)])
        out.append(Board(dataset, threat, ranked))
    return out


def models(cards: list[Card]) -> list[Model]:
    found: dict[tuple[str, str], Model] = {}
    for card in cards:
        found.setdefault(_key(card), Model(card["row_name"], [])).cards.append(card)
    taken: set[str] = set()
    for model in found.values():
        model.page = unique_name(f"models/{model_cards.file_stem(model.cards[0], threat=False)}.html", taken)
        model.card_files = [unique_name(model_cards.card_filename(c), taken) for c in model.cards]
    return list(found.values())


def paper_tables(ours: pd.DataFrame, paper: pd.DataFrame) -> list[Table]:
    """Every paper layout our rows fill, each cell ours / the paper's (Δ) (`tables.build` with a reference)."""
    if paper.empty:
        return []
    out = []
    for name in LAYOUTS.names():
        layout = LAYOUTS.get(name)
        if layout.paper:
            try:
                out.append(build(ours, layout, paper))
            except SrtbenchError:  # our rows hold nothing of this table
                continue
    return out


def training_metrics(card: Card) -> pd.DataFrame | None:
    """The trainer's metrics beside the card's checkpoint (`CKPT.metrics.csv`, as `srtbench train` writes it), where
    the checkpoint's path (as evaluate recorded it, relative to the current folder) leads to one inside the current
    folder; None where there is none (a note where one is unreadable)."""
    from srtbench.plots import read_metrics

    checkpoint = str(card["source"]["checkpoint"] or "")
    if not checkpoint.endswith(".pt"):
        return None
    path = Path(checkpoint).with_suffix(".metrics.csv")
    try:
        inside(Path.cwd(), path, "metrics")
    except SrtbenchError:
        return None  # a path recorded elsewhere, or one that climbs out: not read
    if not path.is_file():
        return None
    try:
        return read_metrics(path, ("epoch",))
    except SrtbenchError as err:
        notice(f"training curves of {card['name']} left out: {err}")
        return None


def assemble(frame: pd.DataFrame, reference: pd.DataFrame | None = None) -> Site:
    """The site of results rows (`results.collect`); `reference`: the paper's numbers (`tables.reference_results`)."""
    cards = model_cards.build_cards(frame, reference)
    ours = frame[~model_cards.published(frame)]
    paper = model_cards.published_rows(frame, reference)
    picked, notes = measurements.pick(ours)
    return Site(cards, boards(cards, _entry_names(picked)), models(cards), paper_tables(ours, paper), notes)
