"""Alignment of a rule's intended update with the true backprop gradient, per layer.

The rule's signals are computed on the network as it is (analog reads included); the reference
is the rule's reference (`rules.reference_of`: bp of the same loss; for the self-supervised rules bp_clapp_pp, the
top layer's contrastive loss backpropagated, Wu et al. 2026 Fig. 4C) run exactly on the read-out weights
(`Network.exact_copy`), same batch. Cosine of the batch-summed update matrices (bias column
included).
"""

from __future__ import annotations

import numpy as np

from hilt.rules import reference_of


def cosine(a, b) -> float:
    """cos of the angle between two arrays of one shape (NumPy or CuPy, any float dtype); NaN if
    one is zero."""
    na, nb = float((a * a).sum()) ** 0.5, float((b * b).sum()) ** 0.5
    return float((a * b).sum()) / (na * nb) if na > 0 and nb > 0 else float("nan")


def alignment(net, rule, x, y, exact=None) -> list[float]:
    """Per-layer cosine on one batch; `exact` is net.exact_copy(), made here if not given."""
    signals = rule.signals(net, x, y).blocks
    exact = net.exact_copy() if exact is None else exact
    reference = reference_of(rule).signals(exact, x, y).blocks
    return [
        cosine(block.outer(*sig), ref_block.outer(*ref))
        for block, sig, ref_block, ref in zip(net.blocks, signals, exact.blocks, reference)
    ]


def mean_alignment(net, rule, batches) -> list[float]:
    """Per-layer cosine averaged over (x, y) batches."""
    exact = net.exact_copy()
    return list(np.nanmean([alignment(net, rule, x, y, exact) for x, y in batches], axis=0))
