"""Networks as ordered blocks, model specs, and the crossbar factory.

Model specs: `mlp:64-256-10` (input, hidden..., output; input and output must match
the data), `cnn:8-16` (3x3 'same' conv + ReLU + 2x2 max-pool per listed channel count, then a
dense readout to the classes), `cnn1d:25-25-25` (1-D signals: MNIST-1D's ConvBase, convolutions
with kernel 5 then 3, stride 2, padding 1, ReLU, then a dense readout), `rhm-cnn:256` (Cagnetta et al. 2024: non-overlapping 1-D convolutions with
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

from hilt.analog import backend
from hilt.analog.costs import zero_counts
from hilt.analog.crossbar import Crossbar, ExactCrossbar, exact_copy
from hilt.analog.layers import Block, Conv1d, Conv2d, Dense
from hilt.analog.optim import Optimizer
from hilt.analog.periphery import ACTIVATIONS, ConvGeometry, MaxPool2d
from hilt.errors import HiltError, check_memory
from hilt.seeds import stream
from hilt.devices.presets import DeviceSpec

# What one weight costs in memory: exact float32 W, a gradient-sized temporary and Adam's two
# moments; aihwkit tiles (weights, hidden device parameters, simulator buffers) measured as peak
# RSS after two bp steps of 784-2000-1000-10: rram 75, rram-mp 50, pcm 118, rram-ttv2 122 bytes
# (rram 784-4096-4096-10: 50), rounded up. (An earlier estimate of 330-380 was not reproduced.)
EXACT_BYTES_PER_WEIGHT, ANALOG_BYTES_PER_WEIGHT = 16, 160
EVAL_BATCH = 500  # rows per read when a whole split is evaluated (test accuracy, probe features)


@dataclass(frozen=True)
class CrossbarFactory:
    """Makes crossbars of one kind; `bytes_per_weight` is what one weight costs in memory."""

    make: Callable[[int, int, bool], Crossbar]
    bytes_per_weight: int

    def __call__(self, out: int, inp: int, bias: bool) -> Crossbar:
        return self.make(out, inp, bias)


def crossbar_factory(spec: DeviceSpec, optimizer: Callable[[], Optimizer] | None = None) -> CrossbarFactory:
    """Builds crossbars of one kind: exact (with a fresh optimizer each) or analog tiles."""
    if spec.is_exact:
        return CrossbarFactory(lambda out, inp, bias: ExactCrossbar(out, inp, bias, optimizer() if optimizer else None),
                               EXACT_BYTES_PER_WEIGHT)
    from hilt.analog.analog_crossbar import AnalogCrossbar

    return CrossbarFactory(lambda out, inp, bias: AnalogCrossbar(out, inp, bias, spec), ANALOG_BYTES_PER_WEIGHT)


class Network:
    """The blocks of a model (weight layer, optional pool, activation) and the rules' auxiliary
    crossbars (`aux`). Inputs are batch-first float32 arrays of `input_shape` per sample."""

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

    def crossbars(self) -> list[Crossbar]:
        """The blocks' crossbars, in order (not the auxiliary ones)."""
        return [b.crossbar for b in self.blocks]

    def take_counts(self) -> dict[str, float]:
        """What every crossbar (the rules' auxiliary ones too) was asked since the last call, summed
        (analog/costs.py); the counters restart from zero."""
        total = zero_counts()
        for crossbar in [*self.crossbars(), *self.aux.values()]:
            for key, value in crossbar.take_counts().items():
                total[key] += value
        return total

    def weights(self) -> list:
        """Every block's matrix as read out, out x (in + bias), in order."""
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
        """Restore what state_dict returned (ValueError for another model)."""
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


def _lecun_init(rng: np.random.Generator, out: int, fan_in: int, bias: bool) -> np.ndarray:
    """flax's default: W ~ truncated normal(-2, 2) with variance 1/fan_in, b = 0."""
    W = np.zeros((out, fan_in + bias), dtype=backend.DTYPE)
    std = 1.0 / math.sqrt(fan_in) / 0.87962566103423978  # std of N(0,1) truncated to (-2, 2)
    draw = rng.standard_normal((out, fan_in))
    while (bad := np.abs(draw) > 2).any():
        draw[bad] = rng.standard_normal(int(bad.sum()))
    W[:, :fan_in] = draw * std
    return W


_SPEC = re.compile(r"^(?:(?P<kind>mlp|cnn1d|cnn|rhm-cnn):(?P<dims>\d+(?:[-:]\d+)*)|(?P<named>vgg6|vgg16))"
                   r"(?:@(?P<width>\d+(?:\.\d*)?|\.\d+))?$")
MODEL_KINDS = ("mlp:IN-H1-...-OUT", "cnn:C1-C2-...", "cnn1d:C1-C2-...", "rhm-cnn:H[:S]", "vgg6", "vgg16")
# cnn1d: MNIST-1D's ConvBase (Greydanus 2020; cnn1d:25-25-25 there): kernel 5, then 3; stride 2, padding 1.
CNN1D_KERNELS, CNN1D_STRIDE, CNN1D_PADDING = (5, 3), 2, 1
# VGG nets as (3x3 'same' conv channels, max-pool 2x2 after it?) and hidden dense widths.
VGG = {
    # CLAPP++'s VGG (Wu et al. 2026, Table A1)
    "vgg6": ([(128, False), (256, True), (256, False), (512, True), (1024, True), (1024, True)], []),
    # Two Tales' VGG16 (Høier & Zach 2024, §6.2)
    "vgg16": ([(64, False), (64, True), (128, False), (128, True), (256, False), (256, False), (256, True),
               (512, False), (512, False), (512, True), (512, False), (512, False), (512, True)], [4096, 4096]),
}
LECUN_INIT = {"vgg16"}  # flax default: LeCun-normal kernels, zero biases; the others torch's uniform


@dataclass
class LayerPlan:
    out: int
    fan_in: int
    layer: Callable[[Crossbar], Dense]  # the weight layer on its crossbar
    pool: int = 0  # max-pool k after the layer (0: none)
    positions: int = 1  # where the weights are applied per sample (a conv's output positions; dense: 1)


def _conv_plan(spec: str, convs: list[tuple[int, bool]], dense: list[int], input_shape, scaled) -> tuple[list, int]:
    """3x3 'same' convs (+ 2x2 max-pool where flagged), then dense hidden layers."""
    if len(input_shape) != 3:
        raise HiltError(f"model {spec!r} needs image data (C, H, W); this dataset has shape {input_shape}")
    (C, H, W), plan = input_shape, []
    geometry = ConvGeometry(kernel=3, stride=1, padding=1)
    for channels, pool in convs:
        if pool and min(H, W) < 2:
            raise HiltError(f"model {spec!r} has too many pooling stages for {input_shape} inputs")
        plan.append(LayerPlan(scaled(channels), C * 9, lambda x: Conv2d(x, geometry), 2 if pool else 0, H * W))
        C, H, W = scaled(channels), H // (1 + pool), W // (1 + pool)
    n = C * H * W
    for units in dense:
        plan.append(LayerPlan(scaled(units), n, Dense))
        n = scaled(units)
    return plan, n


def _plan(spec: str, m, input_shape, n_classes: int, readout: bool, width: float) -> tuple[list[LayerPlan], int]:
    """The hidden layers of the spec and the fan-in of its readout."""
    scaled = lambda h: max(1, round(h * width))  # noqa: E731
    if m["named"]:
        convs, dense = VGG[m["named"]]
        return _conv_plan(spec, convs, dense, input_shape, scaled)
    kind, dims = m["kind"], [int(v) for v in re.split("[-:]", m["dims"])]
    if min(dims) < 1:
        raise HiltError(f"model {spec!r}: widths must be >= 1 and the multiplier in (0, 64]")
    if kind == "mlp":
        n_in = int(np.prod(input_shape))
        example = f"mlp:{n_in}-256-{n_classes}" if readout else f"mlp:{n_in}-256-256"
        if len(dims) < 2 or dims[0] != n_in or (readout and dims[-1] != n_classes):
            what = f" and end with the number of classes {n_classes}" if readout else ""
            raise HiltError(f"model {spec!r} does not fit the data: it must start with the input size {n_in}{what}, "
                            f"e.g. {example}")
        sizes = [n_in] + [scaled(h) for h in (dims[1:-1] if readout else dims[1:])]
        return [LayerPlan(out, fan_in, Dense) for out, fan_in in zip(sizes[1:], sizes[:-1])], sizes[-1]
    if kind == "cnn":
        return _conv_plan(spec, [(c, True) for c in dims], [], input_shape, scaled)
    if kind == "cnn1d":
        if len(input_shape) != 2:
            raise HiltError(f"model {spec!r} needs 1-D signals (C, L) such as mnist1d's; this dataset has shape {input_shape}")
        (C, L), plan = input_shape, []
        for k, channels in enumerate(dims):
            kernel = CNN1D_KERNELS[min(k, 1)]
            if L + 2 * CNN1D_PADDING < kernel:
                raise HiltError(f"model {spec!r} has too many stride-2 layers for signals of length {input_shape[1]}")
            L_out = ConvGeometry(kernel, CNN1D_STRIDE, CNN1D_PADDING, dims=1).out_hw(1, L)[1]
            plan.append(LayerPlan(scaled(channels), C * kernel,
                                  lambda x, k=kernel: Conv1d(x, k, CNN1D_STRIDE, CNN1D_PADDING), positions=L_out))
            C, L = scaled(channels), L_out
        return plan, C * L
    channels, s = (dims + [2])[:2] if len(dims) <= 2 else (None, None)
    depth = round(math.log(input_shape[-1], s)) if len(input_shape) == 2 and s and s >= 2 else 0
    if channels is None or depth < 1 or s**depth != input_shape[-1]:
        raise HiltError(f"model {spec!r} needs sequences (channels, s^L) such as rhm's, with s = {s}; "
                        f"this dataset has shape {input_shape}")
    C, plan, L = input_shape[0], [], input_shape[-1]
    for _ in range(depth):
        L //= s
        plan.append(LayerPlan(scaled(channels), C * s, lambda x: Conv1d(x, kernel=s, stride=s), positions=L))
        C = scaled(channels)
    return plan, C


# Working memory in float32 values per sample of (inputs + outputs) of every weight application
# (im2col patches and activations), measured with tracemalloc on the exact path: 0.7-3.3x for
# steps of bp, dp_adjoint and dfa and up to 6.2x for ep on a wide conv (cnn:256 on 28x28); 0.25-2.3x
# for evaluation batches of EVAL_BATCH. An estimate to refuse what cannot fit, not a bound.
STEP_COPIES, EVAL_COPIES = 4.0, 2.5


def working_bytes(plan: list[LayerPlan], batch_size: int) -> float:
    """About how many bytes a training step on `batch_size` samples and an evaluation batch take
    beyond the weights (0 for batch_size 0)."""
    if not batch_size:
        return 0.0
    per_sample = sum(p.positions * (p.fan_in + p.out) for p in plan)
    return 4.0 * per_sample * max(STEP_COPIES * batch_size, EVAL_COPIES * EVAL_BATCH)


def check_model(spec: str, activation: str = "relu"):
    """The parsed form of a model spec and its width multiplier, checked with its activation before
    any data is loaded (HiltError naming the problem and what is allowed)."""
    m = _SPEC.match(spec.replace(" ", ""))
    if not m or (m["kind"] and ((m["kind"] != "rhm-cnn" and ":" in m["dims"]) or
                                (m["kind"] == "rhm-cnn" and "-" in m["dims"]))):
        raise HiltError(f"unknown model {spec!r}; allowed forms: {', '.join(MODEL_KINDS)} with optional @WIDTH")
    if activation not in ACTIVATIONS:
        raise HiltError(f"unknown activation {activation!r}; allowed: {', '.join(ACTIVATIONS)}")
    width = float(m["width"]) if m["width"] else 1.0
    if not 0 < width <= 64:
        raise HiltError(f"model {spec!r}: widths must be >= 1 and the multiplier in (0, 64]")
    return m, width


def plan_network(spec: str, input_shape: tuple[int, ...], n_classes: int, make_crossbar: CrossbarFactory,
                 activation: str = "relu", bias: bool = True, readout: bool = True, batch_size: int | None = None):
    """The parsed spec and the layer plan of `build_network`'s network, checked against the data's
    shape and the memory it would take (weights, and with `batch_size` a batch's working arrays),
    without allocating it: HiltError otherwise."""
    m, plan, n_weights, nbytes = network_bytes(spec, input_shape, n_classes, make_crossbar, activation, bias, readout,
                                               batch_size)
    batches = f" with batches of {batch_size} (and of {EVAL_BATCH} to evaluate)" if batch_size else ""
    check_memory(f"model {spec} ({n_weights:,} weights){batches}", nbytes)
    return m, plan


def network_bytes(spec: str, input_shape: tuple[int, ...], n_classes: int, make_crossbar: CrossbarFactory,
                  activation: str = "relu", bias: bool = True, readout: bool = True, batch_size: int | None = None):
    """(parsed spec, layer plan, number of weights, bytes): what the network of `spec` would take
    in memory (its weights on these crossbars, and with `batch_size` a batch's working arrays)."""
    m, width = check_model(spec, activation)
    plan, n_last = _plan(spec, m, input_shape, n_classes, readout, width)
    if readout:
        plan.append(LayerPlan(n_classes, n_last, Dense))
    n_weights = sum(p.out * (p.fan_in + bias) for p in plan)
    nbytes = n_weights * getattr(make_crossbar, "bytes_per_weight", EXACT_BYTES_PER_WEIGHT)
    return m, plan, n_weights, nbytes + working_bytes(plan, batch_size or 0)


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
    batch_size: int | None = None,
) -> Network:
    """The network of `spec` on crossbars from `make_crossbar`, programmed with its init drawn from
    `seed`, or with `weights` (one (out, in[+1]) matrix per layer, e.g. a trained run's).
    readout=False: the encoder only (see the module docstring). With `batch_size` (the samples one
    step sees), the memory check counts the batches' working arrays too (`working_bytes`)."""
    m, plan = plan_network(spec, input_shape, n_classes, make_crossbar, activation, bias, readout, batch_size)
    if weights is not None and len(weights) != len(plan):
        raise ValueError(f"build_network: {len(weights)} weight matrices for the {len(plan)} layers of {spec}")

    rng = stream(seed, "init")
    init = _lecun_init if m["named"] in LECUN_INIT else _uniform_init
    act, ident = ACTIVATIONS[activation](), ACTIVATIONS["identity"]()
    blocks = []
    for k, p in enumerate(plan):
        xbar = make_crossbar(p.out, p.fan_in, bias)
        xbar.program(backend.asarray(init(rng, p.out, p.fan_in, bias) if weights is None else weights[k]))
        is_readout = readout and k == len(plan) - 1
        blocks.append(Block(p.layer(xbar), ident if is_readout else act, MaxPool2d(p.pool) if p.pool else None))
    return Network(blocks, input_shape, spec)


def init_crossbar(make_crossbar: CrossbarFactory, out: int, fan_in: int, rng: np.random.Generator,
                  bias: bool = False) -> Crossbar:
    """One more crossbar from the factory with torch's default init (for a rule's own matrices)."""
    xbar = make_crossbar(out, fan_in, bias)
    xbar.program(backend.asarray(_uniform_init(rng, out, fan_in, bias)))
    return xbar
