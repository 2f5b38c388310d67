"""aihwkit's own training loop (AnalogSequential + AnalogSGD) on the same network as hilt (MLPs
and convnets: AnalogLinear, AnalogConv2d, max-pool, ReLU).

The reference for the acceptance comparison and the bench: same device preset and overrides,
same update algorithm (the spec's rpu config), same layer sizes, same data order, batch and lr, mean cross-entropy, the bias as an analog
column (hilt stores it that way too: `digital_bias=False`), one global weight scale per layer
(omega as hilt's), aihwkit's default tile splitting (512).

Initial weights: aihwkit's own init (torch's U(+-1/sqrt(fan_in)), the distribution hilt uses),
programmed once, as in hilt. Copying hilt's weights in would program every tile twice
(AnalogLinear programs its init on construction), and on write-noise devices (ReRAM) each
programming adds write noise: measured on rram, a second programming alone lifts bp on digits
from ~0.59 to ~0.76 after 10 epochs, so a copied init would not be the same experiment.
"""

from __future__ import annotations

import time

import numpy as np

from hilt.analog.layers import Block, Conv2d, Dense
from hilt.analog.network import Network, crossbar_factory
from hilt.analog.periphery import ACTIVATIONS, MaxPool2d
from hilt.errors import HiltError
from hilt.devices.presets import DeviceSpec
from hilt.seeds import stream


def native_model(net: Network, spec: DeviceSpec, seed: int = 0, init_weights=None):
    """aihwkit AnalogSequential with the layers of an hilt MLP or convnet (3x3 convs, max-pools,
    dense layers; ReLU or identity), its own init programmed once.

    `init_weights` (one [W | b] array per layer) reprograms the tiles with those weights instead:
    a paired comparison from one starting point, fair only on devices whose programming adds no
    write noise (pcm; not the ReRAM presets).
    """
    import torch
    from aihwkit.nn import AnalogConv2d, AnalogLinear, AnalogSequential

    if spec.summed:
        raise HiltError("aihwkit has no batch-summed update (--update summed is hilt's): no native counterpart")
    torch.manual_seed(seed)
    layers, flat = [], False
    for k, block in enumerate(net.blocks):
        xbar = block.crossbar
        cfg = spec.rpu_config()
        cfg.mapping.digital_bias = False
        cfg.mapping.weight_scaling_omega = spec.crossbar_option("weight_scaling_omega")
        cfg.mapping.weight_scaling_columnwise = False
        if type(block.layer) is Conv2d:
            g = block.layer.geometry
            channels = xbar.in_size // g.kernel**2
            lin = AnalogConv2d(channels, xbar.out_size, g.kernel, stride=g.stride, padding=g.padding,
                               bias=xbar.bias, rpu_config=cfg)
            shape = (xbar.out_size, channels, g.kernel, g.kernel)
        elif type(block.layer) is Dense:
            if not flat and k:
                layers.append(torch.nn.Flatten())
            flat = True
            lin = AnalogLinear(xbar.in_size, xbar.out_size, bias=xbar.bias, rpu_config=cfg)
            shape = (xbar.out_size, xbar.in_size)
        else:
            raise HiltError(f"no native counterpart for {type(block.layer).__name__} layers")
        if init_weights is not None:
            W = torch.from_numpy(np.array(init_weights[k], dtype=np.float32))
            lin.set_weights(W[:, : xbar.in_size].reshape(shape), W[:, xbar.in_size] if xbar.bias else None)
        layers.append(lin)
        if isinstance(block.pool, MaxPool2d):
            layers.append(torch.nn.MaxPool2d(block.pool.k))
        elif block.pool is not None:
            raise HiltError("no native counterpart for average pooling here")
        act = {"relu": torch.nn.ReLU, "identity": None}.get(block.act.name, "none")
        if act == "none":
            raise HiltError(f"no native counterpart for activation {block.act.name!r} here (relu, identity)")
        if act is not None:
            layers.append(act())
    return AnalogSequential(*layers)


def train_native(net: Network, spec: DeviceSpec, data, epochs: int, batch_size: int, lr: float, seed: int,
                 init_weights=None) -> dict:
    """Train with aihwkit's AnalogSGD; data order drawn exactly as hilt's train loop draws it."""
    import torch
    from aihwkit.optim import AnalogSGD

    model = native_model(net, spec, seed, init_weights)
    conv = type(net.blocks[0].layer) is Conv2d
    opt = AnalogSGD(model.parameters(), lr=lr)
    opt.regroup_param_groups(model)
    loss_fn = torch.nn.CrossEntropyLoss()
    shape = (-1, *data.input_shape) if conv else (-1, int(np.prod(data.input_shape)))
    x_tr = torch.from_numpy(np.ascontiguousarray(data.x_train.reshape(shape)))
    y_tr = torch.from_numpy(data.y_train)
    x_te = torch.from_numpy(np.ascontiguousarray(data.x_test.reshape(shape)))
    order = stream(seed, "data_order")  # as hilt's own run draws its batches
    n = len(x_tr)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        perm = torch.from_numpy(order.permutation(n))
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            opt.zero_grad()
            loss_fn(model(x_tr[idx]), y_tr[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(x_te).argmax(1).numpy()
    return {"test_accuracy": float((pred == data.y_test).mean()), "wall_time_s": time.perf_counter() - start}


def update_parity(spec: DeviceSpec, W0, x, d, lr: float, draws: int, updates: int = 1) -> dict:
    """The same pulsed update through hilt's AnalogCrossbar and through aihwkit's AnalogLinear + AnalogSGD.

    Each draw programs W0 ([W | b], shape (out, in + 1)) into both, applies `updates` times the update
    W <- W - lr * d^T x (x: (B, in), d: (B, out)) and reads the change. Returns the changes, shape
    (draws, out, in + 1) per side, and the time of the updates alone (hilt: `update`; native:
    `AnalogSGD.step`, which also runs post_update_step), in seconds per draw.
    """
    import torch
    from aihwkit.optim import AnalogSGD

    out_size, in_size = W0.shape[0], W0.shape[1] - 1
    xbar = crossbar_factory(spec)(out_size, in_size, True)
    xbar.program(W0)  # fixes hilt's weight scale from W0, as set_weights does on the native side
    net = Network([Block(Dense(xbar), ACTIVATIONS["identity"]())], (in_size,), f"mlp:{in_size}-{out_size}")
    model = native_model(net, spec, init_weights=[W0])
    opt = AnalogSGD(model.parameters(), lr=lr)
    opt.regroup_param_groups(model)
    lin = model[0]
    W_t, b_t = torch.from_numpy(np.ascontiguousarray(W0[:, :in_size])), torch.from_numpy(W0[:, in_size].copy())
    x_t, d_t = torch.from_numpy(x), torch.from_numpy(d)

    def native_weights():
        w, b = lin.get_weights()
        return np.c_[w.numpy(), b.numpy()]

    result = {"hilt": [], "native": [], "hilt_s": [], "native_s": []}
    for _ in range(draws):
        xbar.program(W0)
        before, elapsed = np.asarray(xbar.weights()), 0.0
        for _ in range(updates):
            start = time.perf_counter()
            xbar.update(x, d, lr)
            elapsed += time.perf_counter() - start
        result["hilt"].append(np.asarray(xbar.weights()) - before)
        result["hilt_s"].append(elapsed)

        lin.set_weights(W_t, b_t)
        before, elapsed = native_weights(), 0.0
        for _ in range(updates):
            opt.zero_grad()
            model(x_t).backward(d_t)
            start = time.perf_counter()
            opt.step()
            elapsed += time.perf_counter() - start
        result["native"].append(native_weights() - before)
        result["native_s"].append(elapsed)
    return {k: np.array(v) for k, v in result.items()}


PARITY_LR, PARITY_UPDATES = 0.05, 5  # the lr and the updates per draw that go with `parity_case`


def parity_case(out_size: int = 16, in_size: int = 24, batch: int = 8, seed: int = 0):
    """(W0, x, d) for `update_parity`: weights of torch's init scale, inputs in [0, 1) and errors large
    enough for several pulses per weight (write noise, std ~0.1 per weight on the ReRAM presets,
    would hide single-pulse updates)."""
    rng = np.random.default_rng(seed)
    bound = 1 / np.sqrt(in_size)
    W0 = rng.uniform(-bound, bound, (out_size, in_size + 1)).astype(np.float32)
    x = rng.uniform(0, 1, (batch, in_size)).astype(np.float32)
    d = (0.3 * rng.standard_normal((batch, out_size))).astype(np.float32)
    return W0, x, d


def parity_stats(r: dict) -> dict:
    """How far apart the two sides of an `update_parity` result are.

    z_means: mean over weights of the squared difference of the per-weight mean changes over its
    standard error; about 1 when both sides draw from one distribution. The floor covers
    deterministic devices (ideal), where the two paths differ by float rounding only.
    spread_ratio: hilt's over aihwkit's mean per-weight standard deviation (nan when deterministic).
    time_ratio: hilt's fastest draw over aihwkit's (the minimum is the timing least disturbed by load).
    """
    hilt, native = r["hilt"], r["native"]
    diff = hilt.mean(0) - native.mean(0)
    se2 = (hilt.var(0, ddof=1) + native.var(0, ddof=1)) / len(hilt)
    floor = (1e-6 * np.sqrt((native.mean(0) ** 2).mean())) ** 2
    spread_n = native.std(0, ddof=1).mean()
    deterministic = spread_n <= 1e-6 * np.abs(native.mean(0)).mean()
    return {"z_means": float((diff**2 / (se2 + floor)).mean()),
            "spread_ratio": float("nan") if deterministic else float(hilt.std(0, ddof=1).mean() / spread_n),
            "time_ratio": float(r["hilt_s"].min() / r["native_s"].min())}
