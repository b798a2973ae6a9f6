"""Data: IDX/MNIST loaders, the MultiMNIST generator and the multitask batching interface."""

from alphavil.data.batching import Batch, MultiTaskData, SeparateInputData, SharedInputData

__all__ = ["Batch", "MultiTaskData", "SeparateInputData", "SharedInputData"]
