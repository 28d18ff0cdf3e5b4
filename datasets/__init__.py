"""Datasets for convlstm-lab: a registry of radar, traffic and video data as xarray arrays.

>>> from datasets import get_dataset, list_datasets
>>> frames = get_dataset("moving_mnist", split="test")   # (sample, time, channel, y, x)
"""

from datasets.errors import DataNotFound, DatasetError
from datasets.registry import (
    DOMAINS,
    SPLITS,
    dataset_info,
    get_dataset,
    list_datasets,
    register,
    valid_mask,
)

__all__ = [
    "DOMAINS",
    "DataNotFound",
    "DatasetError",
    "SPLITS",
    "dataset_info",
    "get_dataset",
    "list_datasets",
    "register",
    "valid_mask",
]
