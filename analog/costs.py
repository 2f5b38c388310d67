"""What a crossbar is asked to do, counted (issue 12/12): reads, conversions, updates, pulses, MACs.

Every crossbar keeps a `counts` dict (COUNT_KEYS) that its primitives add to; the network sums
and resets them (`Network.take_counts`) so a run can log training and evaluation apart. A read or
an update adds only its rows: what follows from the rows and the matrix's shape (conversions,
cell reads, MACs, transfers) is filled in when the counts are taken.

- forward_reads / transposed_reads: input vectors read (rows), whatever the matrix size, on
  both paths; analog only: array_reads, the same rows as array operations (the tiles of a grid
  read in parallel), and cell_reads, rows x out x (in + bias), every device those reads touch,
  transfers' column reads included (out devices each);
- dac_conversions / adc_conversions (analog): the inputs and outputs of every read of every tile
  (a matrix split over a grid of tiles converts an input once per tile row of the grid); a DAC
  conversion is one input bit, so a k-bit input (the read's dac_bits; unquantised: 1) counts k
  one-bit conversions, the energy of applying it bit-serially as ISAAC does; the outputs count one
  ADC conversion each per read (ISAAC would convert each input bit's outputs: hilt's reads are
  one-shot, as aihwkit simulates them, so this is not charged);
- update_calls, update_rows: the rule's updates and their (x, d) rows;
- pulse_trains: the rows each tile is pulsed with (a row is one stochastic pulse train; `summed`
  pulses min(out, in + 1) trains per tile instead; the Tiki-Taka family pulses the rows onto its
  fast device; mp writes its device from the accumulator, not counted); pulse_slots: the trains'
  lengths BL summed (time); expected_pulses: the expected device pulses (coincidences), from
  `PulseModel` (`expected_pulses`), for sgd, summed, tt, ttv2 and c-ttv2 (their fast device, at
  its count learning rate); not for agad's fast device nor mp's writes; expected_pulses_up and
  expected_pulses_down: the same by direction (potentiation, depression), priced apart;
- digital_macs: exact path: every read and gradient as multiply-accumulates (the digital
  baseline); analog: the digital accumulators of `summed` and `mp` (rows x out x (in + 1));
- transfers (Tiki-Taka family, mixed precision): the compounds' transfers, every tile's, from
  transfer_every; transfer_reads: the fast-device columns they read (n_reads_per_transfer each,
  one-hot in, the column out). The pulses a transfer writes depend on what it reads, inside
  aihwkit, and are not modelled.
"""

from __future__ import annotations

import numpy as np

COUNT_KEYS = ("forward_reads", "transposed_reads", "array_reads", "cell_reads", "dac_conversions", "adc_conversions",
              "update_calls", "update_rows", "pulse_trains", "pulse_slots", "expected_pulses", "expected_pulses_up",
              "expected_pulses_down", "digital_macs", "transfers", "transfer_reads")


def zero_counts() -> dict[str, float]:
    """Every count of COUNT_KEYS at 0.0."""
    return dict.fromkeys(COUNT_KEYS, 0.0)


def expected_pulses(x, d, lr: float, dw_min: float, desired_bl: int, management: bool, bl_management: bool,
                    bias_input: bool = False) -> tuple[float, float, float]:
    """(expected coincidences, pulse slots, expected up coincidences) of aihwkit's stochastic pulse trains for rows (x, d) at
    learning rate lr (`bias_input`: x has one more input fixed at 1, the tile's analog bias; x and d
    are read in float32, as the tiles read them): a model of its PulsedRPUWeightUpdater (docs: hardware-cost.md,
    10.3), measured against it on a noise-free constant-step device (tests/test_costs.py).

    Per row: k = lr max|x| max|d| / dw_min; BL = min(desired_bl, ceil(k)) with BL management,
    else desired_bl. The x-line i fires in a slot with p_i = min(1, A |x_i|), the d-line j with
    q_j = min(1, B |d_j|), A B = lr / (dw_min BL). Update management balances them
    (A max|x| = B max|d| <= 1) unless that is above 1 (k > BL): then A max|x| = 1 and B takes the
    rest, as aihwkit does; so with management p never clips and only those rows' q need clipping.
    Expected coincidences of a row: BL sum_i p_i sum_j q_j; those of lines of opposite signs step
    the device up (W -= lr d x^T), the others down."""
    return PulseModel(dw_min, desired_bl, management, bl_management)(x, d, lr, bias_input)


class PulseModel:
    """`expected_pulses` for one tile: its device's dw_min, its update's BL and management, and
    for a Tiki-Taka fast device the count learning rate aihwkit gives it: fast_lr when > 0 (else
    the tile's lr), auto-scaled in the chopped TTv2 family (auto_scale, `auto_momentum`) to
    fast_lr BL dw_min / (m_x m_d) with m_x, m_d running maxima of |x| and |d| kept here from
    update to update (both measured against the device, tests/test_costs.py)."""

    def __init__(self, dw_min: float, desired_bl: int, management: bool, bl_management: bool, fast_lr: float = 0.0,
                 auto_momentum: float | None = None):
        from hilt.analog.pulse_trains import auto_scaled_pulse_trains, pulse_trains  # numba: ~0.5 s, analog only

        self._pulse_trains, self._auto_scaled = pulse_trains, auto_scaled_pulse_trains
        self.dw_min, self.fast_lr, self.auto_momentum = float(dw_min), float(fast_lr), auto_momentum
        self.update_args = (int(desired_bl), bool(management), bool(bl_management))
        self.running = np.zeros(2)  # m_x, m_d of the auto-scaled count learning rate

    def __call__(self, x, d, lr: float, bias_input: bool = False) -> tuple[float, float, float]:
        """(expected coincidences, pulse slots, expected up coincidences) of rows (x, d) at lr."""
        x, d = np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(d, dtype=np.float32)
        if self.auto_momentum is None:
            pulses, slots, up = self._pulse_trains(x, d, (self.fast_lr or lr) / self.dw_min, *self.update_args, bias_input)
        else:
            pulses, slots, up = self._auto_scaled(x, d, self.fast_lr, self.dw_min, *self.update_args, bias_input,
                                                  float(self.auto_momentum), self.running)
        return float(pulses), float(slots), float(up)
