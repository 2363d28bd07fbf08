"""`--model torchvision:NAME[.WEIGHTS]`: a torchvision classification model with its pretrained weights (DEFAULT
unless named, e.g. `resnet50.IMAGENET1K_V2`) from torch hub's local folder ($TORCH_HOME/hub/checkpoints), behind the
normalization of its weights' transforms so that it takes images in [0, 1]."""

from __future__ import annotations

from srtbench.errors import SrtbenchError
from srtbench.sources.base import SOURCES, Loaded, Request, library_call, missing, need, normalized, torch_hub_file


@SOURCES.register("torchvision", syntax="torchvision:NAME", reads=("dataset",), needs_dataset=True,
                  summary="torchvision's pretrained weights from torch hub's folder, with their normalization")
def load(request: Request) -> Loaded:
    models = need("torchvision.models", request.spec, "hub")
    arch, _, tag = request.name.partition(".")
    if arch not in models.list_models(module=models):
        raise SrtbenchError(f"--model {request.spec}: torchvision has no classification model {arch!r} (see "
                            "torchvision.models.list_models())")
    enum = models.get_model_weights(arch)
    try:
        weights = enum[tag or "DEFAULT"]
    except KeyError:
        raise SrtbenchError(f"--model {request.spec}: {arch} has no weights {tag!r}; it has "
                            f"{', '.join(w.name for w in enum)}") from None
    file = torch_hub_file(weights.url)
    if not file.is_file():
        raise missing(request.spec, file.name, file.parent, f"download {weights.url} there where there is a network, "
                      "or point TORCH_HOME at a copy")
    # the builder reads the file (torch.hub finds it in place) and renames old keys where an architecture needs it
    model = library_call(request.spec, lambda: models.get_model(arch, weights=weights))
    preprocess = weights.transforms()
    return Loaded(normalized(model, preprocess.mean, preprocess.std), file, [file], f"{arch}.{weights.name}",
                  str(request.dataset))
