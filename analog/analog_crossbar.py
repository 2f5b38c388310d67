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
  |W| maps to omega; reads are multiplied by `scale`, updates use lr / scale (the pulse
  count depends only on lr*|x|*|d|, so this is the same as aihwkit's division of d by scale).
- Sign and lr: the tile's update descends and needs lr > 0, exactly the crossbar contract.
- `post_update_step()` follows every update (decay and diffusion happen only there).
Arrays cross into torch zero-copy (torch.from_numpy), so the analog path runs with xp = NumPy.
"""

from __future__ import annotations

import numpy as np

from analog import backend
from analog.crossbar import Crossbar
from devices.presets import DeviceSpec


def _splits(n: int, size: int) -> list[tuple[int, int]]:
    count = -(-n // size)
    edges = [round(i * n / count) for i in range(count + 1)]  # near-equal parts, like aihwkit
    return list(zip(edges[:-1], edges[1:]))


class AnalogCrossbar(Crossbar):
    def __init__(self, out_size, in_size, bias, spec: DeviceSpec):
        super().__init__(out_size, in_size, bias)
        from aihwkit.simulator.tiles import AnalogTile

        tile_size = spec.crossbar_option("tile_size")
        self.omega = spec.crossbar_option("weight_scaling_omega")
        self.row_blocks = _splits(self.out_size, tile_size)
        self.col_blocks = _splits(self.in_size, tile_size)
        last = len(self.col_blocks) - 1
        self.tiles = [
            [AnalogTile(r1 - r0, c1 - c0, spec.rpu_config(), bias=self.bias and j == last)
             for j, (c0, c1) in enumerate(self.col_blocks)]
            for r0, r1 in self.row_blocks
        ]
        self.tiles_T = [list(col) for col in zip(*self.tiles)]
        self.single = len(self.row_blocks) == len(self.col_blocks) == 1
        self.scale: float | None = None
        self._lr: float | None = None

    @staticmethod
    def _torch(a):
        return backend.to_torch(np.ascontiguousarray(a))

    def _read(self, a, grid, blocks_in, blocks_out, read):
        """y[:, out block i] = sum_j read(grid[i][j], a[:, in block j]), one read per tile."""
        if self.single:
            return read(grid[0][0], self._torch(a)).numpy()
        y = np.zeros((a.shape[0], blocks_out[-1][1]), dtype=backend.DTYPE)
        for j, (i0, i1) in enumerate(blocks_in):
            part = self._torch(a[:, i0:i1])
            for i, (o0, o1) in enumerate(blocks_out):
                y[:, o0:o1] += read(grid[i][j], part).numpy()
        return y

    def _forward(self, x):
        y = self._read(x, self.tiles, self.col_blocks, self.row_blocks, lambda t, v: t.joint_forward(v))
        return y * self.scale if self.scale != 1.0 else y

    def _backward(self, d):
        z = self._read(d, self.tiles_T, self.row_blocks, self.col_blocks, lambda t, v: t.backward(v))
        return z * self.scale if self.scale != 1.0 else z

    def _update(self, x, d, lr):
        lr = lr / self.scale
        if lr != self._lr:
            for tile in (t for row in self.tiles for t in row):
                tile.set_learning_rate(lr)
            self._lr = lr
        for (r0, r1), row in zip(self.row_blocks, self.tiles):
            d_part = self._torch(d[:, r0:r1])
            for (c0, c1), tile in zip(self.col_blocks, row):
                tile.update(self._torch(x[:, c0:c1]), d_part)
                tile.post_update_step()

    def _weights(self):
        W = np.empty(self.shape, dtype=backend.DTYPE)
        for (r0, r1), row in zip(self.row_blocks, self.tiles):
            for (c0, c1), tile in zip(self.col_blocks, row):
                w, b = tile.get_weights()
                W[r0:r1, c0:c1] = w.numpy()
                if b is not None:
                    W[r0:r1, self.in_size] = b.numpy()
        return W * self.scale

    def _program(self, W):
        W = backend.to_numpy(W)
        if self.scale is None:
            peak = float(np.abs(W).max()) if W.size else 0.0
            self.scale = peak / self.omega if self.omega > 0 and peak > 0 else 1.0
        W = W / self.scale
        for (r0, r1), row in zip(self.row_blocks, self.tiles):
            for (c0, c1), tile in zip(self.col_blocks, row):
                bias = self._torch(W[r0:r1, self.in_size]) if tile.analog_bias else None
                tile.set_weights(self._torch(W[r0:r1, c0:c1]), bias)
