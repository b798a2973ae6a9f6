"""Encoders for images of any size and 1 or 3 channels (``data.name = "files"``,
:mod:`alphavil.data.files`): the paper's LeNet sized to the images, and a small CNN."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["LeNet", "small_cnn"]


class LeNet(nn.Module):
    """The paper's LeNet for any image size >= 16 and 1 or 3 channels: conv →10 k5, maxpool 2,
    ReLU, conv 10→20 k5, maxpool 2, ReLU, fc → 50, ReLU."""

    def __init__(self, channels: int, size: Sequence[int]) -> None:
        super().__init__()
        h, w = (((s - 4) // 2 - 4) // 2 for s in size)
        self.conv1 = nn.Conv2d(channels, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(20 * h * w, 50)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.pool(self.conv1(x)))
        x = torch.relu(self.pool(self.conv2(x)))
        return torch.relu(self.fc(x.flatten(1)))


def small_cnn(channels: int, hidden: int) -> nn.Sequential:
    """Three 3×3 conv blocks (16, 32, 64 channels), global average pooling, fc → hidden."""
    layers: list[nn.Module] = []
    width = channels
    for out in (16, 32, 64):
        layers += [nn.Conv2d(width, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
        width = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, hidden), nn.ReLU()]
    return nn.Sequential(*layers)
