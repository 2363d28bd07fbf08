"""`--model robustbench:NAME`: a RobustBench model zoo entry (`--dataset`, `--threat-model`, default Linf), built by
`robustbench.utils.load_model` from its local model folder (`models/DATASET/THREAT/NAME.pt`), never downloaded;
its .pt pickles are read weights-only.  RobustBench models take images in [0, 1]."""

from __future__ import annotations

import difflib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from srtbench.errors import SrtbenchError
from srtbench.sources.base import SOURCES, Loaded, Request, library_call, missing, need

THREATS = ("Linf", "L2", "corruptions", "corruptions_3d")  # robustbench's ThreatModel values
DEFAULT_THREAT = "Linf"
DIR_ENV = "SRTBENCH_ROBUSTBENCH_DIR"  # its model folder, where --model-dir is not given (robustbench's ./models else)


@SOURCES.register("robustbench", syntax="robustbench:NAME", reads=("dataset", "threat_model", "model_dir"),
                  needs_dataset=True, summary="a RobustBench model zoo entry from its local model folder")
def load(request: Request) -> Loaded:
    rb = _import(request.spec)
    threat = request.threat_model or DEFAULT_THREAT
    try:
        dataset, threat_model = rb.BenchmarkDataset(request.dataset), rb.ThreatModel(threat)
    except ValueError:
        raise SrtbenchError(f"--model {request.spec}: RobustBench has no {request.dataset} models (its datasets: "
                            f"{', '.join(d.value for d in rb.BenchmarkDataset)})") from None
    threat_model = rb.ThreatModel(threat_model.value.replace("_3d", ""))  # one folder for both, as robustbench has
    entries = rb.all_models[dataset][threat_model]
    name = request.name
    if name not in entries:
        close = difflib.get_close_matches(name, list(entries), 3)
        raise SrtbenchError(f"--model {request.spec}: RobustBench has no {dataset.value} {threat_model.value} model "
                            f"{name!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    timm_name = f"{name.lower().replace('-', '_')}_{dataset.value.lower()}_{threat_model.value.lower()}"
    if rb.timm.is_model(timm_name):  # an entry robustbench registers in timm: timm's weights, taking [0, 1] as is
        from srtbench.sources.timm import build

        model, files, _ = build(request.spec, timm_name, rb.DATASET_CLASSES[dataset])
        return Loaded(model, files[0], files, name, str(request.dataset))
    root = Path(request.model_dir or os.environ.get(DIR_ENV) or "models").expanduser().absolute()
    path = root / dataset.value / threat_model.value / f"{name}.pt"
    ids = entries[name]["gdrive_id"]
    if ids is None:
        raise SrtbenchError(f"--model {request.spec}: RobustBench names no weights file for it")
    files = [Path(f"{path}_m{i}.pt") for i in range(len(ids))] if isinstance(ids, list) else [path]
    absent = [f for f in files if not f.is_file()]
    if absent:
        raise missing(request.spec, ", ".join(f.name for f in absent), path.parent,
                      f"fetch it where there is a network with robustbench.utils.load_model({name!r}, "
                      f"dataset={dataset.value!r}, threat_model={threat_model.value!r}) and copy models/, or point "
                      f"--model-dir or ${DIR_ENV} at it")
    model = library_call(request.spec, lambda: rb.load_model(name, str(root), dataset.value, threat_model.value))
    return Loaded(model.eval(), path, files, name, str(request.dataset))


def _import(spec: str) -> ModuleType:
    """robustbench, importable from PyPI alone: robustbench 1.1.1 imports `autoattack`, auto-attack's name in its git
    repository, and depends on PyPI's `pyautoattack`, the same package under another name; where the git one is
    absent, that name points at pyautoattack."""
    if importlib.util.find_spec("autoattack") is None and importlib.util.find_spec("pyautoattack") is not None:
        sys.modules["autoattack"] = need("pyautoattack", spec, "robustbench")
        sys.modules["autoattack.state"] = need("pyautoattack.state", spec, "robustbench")
    return need("robustbench.utils", spec, "robustbench")  # load_model and the names it uses
