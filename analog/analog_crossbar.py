"""The analog backend: a crossbar on one or more aihwkit AnalogTiles.

- Splitting: a matrix larger than `tile_size` in either dimension is cut into a grid of tiles;
  partial outputs of the tiles of one block-row (forward) or block-column (transposed read) are
  summed digitally, as aihwkit's own TileModuleArray does. Each tile adds its own noise and ADC.
- Bias: the tiles of the last block-column carry aihwkit's analog bias column (input fixed to 1
  inside the tile). A plain input column of ones is not the same thing on pulsed devices: aihwkit
  pulses its own bias column with the full update (measured: mean update 1.04x the ideal over 50
  repeats), a ones column fed as data gets about half (0.47x), which cost ~30 points on digits.
- Weight scaling: the logical matrix is W = scale * G with G on the devices. With
  `weight_scaling_omega` > 0 the scale is chosen at the first programming so that the largest
  |W| maps to omega; reads are multiplied by `scale`, updates divide d by `scale`, as aihwkit's
  pre_update does. (lr / scale would give the same pulses on single devices, where only lr*|x|*|d|
  counts, but not on Tiki-Taka v2: its auto_scale normalises the fast device's pulses by max|d|,
  and its transfers then used lr / scale, 3x too large on digits' first layer.)
- Sign and lr: the tile's update descends and needs lr > 0, exactly the crossbar contract.
- `post_update_step()` follows every update (decay and diffusion happen only there).
- `--update summed` (devices/updates.py): the step's gradient G = sum_rows d^T x (+ bias column)
  is summed digitally, block of rows by block of rows, and each tile is pulsed once per step with
  one row per input column (x = e_i, d = G[:, i]) or per output (x = G[j, :], d = e_j), whichever
  is fewer. The bias column is an input like the others: the rows go to the simulator tile with
  the bias input written out, since the tile's own update would drive it with 1 on every row.
- Saturated reads: outputs of a forward read at the tile's output bound (out_bound * out_scale *
  0.999, aihwkit's own number) are reported as `clipped`, and the transposed read of the same
  layer zeroes d there, exactly as aihwkit's AnalogFunction does (`handle_output_bound`). Without
  it, bp on ecram-mo trained to 0.87 where aihwkit's own AnalogSGD reaches 0.95.
- Checkpoints: `state_dict()` holds each tile's state as arrays (`tile_state`: weights, hidden
  device parameters, learning rate, compound counters); nothing of aihwkit is pickled.
  `load_state_dict` rebuilds the tiles from the crossbar's own (made from the run's device spec)
  with `restore_tile`, which also repairs what aihwkit's own unpickling loses (see there).
Arrays cross into torch zero-copy (torch.from_numpy), so the analog path runs with xp = NumPy.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from hilt.analog import backend
from hilt.analog.costs import PulseModel
from hilt.analog.crossbar import Crossbar, RowTally, check_lr
from hilt.analog.optim import gradient_matrix
from hilt.devices.presets import DeviceSpec, leaf_devices, res_to_bits
from hilt.devices.updates import UPDATES


def tile_state(tile) -> dict:
    """A tile's training state as arrays and plain data (checkpoints): weights, hidden device
    parameters and their names, learning rate, and aihwkit's `dump_extra` (compound counters)."""
    sim = tile.tile
    return {"weights": sim.get_weights().numpy().copy(), "hidden": sim.get_hidden_parameters().numpy().copy(),
            "hidden_names": list(sim.get_hidden_parameter_names()), "lr": float(sim.get_learning_rate()),
            "extra": {key: np.asarray(value, dtype=np.float64) for key, value in sim.dump_extra().items()}}


def restore_tile(template, state: dict):
    """A new AnalogTile like `template` (built from the run's device spec) holding `state` (tile_state).

    Set as aihwkit's own unpickling does (hidden parameters, weights, learning rate, extra), with
    what that loses put back: setting the weights re-applies write noise on devices with write
    noise (ReRam ES/SB and the MP/TT presets built on them: it overwrote the hidden persistent
    weights with the noisy visible ones, max change 0.33 in device units after 50 updates on
    rram), and on PCM it resets the pairs' hidden weights. So the tile is made with write noise on
    set turned off, its weights are set from the persistent weights, and the hidden parameters are
    set again afterwards: the persistent and hidden weights of single devices and PCM pairs come
    back exactly. The visible weights equal the persistent ones until a device is next pulsed
    (aihwkit redraws a device's write noise whenever it is pulsed). Not restored: the digital
    accumulator of mixed precision (chi) and the two devices of Tiki-Taka v2 (no public setter);
    README.md gives the measured effect. ValueError when the state is not of this tile's device.
    """
    import torch
    from aihwkit.simulator.tiles import AnalogTile

    names = list(template.tile.get_hidden_parameter_names())
    weights, hidden = np.asarray(state["weights"], np.float32), np.asarray(state["hidden"], np.float32)
    shape = (template.out_size, template.in_size + int(template.analog_bias))
    if list(state["hidden_names"]) != names or weights.shape != shape or (names and hidden.shape[1:] != shape):
        raise ValueError("the saved tile is of another device or shape than this run's")
    config = template.rpu_config
    quiet = copy.deepcopy(config)
    for device in leaf_devices(quiet.device):
        if hasattr(device, "apply_write_noise_on_set"):
            device.apply_write_noise_on_set = False
    tile = AnalogTile(template.out_size, template.in_size, quiet, bias=template.analog_bias)
    hidden_t = torch.from_numpy(np.ascontiguousarray(hidden))
    tile.tile.set_hidden_parameters(hidden_t)
    if "persistent_weights" in names:
        weights = hidden[names.index("persistent_weights")]
    tile.tile.set_weights(torch.from_numpy(np.ascontiguousarray(weights)))
    tile.tile.set_learning_rate(float(state["lr"]))
    tile.tile.load_extra({key: np.asarray(value).tolist() for key, value in state["extra"].items()}, False)
    tile.tile.set_hidden_parameters(hidden_t)
    tile.rpu_config = config  # what the tile reports (the simulator keeps `quiet`)
    return tile


def _splits(n: int, size: int) -> list[tuple[int, int]]:
    """Near-equal parts of at most `size`, the larger ones first: aihwkit's TileModuleArray split."""
    count = -(-n // size)
    base, extra = divmod(n, count)
    edges = np.cumsum([0] + [base + (i < extra) for i in range(count)])
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


class AnalogCrossbar(Crossbar):
    def __init__(self, out_size, in_size, bias, spec: DeviceSpec):
        super().__init__(out_size, in_size, bias)
        from aihwkit.simulator.tiles import AnalogTile

        tile_size = spec.crossbar_option("tile_size")
        self.omega = spec.crossbar_option("weight_scaling_omega")
        self.row_splits = _splits(self.out_size, tile_size)
        self.col_splits = _splits(self.in_size, tile_size)
        last = len(self.col_splits) - 1
        self.tiles = [
            [AnalogTile(r1 - r0, c1 - c0, spec.rpu_config(), bias=self.bias and j == last)
             for j, (c0, c1) in enumerate(self.col_splits)]
            for r0, r1 in self.row_splits
        ]
        # aihwkit's AnalogFunction zeroes the gradient of outputs at this bound; a perfect read has no ADC.
        first = self.tiles[0][0]
        saturates = first.handle_output_bound and not first.rpu_config.forward.is_perfect
        self.out_bound = first.get_forward_out_bound() if saturates else None
        self.single = len(self.row_splits) == len(self.col_splits) == 1
        self.summed = spec.summed
        self.scale: float | None = None
        self._lr: float | None = None
        self._pulse_model = UPDATES[spec.update].counting(first.rpu_config)
        # a k-bit input is k one-bit DAC conversions (ISAAC's bit-serial inputs); unquantised: one
        self._dac_bits = tuple(max(1.0, math.ceil(res_to_bits(getattr(first.rpu_config, io).inp_res)))
                               for io in ("forward", "backward"))
        kw = self._pulse_model["pulse_model"]
        self._pulse_models = [[PulseModel(**kw) for _ in row] for row in self.tiles] if kw else None

    def _complete_counts(self, counts):
        forward, transposed = counts["forward_reads"], counts["transposed_reads"]
        inputs, outputs = self.in_size + self.bias, self.out_size
        n_row_tiles, n_col_tiles = len(self.row_splits), len(self.col_splits)
        n_tiles, model = n_row_tiles * n_col_tiles, self._pulse_model
        if model["compound"]:  # every tile transfers on its own
            periods = counts["update_rows"] if model["per_rows"] else counts["update_calls"]
            counts["transfers"] += n_tiles * periods / model["transfer_every"]
            # a transfer reads columns of the fast device: one-hot inputs in, the column's outputs out
            counts["transfer_reads"] += counts["transfers"] * model["reads_per_transfer"]
        per_tile = counts["transfer_reads"] / n_tiles
        counts["array_reads"] += forward + transposed + per_tile  # the tiles of the grid read in parallel
        counts["cell_reads"] += (forward + transposed) * outputs * inputs + per_tile * outputs * n_col_tiles
        bits_forward, bits_backward = self._dac_bits
        counts["dac_conversions"] += ((forward + per_tile) * inputs * n_row_tiles * bits_forward
                                      + transposed * outputs * n_col_tiles * bits_backward)
        counts["adc_conversions"] += (forward + per_tile) * outputs * n_col_tiles + transposed * inputs * n_row_tiles
        if model["accumulator"]:  # the digital accumulator: G += d^T x (summed), chi += x d^T (mp)
            counts["digital_macs"] += counts["update_rows"] * self.out_size * (self.in_size + self.bias)

    def _count_pulses(self, i: int, j: int, x, d, lr, bias_input: bool = False) -> None:
        """Tile ij's pulse trains for rows (x, d) as the tile sees them (bias_input: plus its bias input 1)."""
        self.counts["pulse_trains"] += len(x)
        if self._pulse_models is not None:
            pulses, slots, up = self._pulse_models[i][j](x, d, lr, bias_input)
            self.counts["expected_pulses"] += pulses
            self.counts["expected_pulses_up"] += up
            self.counts["expected_pulses_down"] += pulses - up
            self.counts["pulse_slots"] += slots

    def _tiles(self):
        """(i, j, out block, in block, tile) for every tile of the grid."""
        for i, ((r0, r1), row) in enumerate(zip(self.row_splits, self.tiles)):
            for j, ((c0, c1), tile) in enumerate(zip(self.col_splits, row)):
                yield i, j, slice(r0, r1), slice(c0, c1), tile

    def _forward(self, x):
        """y[:, out block i] = scale * sum_j tile_ij(x[:, in block j]); `clipped` maps (i, j) to the
        outputs of tile ij that were at its forward output bound (aihwkit's `handle_output_bound`)."""
        clipped = {}
        if self.single:
            y = self.tiles[0][0].joint_forward(backend.to_torch(x)).numpy()
            self._note_clipped(clipped, 0, 0, y)
        else:
            y = np.zeros((x.shape[0], self.out_size), dtype=backend.DTYPE)
            for i, j, rows, cols, tile in self._tiles():
                part = tile.joint_forward(backend.to_torch(x[:, cols])).numpy()
                self._note_clipped(clipped, i, j, part)
                y[:, rows] += part
        if self.scale != 1.0:
            y = y * self.scale
        return y, clipped or None

    def _note_clipped(self, clipped, i, j, raw):
        if self.out_bound is not None:
            at_bound = np.abs(raw) >= self.out_bound
            if at_bound.any():
                clipped[i, j] = at_bound

    def _backward(self, d, clipped):
        """z[:, in block j] = scale * sum_i tile_ij^T(d[:, out block i]), d zeroed where tile ij clipped."""
        def part(i, j, rows):
            block = d[:, rows]
            return np.where(clipped[i, j], 0, block) if clipped and (i, j) in clipped else block

        if self.single:
            z = self.tiles[0][0].backward(backend.to_torch(part(0, 0, slice(None)))).numpy()
        else:
            z = np.zeros((d.shape[0], self.in_size), dtype=backend.DTYPE)
            for i, j, rows, cols, tile in self._tiles():
                z[:, cols] += tile.backward(backend.to_torch(part(i, j, rows))).numpy()
        return z * self.scale if self.scale != 1.0 else z

    def _set_lr(self, lr):
        if lr != self._lr:
            for *_, tile in self._tiles():
                tile.set_learning_rate(lr)
            self._lr = lr

    def _update(self, x, d, lr):
        if self.summed:
            return self._pulse_summed(gradient_matrix([(x, d)], self.bias), lr)
        if self.scale != 1.0:  # aihwkit's pre_update; lr / scale differs where the device rescales by max|d| (TTv2)
            d = d / self.scale
        self._set_lr(lr)
        row_trains = self._pulse_model["rows_pulse_device"]
        for i, j, rows, cols, tile in self._tiles():
            x_tile, d_tile = np.ascontiguousarray(x[:, cols]), np.ascontiguousarray(d[:, rows])  # for both
            tile.update(backend.to_torch(x_tile), backend.to_torch(d_tile))
            tile.post_update_step()
            if row_trains:
                self._count_pulses(i, j, x_tile, d_tile, lr, tile.analog_bias)

    def update_groups(self, groups, lr):
        if not self.summed or self.observer is not None:  # the observer sees the rows themselves
            return super().update_groups(groups, lr)
        check_lr(lr)
        tally = RowTally()
        self._pulse_summed(gradient_matrix(tally.over(groups, np.asarray), self.bias), lr)
        self._count_update(tally.rows)

    def _pulse_summed(self, G, lr):
        """W -= lr G on each tile as the fewer of one pulse train per input column (x = e_i,
        d = G[:, i]) or per output row (x = G[j, :], d = e_j); lines with G = 0 are skipped."""
        G = G / self.scale if self.scale != 1.0 else G
        self._set_lr(lr)
        for i, j, rows, cols, tile in self._tiles():
            columns = list(range(cols.start, cols.stop)) + ([self.in_size] if tile.analog_bias else [])
            part = G[rows][:, columns]  # (out, in [+ bias]): the bias input is a column like the others
            by_rows = part.shape[0] < part.shape[1]
            values = part if by_rows else part.T  # one line per train
            live = np.flatnonzero(np.abs(values).max(axis=1) > 0)
            if len(live):
                unit = np.zeros((len(live), values.shape[0]), dtype=backend.DTYPE)
                unit[np.arange(len(live)), live] = 1
                lines = np.ascontiguousarray(values[live], dtype=backend.DTYPE)
                x, d = (lines, unit) if by_rows else (unit, lines)
                # positional arguments (aihwkit 1.1 reads them so); bias=False: x carries the bias input itself
                tile.tile.update(backend.to_torch(x), backend.to_torch(d), False, False, False, False)
                self._count_pulses(i, j, x, d, lr)
            tile.post_update_step()

    def _gather(self, tile_matrix):
        """The logical (out, in[+1]) matrix from one (rows, width [+ bias]) device matrix per tile."""
        W = np.empty(self.shape, dtype=backend.DTYPE)
        for _, _, rows, cols, tile in self._tiles():
            part = tile_matrix(tile)
            width = cols.stop - cols.start
            W[rows, cols] = part[:, :width]
            if tile.analog_bias:
                W[rows, self.in_size] = part[:, width]
        return W * self.scale

    @staticmethod
    def _visible(tile):
        w, b = tile.get_weights()
        return w.numpy() if b is None else np.c_[w.numpy(), b.numpy()]

    def _weights(self):
        return self._gather(self._visible)

    def kept_weights(self):
        """The weights the devices keep, without the write noise a read sees: aihwkit's hidden
        `persistent_weights` of devices with write noise (rram, and the device under mixed
        precision); for Tiki-Taka compounds gamma * A + C of their devices' persistent weights
        (their visible weight is gamma * A + C of the visible ones, measured); else the visible ones."""
        def kept(tile):
            names = tile.tile.get_hidden_parameter_names()
            if "persistent_weights" not in names and "persistent_weights_1" not in names:
                return self._visible(tile)
            hidden = tile.tile.get_hidden_parameters()
            if "persistent_weights" in names:
                return hidden[names.index("persistent_weights")].numpy()
            a, c = (hidden[names.index(f"persistent_weights_{k}")].numpy() for k in (0, 1))
            return tile.rpu_config.device.gamma * a + c

        return self._gather(kept)

    def _program(self, W):
        W = backend.to_numpy(W)
        if self.scale is None:
            peak = float(np.abs(W).max()) if W.size else 0.0
            self.scale = peak / self.omega if self.omega > 0 and peak > 0 else 1.0
        W = W / self.scale
        for _, _, rows, cols, tile in self._tiles():
            bias = backend.to_torch(W[rows, self.in_size]) if tile.analog_bias else None
            tile.set_weights(backend.to_torch(W[rows, cols]), bias)

    def state_dict(self):
        return {"scale": self.scale, "lr": self._lr, "tiles": [[tile_state(tile) for tile in row] for row in self.tiles]}

    def load_state_dict(self, state):
        if [len(row) for row in state["tiles"]] != [len(row) for row in self.tiles]:
            raise ValueError("load_state_dict: the saved tile grid does not match this crossbar's")
        self.tiles = [[restore_tile(tile, saved) for tile, saved in zip(row, saved_row)]
                      for row, saved_row in zip(self.tiles, state["tiles"])]
        self.scale, self._lr = state["scale"], state["lr"]

    def pulse_size(self) -> float:
        """The nominal weight change of one pulse in logical units (dw_min x scale)."""
        leaves = leaf_devices(self.tiles[0][0].rpu_config.device)
        return float(getattr(leaves[0], "dw_min", float("nan"))) * self.scale

    def bounds(self):
        """(lo, hi): each device's weight bounds in logical units, shaped like `weights()`; None when
        the visible weight is not one device's (ideal, compound presets such as pcm, mp, ttv2)."""
        lo, hi = np.empty(self.shape, dtype=backend.DTYPE), np.empty(self.shape, dtype=backend.DTYPE)
        for _, _, rows, cols, tile in self._tiles():
            names = tile.tile.get_hidden_parameter_names()
            if "max_bound" not in names:
                return None
            hidden = tile.tile.get_hidden_parameters()
            width = cols.stop - cols.start
            for out, name in ((lo, "min_bound"), (hi, "max_bound")):
                values = hidden[names.index(name)].numpy()
                out[rows, cols] = values[:, :width]
                if tile.analog_bias:
                    out[rows, self.in_size] = values[:, width]
        return lo * self.scale, hi * self.scale
