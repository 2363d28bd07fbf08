"""Model zoo (registry).  Every model takes inputs in [0, 1]; normalization lives inside the model,
so neighborhoods and attacks work in pixel space."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from srtbench.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


class Normalize(nn.Module):
    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x):
        return (x - self.mean) / self.std


def create_model(
    name: str,
    in_shape: tuple[int, int, int],
    num_classes: int,
    mean: tuple[float, ...] = (0.0,),
    std: tuple[float, ...] = (1.0,),
) -> nn.Module:
    """The one entry point: a registered body behind an in-model normalization layer."""
    body = MODELS.get(name)(in_shape=in_shape, num_classes=num_classes)
    if all(m == 0.0 for m in mean) and all(s == 1.0 for s in std):
        return body
    return nn.Sequential(Normalize(mean, std), body)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@MODELS.register("small-cnn", source="TRADES (Zhang et al. 2019) MNIST model: 4 conv + 3 FC")
class SmallCNN(nn.Module):
    def __init__(self, in_shape=(1, 28, 28), num_classes=10, drop: float = 0.5):
        super().__init__()
        c, h, w = in_shape
        self.features = nn.Sequential(
            nn.Conv2d(c, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        )
        flat = 64 * (((h - 4) // 2 - 4) // 2) * (((w - 4) // 2 - 4) // 2)
        self.classifier = nn.Sequential(
            nn.Linear(flat, 200), nn.ReLU(), nn.Dropout(drop),
            nn.Linear(200, 200), nn.ReLU(), nn.Linear(200, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


# ---------------------------------------------------------------- residual networks


class PreActBlock(nn.Module):
    """Pre-activation residual unit (He et al. 2016), shared by WRN and the spatial ResNet."""

    def __init__(self, cin: int, cout: int, stride: int, drop: float = 0.0):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.drop = drop
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        out = torch.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = torch.relu(self.bn2(out))
        if self.drop:
            out = nn.functional.dropout(out, self.drop, self.training)
        return self.conv2(out) + skip


class ResidualStack(nn.Module):
    """Stem conv, groups of pre-activation units, BN-ReLU, global pooling, linear head."""

    def __init__(self, in_ch: int, widths: list[int], units: list[int], strides: list[int], num_classes: int):
        super().__init__()
        self.stem = nn.Conv2d(in_ch, widths[0], 3, 1, 1, bias=False)
        layers, cin = [], widths[0]
        for width, n, stride in zip(widths[1:], units, strides):
            for i in range(n):
                layers.append(PreActBlock(cin, width, stride if i == 0 else 1))
                cin = width
        self.blocks = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        out = torch.relu(self.bn(self.blocks(self.stem(x))))
        return self.fc(nn.functional.adaptive_avg_pool2d(out, 1).flatten(1))


@MODELS.register("wrn-34-10", source="Zagoruyko & Komodakis 2016; the paper's pixel-wise CIFAR-10 model")
def wide_resnet_34_10(in_shape=(3, 32, 32), num_classes=10):
    n = (34 - 4) // 6  # 5 units per group
    return ResidualStack(in_shape[0], [16, 160, 320, 640], [n, n, n], [1, 2, 2], num_classes)


@MODELS.register("resnet-spatial", source="Section 4.1: 4 groups of filters [16, 16, 32, 64], 5 units each")
def resnet_spatial(in_shape=(3, 32, 32), num_classes=10):
    return ResidualStack(in_shape[0], [16, 16, 32, 64], [5, 5, 5], [1, 2, 2], num_classes)


class PreActResNet18(nn.Module):
    """PreAct ResNet-18 (He et al. 2016), the usual model of fast adversarial training (Wong et al. 2020)."""

    def __init__(self, in_shape=(3, 32, 32), num_classes=10):
        super().__init__()
        self.stem = nn.Conv2d(in_shape[0], 64, 3, 1, 1, bias=False)
        layers, cin = [], 64
        for width, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers += [PreActBlock(cin, width, stride), PreActBlock(width, width, 1)]
            cin = width
        self.blocks = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(512)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        out = torch.relu(self.bn(self.blocks(self.stem(x))))
        return self.fc(nn.functional.adaptive_avg_pool2d(out, 1).flatten(1))


MODELS.register("preact-resnet18", source="He et al. 2016; Wong et al. 2020 fast AT")(PreActResNet18)
