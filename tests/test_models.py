import pytest
import torch

from srtbench.data import DATASETS
from srtbench.errors import SrtbenchError
from srtbench.models import MODELS, count_parameters, create_model


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist", "cifar10"])
@pytest.mark.parametrize("name", ["small-cnn", "resnet-spatial", "preact-resnet18"])
def test_output_shape_per_dataset(name, dataset):
    spec = DATASETS.get(dataset)
    model = create_model(name, spec.shape, spec.num_classes, spec.mean, spec.std).eval()
    assert model(torch.rand(3, *spec.shape)).shape == (3, 10)


def test_wrn_34_10_has_46m_parameters():
    # Zagoruyko & Komodakis: WRN-34-10 on CIFAR-10 has 46.2M parameters (TRADES' model: 46,160,474)
    assert count_parameters(create_model("wrn-34-10", (3, 32, 32), 10)) == 46_160_474


def test_small_cnn_matches_trades_architecture():
    # 4 conv (32, 32, 64, 64) + FC 1024-200-200-10: 312,202 parameters on 28x28 inputs
    model = create_model("small-cnn", (1, 28, 28), 10)
    assert count_parameters(model) == 312_202
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == 4
    assert sum(isinstance(m, torch.nn.Linear) for m in model.modules()) == 3


def test_resnet_spatial_has_three_groups_of_five_units():
    from srtbench.models import PreActBlock

    model = create_model("resnet-spatial", (3, 32, 32), 10)
    widths = [m.conv2.out_channels for m in model.modules() if isinstance(m, PreActBlock)]
    assert widths == [16] * 5 + [32] * 5 + [64] * 5


def test_normalization_lives_inside_the_model():
    spec = DATASETS.get("cifar10")
    model = create_model("preact-resnet18", spec.shape, 10, spec.mean, spec.std)
    first = model[0]
    x = torch.full((1, 3, 2, 2), 0.5)
    assert torch.allclose(first(x)[0, :, 0, 0], (0.5 - torch.tensor(spec.mean)) / torch.tensor(spec.std))


def test_unknown_model_is_a_one_line_error():
    with pytest.raises(SrtbenchError, match="unknown model 'vgg'.*small-cnn"):
        MODELS.get("vgg")
