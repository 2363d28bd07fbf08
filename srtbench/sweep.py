"""A user-defined experiment from a TOML file: defenses × threats × hyperparameter values × seeds, trained,
attacked with one attack list and shown in one table (`srtbench sweep FILE.toml`).

    name = "lambda"                  # runs/sweeps/NAME/ and results/sweeps/NAME/
    preset = "fmnist-pixel-cpu"      # optional: a paper setting the options below override
    defenses = ["at", "srt"]
    threats = ["pixel"]              # optional (default: the preset's, else pixel)
    seeds = [0, 1, 2]                # optional (default [0]); `--seeds` overrides
    [train]                          # options of every run, as `srtbench train DEFENSE --help` names them
    iterations = 400
    [grid]                           # every combination of these values; a defense runs only over the
    lambda = [0.5, 1.0]              #   options it reads (standard ignores λ: one run per seed)
    [evaluate]                       # `srtbench evaluate` options: attacks (a list or a comma string), n, ...
    attacks = ["fgsm", "pgd"]
    n = 1000
    [table]
    layout = "auto"                  # optional

The steps are `recipes.Step`s: `--dry-run` prints their commands, and they run one after another or on Ray
(`--jobs`) as a recipe's do, skipping what is finished.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srtbench import sources
from srtbench.errors import SrtbenchError
from srtbench.files import inside, safe_name
from srtbench.recipes import Step, TableJob, evaluate_step, parse_seeds, seed_suffix, train_step

KEYS = {"name", "preset", "defenses", "threats", "seeds", "train", "grid", "evaluate", "table"}
MAX_RUNS = 1000  # a larger sweep needs `--yes` (a typo in a grid can plan millions of runs)
# [evaluate] options that name code to import and run (`module:function`; `zoo:NAME` is srtbench's own, and a model
# source such as `hf_hub:ORG/NAME` reads weights only), and an attack's BPDA approximation
# (`pgd[bpda=module:function]`): the command line's to give, not a data file's
CODE_OPTIONS = ("model", "preprocess")
CODE_IN_ATTACKS = re.compile(r"bpda\s*=\s*[^,\]]*:")


@dataclass(frozen=True)
class Sweep:
    name: str
    defenses: tuple[str, ...]
    threats: tuple[str | None, ...] = (None,)  # None: the preset's threat
    seeds: tuple[int, ...] = (0,)
    preset: str | None = None
    train: tuple[tuple[str, Any], ...] = ()
    grid: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    evaluate: tuple[tuple[str, Any], ...] = ()
    layout: str = "auto"

    @property
    def runs(self) -> str:
        return f"runs/sweeps/{self.name}"

    @property
    def results(self) -> str:
        return f"results/sweeps/{self.name}"


def _field_names() -> dict[str, str]:
    """Every training option by field name and by flag name (`lambda` -> `lam`, `n-labeled` -> `n_labeled`)."""
    from srtbench.config import option_name
    from srtbench.recipes.jobs import _train_sections

    names = {}
    for cls in _train_sections().values():
        for f in dataclasses.fields(cls):
            names[f.name] = names[option_name(f)] = names[option_name(f).replace("-", "_")] = f.name
    return names


def _options(table: Any, where: str) -> list[tuple[str, Any]]:
    if not isinstance(table, dict):
        raise SrtbenchError(f"[{where}] must be a table of options, got {type(table).__name__}")
    names = _field_names()
    unknown = sorted(k for k in table if k not in names and k != "label")
    if unknown:
        raise SrtbenchError(f"[{where}] has no option {', '.join(unknown)} (see `srtbench train DEFENSE --help`)")
    if "seed" in table:  # one seed is not a sweep's: its runs would be named and tabled as seed 0
        raise SrtbenchError(f"[{where}] cannot set seed: list the training seeds as seeds = [0, 1, 2]")
    return [(names.get(k, k), tuple(v) if isinstance(v, list) else v) for k, v in table.items()]


def _names(spec: dict, key: str, path: str | Path, example: str) -> tuple[str, ...]:
    """A list of distinct names (defenses, threats)."""
    value = spec.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise SrtbenchError(f"{path}: {key} must be a list of names ({key} = {example})")
    twice = sorted({v for v in value if value.count(v) > 1})
    if twice:
        raise SrtbenchError(f"{path}: {key} lists {', '.join(twice)} twice")
    return tuple(value)


def _read(path: str | Path) -> dict:
    import tomllib

    from srtbench.files import open_regular

    try:
        with open_regular(path, "r", "sweep") as handle:
            return tomllib.loads(handle.read())
    except UnicodeDecodeError:
        raise SrtbenchError(f"cannot read sweep {path}: not UTF-8 text") from None
    except OSError as err:
        raise SrtbenchError(f"cannot read sweep {path}: {err.strerror or err}") from None
    except tomllib.TOMLDecodeError as err:
        raise SrtbenchError(f"{path} is not valid TOML: {err}") from None


def load(path: str | Path, allow_code: bool = False) -> Sweep:
    """A sweep file, checked before anything is planned.  It is shared like data, so it may not name code to run
    (`[evaluate] model = "module:function"`) unless `allow_code` (the command line's `--allow-code`)."""
    spec = _read(path)
    unknown = sorted(set(spec) - KEYS)
    if unknown:
        raise SrtbenchError(f"{path}: unknown keys {', '.join(unknown)} (a sweep has {', '.join(sorted(KEYS))})")
    name = str(spec.get("name") or Path(path).stem)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise SrtbenchError(f"{path}: name {name!r} must be letters, digits, '.', '_' or '-' (it names folders)")
    defenses = _names(spec, "defenses", path, '["at", "srt"]')
    threats = _names(spec, "threats", path, '["pixel"]') if "threats" in spec else (None,)
    from srtbench.defenses import DEFENSES
    from srtbench.presets import PRESETS
    from srtbench.tables import LAYOUTS

    for d in defenses:
        DEFENSES.get(d)  # one-line "unknown defense" error
    if spec.get("preset"):
        PRESETS.get(spec["preset"])
    grid = _options(spec.get("grid", {}), "grid")
    for key, values in grid:
        if not isinstance(values, tuple) or not values:
            raise SrtbenchError(f"{path}: [grid] {key} must be a non-empty list of values")
    evaluate = dict(spec.get("evaluate", {}))
    code = sorted(k for k in evaluate if k in CODE_OPTIONS and not str(evaluate[k]).startswith("zoo:")
                  and not (k == "model" and sources.find(str(evaluate[k]))))
    code += ["attacks (bpda=module:function)"] if CODE_IN_ATTACKS.search(str(evaluate.get("attacks", ""))) else []
    if code and not allow_code:
        raise SrtbenchError(f"{path}: [evaluate] {code[0]} names code to import and run; a sweep file may not, "
                            "unless the command line says --allow-code")
    attacks = evaluate.pop("attacks", None)
    if not attacks or not isinstance(attacks, (str, list)):
        raise SrtbenchError(f"{path}: [evaluate] needs attacks = [\"fgsm\", \"pgd\"]")
    evaluate["attacks"] = attacks if isinstance(attacks, str) else ",".join(map(str, attacks))
    table = spec.get("table", {})
    layout = table.get("layout", "auto") if isinstance(table, dict) else None
    LAYOUTS.get(str(layout))  # one-line "unknown layout" error
    return Sweep(name, defenses, threats, parse_seeds(spec.get("seeds", [0])),
                 spec.get("preset"), tuple(_options(spec.get("train", {}), "train")), tuple(grid),
                 tuple((k.replace("-", "_"), v) for k, v in evaluate.items()), str(layout))


def _point_name(options: Sequence[tuple[str, Any]]) -> str:
    from srtbench.recipes.jobs import _flag_value

    return "".join(f"-{k}{_flag_value(v)}" for k, v in options)


def size(sweep: Sweep, seeds: Sequence[int] | None = None) -> int:
    """Training runs the sweep plans at most (before defenses skip grid options they do not read)."""
    return math.prod([len(seeds or sweep.seeds), len(sweep.defenses), len(sweep.threats),
                      *(len(v) for _, v in sweep.grid)])


def plan(sweep: Sweep, seeds: Sequence[int] | None = None, yes: bool = False) -> list[Step]:
    """Per seed: every (defense, threat, grid point) trained and attacked; then one table over all of them.  Every
    run's options and every attack are checked here, before anything trains; more than MAX_RUNS runs need `yes`."""
    from srtbench.defenses import DEFENSES
    from srtbench.evaluate import EvalConfig

    runs = size(sweep, seeds)
    if runs > MAX_RUNS and not yes:
        raise SrtbenchError(f"sweep {sweep.name} plans up to {runs:,} training runs (more than {MAX_RUNS:,}): "
                            "add --yes if you mean it")
    evaluate = dict(sweep.evaluate)
    attacks = [a.strip() for a in _split(evaluate.pop("attacks"))]
    names = {f.name for f in dataclasses.fields(EvalConfig)} - {"attacks", "out"}
    unknown = sorted(set(evaluate) - names)
    if unknown:
        raise SrtbenchError(f"[evaluate] has no option {', '.join(unknown)} (see `srtbench evaluate --help`)")
    steps: list[Step] = []
    csvs: list[str] = []
    skipped: set[str] = set()
    varied = len(sweep.threats) > 1 or any(k != "lam" for k, _ in sweep.grid)
    for seed in seeds or sweep.seeds:
        for defense in sweep.defenses:
            reads = DEFENSES.get(defense).params
            axes = [(k, v) for k, v in sweep.grid if k not in dict(_param_fields()) or k in reads]
            for threat in sweep.threats:
                if threat is not None and not DEFENSES.get(defense).accepts(threat):
                    skipped.add(f"{defense} against {threat}")
                    continue
                for values in itertools.product(*(v for _, v in axes)):
                    point = list(zip((k for k, _ in axes), values))
                    # grid values are data: kept to safe characters, and the run's files inside the sweep's folders
                    stem = safe_name(f"{defense}{'-' + threat if threat else ''}{_point_name(point)}")
                    out = str(inside(sweep.runs, f"{sweep.runs}/{stem}{seed_suffix(seed)}.pt", "run"))
                    options = [*(("threat", threat),) * (threat is not None), *sweep.train, *point]
                    if varied and "label" not in dict(options):
                        options.append(("label", _label(defense, out, sweep.preset, options, threat, point)))
                    if seed:
                        options.append(("seed", seed))
                    steps.append(_checked(train_step(defense, out, sweep.preset, options)))
                    csv = str(inside(sweep.results, f"{sweep.results}/{stem}{seed_suffix(seed)}.csv", "results"))
                    csvs.append(csv)
                    steps.append(evaluate_step((out,), csv, attacks, **evaluate))
    if skipped:
        from srtbench.runtime import notice

        notice(f"sweep {sweep.name}: skipped what the defenses do not train: {', '.join(sorted(skipped))}")
    if not csvs:
        raise SrtbenchError(f"sweep {sweep.name}: no defense trains against {', '.join(map(str, sweep.threats))}")
    _check_unique([s.output for s in steps if s.kind == "train"], sweep.name)
    _check_attacks(attacks, steps)
    steps.append(Step(TableJob(tuple(csvs), sweep.layout, f"{sweep.results}/{sweep.name}.md",
                               title=f"Sweep {sweep.name}: accuracy (%)")))
    return steps


def _checked(step: Step) -> Step:
    """A training step whose options all build (types, ranges, what the defense reads), checked at plan time."""
    step.job.build()
    return step


def _check_unique(outs: Sequence[str], name: str) -> None:
    twice = sorted({o for o in outs if outs.count(o) > 1})
    if twice:  # two runs writing one file (side by side under --jobs) would corrupt it
        raise SrtbenchError(f"sweep {name}: two runs would write {twice[0]} (grid values that read the same as a "
                            "file name, such as 'a/b' and 'a_b')")


def _check_attacks(attacks: Sequence[str], steps: Sequence[Step]) -> None:
    """Every attack spec resolves on every dataset the sweep trains on (names, options, value types)."""
    from srtbench.attacks import parse

    for dataset in dict.fromkeys(s.job.build().data.dataset for s in steps if s.kind == "train"):
        for spec in attacks:
            parse(spec, dataset)


def _split(attacks: str) -> list[str]:
    from srtbench.attacks import split_specs

    return split_specs(attacks)


def _param_fields() -> list[tuple[str, Any]]:
    from srtbench.defenses import DefenseParams

    return [(f.name, f) for f in dataclasses.fields(DefenseParams)]


def _label(defense: str, out: str, preset: str | None, options: Sequence[tuple[str, Any]], threat: str | None,
           point: Sequence[tuple[str, Any]]) -> str:
    """The defense's own row name, with the threat and the grid values that tell the sweep's runs apart."""
    from srtbench.defenses import DEFENSES
    from srtbench.recipes.jobs import TrainJob, _flag_value

    run = TrainJob(defense, out, preset, tuple(options)).build()
    d = DEFENSES.get(defense)
    base = d.label(d.resolve(run.params, run.threat.threat, run.data.dataset, run.threat.epsilon), run.threat.threat)
    extra = [threat] if threat else []
    extra += [f"{k} {_flag_value(v)}" for k, v in point if k != "lam"]
    return f"{base} [{', '.join(extra)}]" if extra else base
