"""The paper's MultiMNIST LeNet (αVIL §4.1, Figure 2; after Sener & Koltun 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from alphavil.models.multihead import MultiHeadModel
from alphavil.tasks import Task


class LeNetEncoder(nn.Module):
    """conv 1→10 k5, maxpool 2, ReLU, conv 10→20 k5, maxpool 2, ReLU, fc 320→50, ReLU.

    No dropout: the αVIL paper states "Dropout is not used" (§4.1). Input: ``(B, 1, 28, 28)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(320, 50)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.pool(self.conv1(x)))  # (B, 10, 12, 12)
        x = torch.relu(self.pool(self.conv2(x)))  # (B, 20, 4, 4)
        return torch.relu(self.fc(x.flatten(1)))  # (B, 50)


def multi_lenet(
    tasks: Sequence[str | Task] = ("left", "right"), num_classes: int = 10
) -> MultiHeadModel:
    """The shared LeNet encoder with one linear head per task (paper §4.1).

    A :class:`~alphavil.tasks.Task` gets a 50→``task.num_outputs`` head; a bare name gets
    50→``num_classes``.
    """
    heads = {
        t.name if isinstance(t, Task) else t: nn.Linear(
            50, t.num_outputs if isinstance(t, Task) else num_classes
        )
        for t in tasks
    }
    return MultiHeadModel(LeNetEncoder(), heads)
