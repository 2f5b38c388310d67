"""Networks as ordered blocks, model specs, and the crossbar factory.

Model specs (DESIGN.md): `mlp:64-256-10` (input, hidden..., output; input and output must match
the data), `cnn:8-16` (3x3 'same' conv + ReLU + 2x2 max-pool per listed channel count, then a
dense readout to the classes), `rhm-cnn:256` (SPECS 3.2: non-overlapping 1-D convolutions with
kernel = stride = 2, 256 channels, ReLU, until one position is left, then a dense readout;
`rhm-cnn:256:3` for s = 3). A suffix `@0.25` multiplies every hidden width.

An encoder (`readout=False`, for self-supervised rules) is the same network without its readout:
an mlp spec then ends with its last hidden width instead of the number of classes.

Besides its blocks, a network holds the auxiliary crossbars a rule adds (`aux`: CLAPP's B^l,
DFA's feedback matrices), made by the same factory and saved with it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from analog import backend
from analog.crossbar import Crossbar, ExactCrossbar, exact_copy
from analog.layers import Block, Conv2d, Dense, PatchConv1d
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
    def __init__(self, blocks: list[Block], input_shape: tuple[int, ...], spec: str,
                 aux: dict[str, Crossbar] | None = None):
        self.blocks, self.input_shape, self.spec = blocks, tuple(input_shape), spec
        self.aux: dict[str, Crossbar] = dict(aux or {})

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
        """The blocks' crossbars, in order (not the auxiliary ones)."""
        return [b.crossbar for b in self.blocks]

    def weights(self) -> list:
        return [c.weights() for c in self.crossbars()]

    def shapes(self) -> list[tuple[int, ...]]:
        """Per-sample shape of every block's activity s_k = act(a_k), k = 1..L."""
        shapes, shape = [], self.input_shape
        for block in self.blocks:
            shape = block.output_shape(shape)
            shapes.append(shape)
        return shapes

    def state_dict(self) -> dict:
        """Everything needed to continue training this network (see Crossbar.state_dict)."""
        return {"spec": self.spec, "crossbars": [c.state_dict() for c in self.crossbars()],
                "aux": {name: c.state_dict() for name, c in self.aux.items()}}

    def load_state_dict(self, state: dict) -> None:
        aux = state.get("aux", {})
        if state["spec"] != self.spec or len(state["crossbars"]) != len(self.blocks) or set(aux) != set(self.aux):
            raise ValueError(f"load_state_dict: saved network {state['spec']!r} does not match {self.spec!r}")
        for crossbar, saved in zip(self.crossbars(), state["crossbars"]):
            crossbar.load_state_dict(saved)
        for name, saved in aux.items():
            self.aux[name].load_state_dict(saved)

    def exact_copy(self) -> "Network":
        """The same network on exact crossbars holding this network's current weights."""
        blocks = [Block(block.layer.exact_copy(), block.act, block.pool) for block in self.blocks]
        return Network(blocks, self.input_shape, self.spec, {n: exact_copy(c) for n, c in self.aux.items()})


def _uniform_init(rng: np.random.Generator, out: int, fan_in: int, bias: bool) -> np.ndarray:
    """torch's default Linear/Conv init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b."""
    bound = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=(out, fan_in + bias)).astype(backend.DTYPE)


_SPEC = re.compile(r"^(?P<kind>mlp|cnn|rhm-cnn):(?P<dims>\d+(?:[-:]\d+)*)(?:@(?P<width>\d+(?:\.\d*)?|\.\d+))?$")
MODEL_KINDS = ("mlp:IN-H1-...-OUT", "cnn:C1-C2-...", "rhm-cnn:H[:S]")


def build_network(
    spec: str,
    input_shape: tuple[int, ...],
    n_classes: int,
    make_crossbar: CrossbarFactory,
    seed: int = 0,
    activation: str = "relu",
    bias: bool = True,
    weights: list | None = None,
    readout: bool = True,
) -> Network:
    """The network of `spec` on crossbars from `make_crossbar`, programmed with torch's default init
    drawn from `seed`, or with `weights` (one (out, in[+1]) matrix per layer, e.g. a trained run's).
    readout=False: the encoder only (see the module docstring)."""
    m = _SPEC.match(spec.replace(" ", ""))
    if not m or (m["kind"] != "rhm-cnn" and ":" in m["dims"]) or (m["kind"] == "rhm-cnn" and "-" in m["dims"]):
        raise HiltError(f"unknown model {spec!r}; allowed forms: {', '.join(MODEL_KINDS)} with optional @WIDTH")
    if activation not in ACTIVATIONS:
        raise HiltError(f"unknown activation {activation!r}; allowed: {', '.join(ACTIVATIONS)}")
    dims = [int(v) for v in re.split("[-:]", m["dims"])]
    width = float(m["width"]) if m["width"] else 1.0
    if not 0 < width <= 64 or min(dims) < 1:
        raise HiltError(f"model {spec!r}: widths must be >= 1 and the multiplier in (0, 64]")
    scaled = lambda h: max(1, round(h * width))  # noqa: E731
    kind = m["kind"]
    if kind == "mlp":
        n_in = int(np.prod(input_shape))
        last, example = (n_classes, f"mlp:{n_in}-256-{n_classes}") if readout else (None, f"mlp:{n_in}-256-256")
        if len(dims) < 2 or dims[0] != n_in or (readout and dims[-1] != n_classes):
            what = f" and end with the number of classes {n_classes}" if readout else ""
            raise HiltError(f"model {spec!r} does not fit the data: it must start with the input size {n_in}{what}, "
                            f"e.g. {example}")
        sizes = [n_in] + [scaled(h) for h in dims[1:-1]] + [last or scaled(dims[-1])]
        shapes = list(zip(sizes[1:], sizes[:-1]))  # (out, fan_in) per layer
        if not readout:
            shapes.append(None)
    elif kind == "cnn":
        if len(input_shape) != 3:
            raise HiltError(f"model {spec!r} needs image data (C, H, W); this dataset has shape {input_shape}")
        C, H, W = input_shape
        shapes = []
        for channels in dims:
            if min(H, W) < 2:
                raise HiltError(f"model {spec!r} has too many pooling stages for {input_shape} inputs")
            shapes.append((scaled(channels), C * 9))
            C, H, W = scaled(channels), H // 2, W // 2
        shapes.append((n_classes, C * H * W) if readout else None)
    else:
        channels, s = (dims + [2])[:2] if len(dims) <= 2 else (None, None)
        depth = round(math.log(input_shape[-1], s)) if len(input_shape) == 2 and s and s >= 2 else 0
        if channels is None or depth < 1 or s**depth != input_shape[-1]:
            raise HiltError(f"model {spec!r} needs sequences (channels, s^L) such as rhm's, with s = {s}; "
                            f"this dataset has shape {input_shape}")
        C, shapes = input_shape[0], []
        for _ in range(depth):
            shapes.append((scaled(channels), C * s))
            C = scaled(channels)
        shapes.append((n_classes, C) if readout else None)
    layers = [shape for shape in shapes if shape is not None]
    n_weights = sum(out * (fan_in + bias) for out, fan_in in layers)
    check_memory(f"model {spec} ({n_weights:,} weights)", n_weights * getattr(make_crossbar, "bytes_per_weight", 16))

    rng = np.random.default_rng(seed)
    act = ACTIVATIONS[activation]()
    ident = ACTIVATIONS["identity"]()
    if weights is not None and len(weights) != len(layers):
        raise ValueError(f"build_network: {len(weights)} weight matrices for the {len(layers)} layers of {spec}")
    crossbars = []
    for k, (out, fan_in) in enumerate(layers):
        xbar = make_crossbar(out, fan_in, bias)
        xbar.program(backend.asarray(_uniform_init(rng, out, fan_in, bias) if weights is None else weights[k]))
        crossbars.append(xbar)
    hidden = crossbars[:-1] if readout else crossbars
    if kind == "mlp":
        blocks = [Block(Dense(x), act) for x in hidden]
    elif kind == "cnn":
        geometry = ConvGeometry(kernel=3, stride=1, padding=1)
        blocks = [Block(Conv2d(x, geometry), act, MaxPool2d(2)) for x in hidden]
    else:
        blocks = [Block(PatchConv1d(x, s), act) for x in hidden]
    if readout:
        blocks.append(Block(Dense(crossbars[-1]), ident))
    return Network(blocks, input_shape, spec)


def init_crossbar(make_crossbar: CrossbarFactory, out: int, fan_in: int, rng: np.random.Generator,
                  bias: bool = False) -> Crossbar:
    """One more crossbar from the factory with torch's default init (for a rule's own matrices)."""
    xbar = make_crossbar(out, fan_in, bias)
    xbar.program(backend.asarray(_uniform_init(rng, out, fan_in, bias)))
    return xbar
