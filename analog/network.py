"""Networks as ordered blocks, model specs, and the crossbar factory.

Model specs (DESIGN.md): `mlp:64-256-10` (input, hidden..., output; input and output must match
the data), `cnn:8-16` (3x3 'same' conv + ReLU + 2x2 max-pool per listed channel count, then a
dense readout to the classes). A suffix `@0.25` multiplies every hidden width.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from analog import backend
from analog.crossbar import Crossbar, ExactCrossbar
from analog.layers import Block, Conv2d, Dense
from analog.optim import Optimizer
from analog.periphery import ACTIVATIONS, ConvGeometry, MaxPool2d
from devices.errors import HiltError, check_memory
from devices.presets import DeviceSpec

@dataclass(frozen=True)
class CrossbarFactory:
    """Makes crossbars of one kind; `bytes_per_weight` is what one weight costs in memory, measured:
    exact float32 W, a gradient-sized temporary and Adam's two moments (16); aihwkit tiles 330-380
    (rram, pcm, rram-ttv2 at 1000x2000: weights, hidden device parameters, simulator buffers)."""

    make: Callable[[int, int, bool], Crossbar]
    bytes_per_weight: int

    def __call__(self, out: int, inp: int, bias: bool) -> Crossbar:
        return self.make(out, inp, bias)


def crossbar_factory(spec: DeviceSpec, optimizer: Callable[[], Optimizer] | None = None) -> CrossbarFactory:
    """Builds crossbars of one kind: exact (with a fresh optimizer each) or analog tiles."""
    if spec.is_exact:
        return CrossbarFactory(lambda out, inp, bias: ExactCrossbar(out, inp, bias, optimizer() if optimizer else None), 16)
    from analog.analog_crossbar import AnalogCrossbar

    return CrossbarFactory(lambda out, inp, bias: AnalogCrossbar(out, inp, bias, spec), 400)


class Network:
    def __init__(self, blocks: list[Block], input_shape: tuple[int, ...], spec: str):
        self.blocks, self.input_shape, self.spec = blocks, tuple(input_shape), spec

    def __len__(self):
        return len(self.blocks)

    def forward(self, x):
        """Output pre-activation a_L for input x, all reads on the crossbars."""
        s = backend.asarray(x)
        for block in self.blocks:
            a, _ = block.forward(s)
            s = block.act(a)
        return s

    def predict(self, x, batch_size: int = 500) -> np.ndarray:
        out = [backend.to_numpy(self.forward(x[i : i + batch_size]).argmax(axis=1)) for i in range(0, len(x), batch_size)]
        return np.concatenate(out)

    def crossbars(self) -> list[Crossbar]:
        return [b.crossbar for b in self.blocks]

    def weights(self) -> list:
        return [c.weights() for c in self.crossbars()]

    def state_dict(self) -> dict:
        """Everything needed to continue training this network (see Crossbar.state_dict)."""
        return {"spec": self.spec, "crossbars": [c.state_dict() for c in self.crossbars()]}

    def load_state_dict(self, state: dict) -> None:
        if state["spec"] != self.spec or len(state["crossbars"]) != len(self.blocks):
            raise ValueError(f"load_state_dict: saved network {state['spec']!r} does not match {self.spec!r}")
        for crossbar, saved in zip(self.crossbars(), state["crossbars"]):
            crossbar.load_state_dict(saved)

    def exact_copy(self) -> "Network":
        """The same network on exact crossbars holding this network's current weights."""
        blocks = [Block(block.layer.exact_copy(), block.act, block.pool) for block in self.blocks]
        return Network(blocks, self.input_shape, self.spec)


def _uniform_init(rng: np.random.Generator, out: int, fan_in: int, bias: bool) -> np.ndarray:
    """torch's default Linear/Conv init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b."""
    bound = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=(out, fan_in + bias)).astype(backend.DTYPE)


_SPEC = re.compile(r"^(?P<kind>mlp|cnn):(?P<dims>\d+(?:-\d+)*)(?:@(?P<width>\d+(?:\.\d*)?|\.\d+))?$")
MODEL_KINDS = ("mlp:IN-H1-...-OUT", "cnn:C1-C2-...")


def build_network(
    spec: str,
    input_shape: tuple[int, ...],
    n_classes: int,
    make_crossbar: CrossbarFactory,
    seed: int = 0,
    activation: str = "relu",
    bias: bool = True,
    weights: list | None = None,
) -> Network:
    """The network of `spec` on crossbars from `make_crossbar`, programmed with torch's default init
    drawn from `seed`, or with `weights` (one (out, in[+1]) matrix per layer, e.g. a trained run's)."""
    m = _SPEC.match(spec.replace(" ", ""))
    if not m:
        raise HiltError(f"unknown model {spec!r}; allowed forms: {', '.join(MODEL_KINDS)} with optional @WIDTH")
    if activation not in ACTIVATIONS:
        raise HiltError(f"unknown activation {activation!r}; allowed: {', '.join(ACTIVATIONS)}")
    dims = [int(v) for v in m["dims"].split("-")]
    width = float(m["width"]) if m["width"] else 1.0
    if not 0 < width <= 64 or min(dims) < 1:
        raise HiltError(f"model {spec!r}: widths must be >= 1 and the multiplier in (0, 64]")
    scaled = lambda h: max(1, round(h * width))  # noqa: E731
    if m["kind"] == "mlp":
        n_in = int(np.prod(input_shape))
        if len(dims) < 2 or dims[0] != n_in or dims[-1] != n_classes:
            raise HiltError(
                f"model {spec!r} does not fit the data: it must start with the input size {n_in} "
                f"and end with the number of classes {n_classes}, e.g. mlp:{n_in}-256-{n_classes}"
            )
        sizes = [n_in] + [scaled(h) for h in dims[1:-1]] + [n_classes]
        shapes = list(zip(sizes[1:], sizes[:-1]))  # (out, fan_in) per layer
    else:
        if len(input_shape) != 3:
            raise HiltError(f"model {spec!r} needs image data (C, H, W); this dataset has shape {input_shape}")
        C, H, W = input_shape
        shapes = []
        for channels in dims:
            if min(H, W) < 2:
                raise HiltError(f"model {spec!r} has too many pooling stages for {input_shape} inputs")
            shapes.append((scaled(channels), C * 9))
            C, H, W = scaled(channels), H // 2, W // 2
        shapes.append((n_classes, C * H * W))
    n_weights = sum(out * (fan_in + bias) for out, fan_in in shapes)
    check_memory(f"model {spec} ({n_weights:,} weights)", n_weights * getattr(make_crossbar, "bytes_per_weight", 16))

    rng = np.random.default_rng(seed)
    act = ACTIVATIONS[activation]()
    ident = ACTIVATIONS["identity"]()
    if weights is not None and len(weights) != len(shapes):
        raise ValueError(f"build_network: {len(weights)} weight matrices for the {len(shapes)} layers of {spec}")
    crossbars = []
    for k, (out, fan_in) in enumerate(shapes):
        xbar = make_crossbar(out, fan_in, bias)
        xbar.program(backend.asarray(_uniform_init(rng, out, fan_in, bias) if weights is None else weights[k]))
        crossbars.append(xbar)
    if m["kind"] == "mlp":
        blocks = [Block(Dense(x), act) for x in crossbars[:-1]]
    else:
        geometry = ConvGeometry(kernel=3, stride=1, padding=1)
        blocks = [Block(Conv2d(x, geometry), act, MaxPool2d(2)) for x in crossbars[:-1]]
    blocks.append(Block(Dense(crossbars[-1]), ident))
    return Network(blocks, input_shape, spec)
