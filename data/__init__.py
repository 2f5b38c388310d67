"""Datasets. Embedded (no download): `digits` (default), `rhm`, `mnist5k`, `mnist1d`. Read from
--data-dir: mnist, fashion-mnist, cifar10, cifar100, stl10, tiny-imagenet (data/disk.py)."""

from hilt.data.dataset import Dataset
from hilt.data.registry import DATASETS, load_dataset

__all__ = ["DATASETS", "Dataset", "load_dataset"]
