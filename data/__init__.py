"""Datasets. Embedded: `digits` (default) and `rhm`; both need no download."""

from data.registry import DATASETS, Dataset, load_dataset

__all__ = ["DATASETS", "Dataset", "load_dataset"]
