"""Image augmentations with torchvision.transforms.v2, per image, on batches of `xp` arrays.

- `crop-flip` (Høier & Zach 2024, §6.2): zero-pad 4, random crop back to H x W, horizontal flip with p = 0.5.
- SimCLR views (as CLAPP++ uses them, Wu et al. 2026): RandomResizedCrop, flip, colour jitter (p 0.8), grayscale (p 0.2),
  Gaussian blur (p 0.5), applied to [0, 1] pixels: a normalised batch is un-normalised first and
  normalised again after.

v2 draws one set of random parameters per call, so every image gets its own call. The draws come
from torch's CPU generator, seeded from the caller's numpy Generator inside `fork_rng`, so a run's
`--seed` fixes them and nothing else's torch RNG moves. Arrays cross to torch through DLPack: a
CuPy batch stays on its GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hilt.analog import backend

AUGMENTS = ("none", "crop-flip")


@dataclass(frozen=True)
class SimCLRSpec:
    size: int
    scale: tuple[float, float]
    blur_kernel: int


# SimCLR's: crop size and scale, blur kernel int(0.1 * size) made odd
SIMCLR = {32: SimCLRSpec(32, (0.25, 1.0), 3), 96: SimCLRSpec(96, (0.08, 1.0), 9), 64: SimCLRSpec(64, (0.08, 1.0), 7)}


def simclr_spec(size: int) -> SimCLRSpec:
    """The paper's spec for its image sizes, else CIFAR's scale with the blur kernel from the size."""
    k = int(0.1 * size)
    return SIMCLR.get(size, SimCLRSpec(size, (0.25, 1.0), max(1, k + (k % 2 == 0))))


def _per_image(x, transform, rng: np.random.Generator):
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**63 - 1)))
        images = torch.from_dlpack(backend.xp().ascontiguousarray(x))
        out = torch.stack([transform(img) for img in images])
    return backend.xp().from_dlpack(out.contiguous())


def crop_flip(x, rng: np.random.Generator, padding: int = 4):
    """Each image of (B, C, H, W) zero-padded by 4, randomly cropped back to H x W and flipped
    horizontally with p = 0.5 (seeded by rng)."""
    from torchvision.transforms import v2

    H, W = x.shape[-2:]
    return _per_image(x, v2.Compose([v2.RandomCrop((H, W), padding=padding), v2.RandomHorizontalFlip(0.5)]), rng)


def simclr_view(x, rng: np.random.Generator, norm=None):
    """One SimCLR view of every image of a (B, 3, H, W) batch; norm = (mean, std) it is normalised with."""
    from torchvision.transforms import v2

    spec = simclr_spec(x.shape[-1])
    steps = [v2.RandomResizedCrop(spec.size, scale=spec.scale, antialias=True), v2.RandomHorizontalFlip(0.5),
             v2.RandomApply([v2.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8), v2.RandomGrayscale(0.2),
             v2.RandomApply([v2.GaussianBlur(spec.blur_kernel)], p=0.5)]
    xp = backend.xp()
    if norm is not None:
        mean, std = (xp.asarray(v, dtype=x.dtype)[None, :, None, None] for v in norm)
        x = x * std + mean
    views = _per_image(xp.clip(x, 0, 1), v2.Compose(steps), rng)
    return (views - mean) / std if norm is not None else views
