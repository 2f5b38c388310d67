"""What a crossbar is asked to do, counted (issue 12/12): reads, conversions, updates, pulses, MACs.

Every crossbar keeps a `counts` dict (COUNT_KEYS) that its primitives add to; the network sums
and resets them (`Network.take_counts`) so a run can log training and evaluation apart.

- forward_reads / transposed_reads: input vectors read (rows), whatever the matrix size, on
  both paths; analog only: array_reads, the same rows as array operations (the tiles of a grid
  read in parallel), and cell_reads, rows x out x (in + bias), every device those reads touch;
- dac_conversions / adc_conversions (analog): the inputs and outputs of every read of every tile
  (a matrix split over a grid of tiles converts an input once per tile row of the grid);
- update_calls, update_rows: the rule's updates and their (x, d) rows;
- pulse_trains: the rows each tile is pulsed with (a row is one stochastic pulse train; `summed`
  pulses min(out, in + 1) trains per tile instead); pulse_slots: the trains' lengths BL summed
  (time); expected_pulses: the expected device pulses (coincidences), from `expected_pulses`;
- digital_macs: exact path: every read and gradient as multiply-accumulates (the digital
  baseline); analog: the digital accumulators of `summed` and `mp` (rows x out x (in + 1));
- transfers (Tiki-Taka family, mixed precision): the compound's transfers, from its
  transfer_every; their reads and pulses happen inside aihwkit and are not modelled here.
"""

from __future__ import annotations

import numpy as np

COUNT_KEYS = ("forward_reads", "transposed_reads", "array_reads", "cell_reads", "dac_conversions", "adc_conversions",
              "update_calls", "update_rows", "pulse_trains", "pulse_slots", "expected_pulses", "digital_macs",
              "transfers")


def zero_counts() -> dict[str, float]:
    return dict.fromkeys(COUNT_KEYS, 0.0)


def _abs_row_stats(a):
    """|a|, its row sums and row maxima. numpy reduces short rows of a C-ordered array slowly
    (0.7 ms for 15 680 x 9): those are reduced through their transpose."""
    a = np.abs(a)
    if a.shape[1] <= 16 and a.flags.c_contiguous:
        t = np.ascontiguousarray(a.T)
        return a, t.sum(axis=0), t.max(axis=0)
    return a, a.sum(axis=1), a.max(axis=1)  # not a @ ones: BLAS threads would wake for it


def expected_pulses(x, d, lr: float, dw_min: float, desired_bl: int, management: bool, bl_management: bool,
                    bias_input: bool = False):
    """(expected coincidences, pulse slots) of aihwkit's stochastic pulse trains for rows (x, d) at
    learning rate lr (a number, or one per row; `bias_input`: x has one more input fixed at 1,
    the tile's analog bias): a
    model of its PulsedRPUWeightUpdater (SPECS 10.3), measured against it on a noise-free
    constant-step device (tests/test_costs.py).

    Per row: k = lr max|x| max|d| / dw_min; BL = min(desired_bl, ceil(k)) with BL management,
    else desired_bl. The x-line i fires in a slot with p_i = min(1, A |x_i|), the d-line j with
    q_j = min(1, B |d_j|), A B = lr / (dw_min BL). Update management balances them
    (A max|x| = B max|d| <= 1) unless that is above 1 (k > BL): then A max|x| = 1 and B takes the
    rest, as aihwkit does; so with management p never clips and only those rows' q need clipping.
    Expected coincidences of a row: BL sum_i p_i sum_j q_j."""
    ax, sx, xm = _abs_row_stats(x)
    ad, sd, dm = _abs_row_stats(d)
    if bias_input:
        sx, xm = sx + 1.0, np.maximum(xm, 1.0)
    rate = np.asarray(lr, dtype=np.float64) / dw_min  # lr / dw_min, scalar or per row
    k = rate * (xm * dm).astype(np.float64)
    bl = np.clip(np.ceil(k), 1.0, desired_bl) if bl_management else np.full(len(k), float(desired_bl))
    slots = float(bl[k > 0].sum())
    if not management:
        a = np.sqrt(rate / bl)
        p = np.minimum(1.0, a[:, None] * ax).sum(axis=1) + (np.minimum(1.0, a) if bias_input else 0.0)
        q = np.minimum(1.0, a[:, None] * ad).sum(axis=1)
        return float(bl @ (p * q)), slots
    # balanced rows: BL (A sum|x|)(B sum|d|) = lr / dw_min sum|x| sum|d|, the asked change, whatever BL is
    asked = rate * sx * sd
    pulses = float(asked.sum())
    capped = np.flatnonzero(k > bl)
    if len(capped):
        rate_c = rate[capped] if rate.ndim else rate
        b = rate_c * xm[capped] / bl[capped]  # A max|x| = 1
        q = np.minimum(1.0, b[:, None] * ad[capped]).sum(axis=1)
        pulses += float(np.sum(bl[capped] * sx[capped] / xm[capped] * q) - asked[capped].sum())
    return pulses, slots
