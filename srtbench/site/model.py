"""A model's page: its card (training facts and provenance from the rows), then per threat every attack row with its
95% interval, settings and cost, the flags with their details, and the budget and training curves where the
results hold them."""

from __future__ import annotations

import pandas as pd

from srtbench.files import safe_name
from srtbench.plots import TRAINING_PANELS
from srtbench.site.charts import line_chart
from srtbench.site.data import Card, Model, headline, training_metrics
from srtbench.site.markup import badge, budget, cell, facts, link, number, page, settings_text, table, text, whole
from srtbench.site.pages import flag_badges

ATTACK_HEADERS = ("Attack", "Fraction", "Settings", "Budget", "n", "Clean", "Robust", "95% CI low", "95% CI high",
                  "Mean distance", "Forward / example", "Backward / example", "Wall s", "Peak MiB", "Device", "Flags")


def _code(value) -> str:
    return f"<code>{text(value)}</code>" if value not in (None, "") else "–"


def _training_facts(card: Card) -> list[tuple[str, str]]:
    t = card["training"]
    unlabeled = "–" if t["unlabeled"] is None else f"{t['unlabeled']:,}" + (" (additional data)" if
                                                                           t["additional_data"] else "")
    return [("Defense", text(t["defense"] or "–")), ("Defense settings", text(settings_text(t["defense_params"]))),
            ("Trained against", text(f"{t['threat'] or '–'} {settings_text(t['budget'])}")),
            ("Labeled examples", "–" if t["labeled"] is None else f"{t['labeled']:,}"),
            ("Unlabeled examples", text(unlabeled)), ("Training seed", text(t["seed"] if t["seed"] is not None
                                                                             else "–")),
            ("Preset", text(t["preset"] or "–")),
            ("Training time", "–" if t["time_s"] is None else text(f"{t['time_s'] / 60:.1f} min"))]


def _card_facts(model: Model, cards_dir: str) -> str:
    card = model.cards[0]
    jsons = " ".join(link(f"../{cards_dir}/{name}", name) for name in model.card_files)
    pairs = [("Name", text(card["name"])), ("Checkpoint", _code(card["source"]["checkpoint"])),
             ("SHA-256", _code(card["source"]["sha256"])), ("Architecture", text(card["architecture"] or "–")),
             ("Dataset", text(card["dataset_name"])), *_training_facts(card),
             ("Evaluated", text(max((c["evaluated"] or "–" for c in model.cards), default="–"))),
             ("srtbench version", text(card["srtbench_version"] or "–")), ("Git commit", _code(card["git_commit"])),
             ("Results files", " ".join(_code(s) for s in card["source"]["results"]) or "–"),
             ("Cards (JSON)", jsons or "–")]
    return facts(pairs)


def _per_example(entry: dict, key: str) -> float | None:
    return entry[key] / entry["n"] if entry[key] is not None and entry["n"] else None


def _attack_row(entry: dict) -> str:
    flags = {name: "PASS" if f.get("status") == "PASS" else "WARN" for name, f in entry["flags"].items()}
    low, high = entry["ci95"]
    cells = [cell(entry["header"]), number(entry["fraction"], digits=2),
             cell(settings_text(entry["settings"]), cls="settings"), cell(budget(entry["budget"])), whole(entry["n"]),
             number(entry["clean_acc"]), number(entry["robust_acc"]), number(low), number(high),
             number(entry["mean_distance"], digits=4),
             number(_per_example(entry, "forward_passes"), digits=1),
             number(_per_example(entry, "backward_passes"), digits=1), number(entry["wall_time_s"], digits=1),
             number(entry["peak_memory_mb"], digits=0), cell(entry["device"] or "–"),
             f'<td data-value="{sum(s == "WARN" for s in flags.values())}">{flag_badges(flags)}</td>']
    return (f'<tr data-attack="{text(entry["attack"])}" data-fraction="{entry["fraction"]!r}">' + "".join(cells) +
            "</tr>")


def _flag_rows(card: Card) -> list[str]:
    return [f'<tr><td>{text(name)}</td><td data-value="{flag["status"]}">{badge(flag["status"], flag["status"])}'
            f'</td>{cell(", ".join(flag["warned_by"]))}{cell("; ".join(flag["details"]))}</tr>'
            for name, flag in sorted(card["flags"].items(), key=lambda kv: (kv[1]["status"] != "WARN", kv[0]))]


def budget_curve(card: Card) -> str:
    """Accuracy against the budget fraction per attack run at several (fraction 0: the clean accuracy), as
    `srtbench plot budget` draws it; empty where no attack was."""
    series = []
    for attack in dict.fromkeys(e["attack"] for e in card["attacks"]):
        rows = sorted((e for e in card["attacks"] if e["attack"] == attack and e["robust_acc"] is not None),
                      key=lambda e: e["fraction"])
        points = {e["fraction"]: e["robust_acc"] for e in rows}
        if len(points) < 2:
            continue
        if 0.0 not in points and rows[0]["clean_acc"] is not None:
            points = {0.0: rows[0]["clean_acc"], **points}
        series.append((rows[0]["header"], list(points), list(points.values())))
    return line_chart(series, f"{card['dataset_name']}, {card['threat_name']}: accuracy by budget",
                      "perturbation fraction", "accuracy (%)", (0, 100)) if series else ""


def training_curves(card: Card) -> str:
    """Loss terms and accuracies per epoch from the trainer's metrics, where the results lead to them."""
    metrics = training_metrics(card)
    if metrics is None:
        return ""
    charts = []
    for panel, columns in TRAINING_PANELS.items():
        number = lambda column: pd.to_numeric(metrics[column], errors="coerce").tolist()  # noqa: E731
        series = [(c, number("epoch"), number(c)) for c in columns if c in metrics.columns and metrics[c].notna().any()]
        charts.append(line_chart(series, f"training: {panel}", "epoch", panel) if series else "")
    return "\n".join(f"<figure>{c}</figure>" for c in charts if c)


def _threat_section(card: Card) -> str:
    value, attack = headline(card)
    summary = [("Budget", text(budget(card["budget"]))),
               ("Clean", text(_percent(card["clean_acc"]))),
               ("AutoAttack", text(_percent(card["autoattack_acc"]))),
               ("Strongest attack", text(f"{attack}: {_percent(value)}" if value is not None else "–")),
               ("Worst case per example", text(_percent(card["worst_case_acc"]))),
               ("Reported by the paper", text("; ".join(
                   f"{r['table']} ({r['label']}, {r['dataset']}): " + ", ".join(
                       f"{a} {_percent(v)}" for a, v in r["robust_acc"].items()) for r in card["reported"]) or "–")),
               ("Forward / backward passes", text(f"{card['forward_passes'] or '–'} / "
                                                  f"{card['backward_passes'] or '–'}"))]
    parts = [f'<h2 id="{safe_name(card["threat"])}">{text(card["threat_name"])}</h2>', facts(summary),
             table(ATTACK_HEADERS, [_attack_row(e) for e in card["attacks"]], caption="Attacks", cls="attacks"),
             table(("Flag", "Status", "Warned by", "Details"), _flag_rows(card), caption="Sanity flags", cls="flags")]
    curve = budget_curve(card)
    if curve:
        parts.append(f"<figure>{curve}<figcaption>{text('Fraction 0 is the clean accuracy.')}</figcaption></figure>")
    return "\n".join(parts)


def _percent(value: float | None) -> str:
    from srtbench.tables import fixed

    return "–" if value is None else f"{fixed(value)}%"


def model_page(model: Model, cards_dir: str = "cards") -> str:
    body = [_card_facts(model, cards_dir), *map(_threat_section, model.cards)]
    curves = training_curves(model.cards[0])
    if curves:
        body += ["<h2>Training</h2>", curves]
    return page(model.name, "\n".join(body), depth=1)
