"""Step-time benchmarks (what `hilt bench` runs).

- analog: one `bp` training step of hilt on AnalogCrossbars divided by one step of aihwkit's own
  AnalogSequential + AnalogSGD (forward, loss.backward, optimizer.step) on the same MLP, device,
  batch, lr and data. Same work: same tiles, reads and pulsed updates; the ratio is hilt's
  overhead. Pulsed updates cost what the data asks for (pulse coincidences), so both sides run
  the same batches and are timed in alternating blocks.
- exact: one `bp` step on ExactCrossbars divided by the same matmuls done directly in NumPy
  (per layer x W^T, d W (not for the first layer), d^T x): the floor any exact step must pay.
- exact, flat: the same exact bp step divided by `flat_bp_step`, one NumPy function doing the
  step's arithmetic (bias, ReLU, softmax cross-entropy, backward, SGD) on copies of the weights:
  what hilt's layers, crossbar contract and checks cost over the arithmetic itself.
- rule vs bp: one step of another rule (dp_adjoint with its defaults: fwbw, K = 1) divided by
  one bp step of hilt on the same backend.
- conv (`--vgg MODEL`): one exact-path step (SGD) of a rule (bp by default) of a conv net such
  as vgg16 on random images, in NumPy (CuPy on a GPU), against the same network's forward,
  backward and SGD step (BP, with a readout; for a self-supervised rule on its 2B views) in torch
  on the same device (CPU threads as configured; cuDNN on a GPU). Reports images/s (views/s for a
  self-supervised rule) and the peak memory of hilt's step (tracemalloc for NumPy; the CuPy pool
  after one step from empty; torch.cuda.max_memory_allocated for torch on a GPU).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

import numpy as np

from hilt.analog import backend
from hilt.analog.network import build_network, crossbar_factory
from hilt.errors import check_memory
from hilt.data.dataset import Dataset
from hilt.data.pairs import Pairs, next_row
from hilt.devices import HiltError, parse_device
from hilt.experiments.reference.torch_twin import torch_twin
from hilt.rules import make_rule


@dataclass
class BenchResult:
    name: str
    hilt_ms: float
    reference_ms: float
    reference: str
    extra: dict | None = None  # images/s, peak memory (conv bench)

    paired_ratio: float | None = None  # the median ratio of paired blocks (see _alternate)

    @property
    def ratio(self) -> float:
        """hilt's time / the reference's: the median ratio of paired blocks where the steps were
        timed in them, else the ratio of the median times."""
        return self.paired_ratio if self.paired_ratio is not None else self.hilt_ms / self.reference_ms


def check_options(steps: int, lr: float, models: dict[str, str], **batch_sizes: int) -> None:
    """HiltError for options no benchmark can run with (models: option name -> MLP spec)."""
    for name, model in models.items():
        if not re.fullmatch(r"mlp:\d+(-\d+)+", model) or min(_dims(model)) < 1:
            raise HiltError(f"--{name.replace('_', '-')} {model!r}: the benchmarks take an MLP, mlp:IN-H-...-OUT")
    if steps < 1:
        raise HiltError(f"--steps must be >= 1 (got {steps})")
    if not (lr > 0 and math.isfinite(lr)):
        raise HiltError(f"--lr must be a finite number > 0 (got {lr})")
    for name, size in batch_sizes.items():
        if size < 1:
            raise HiltError(f"--{name.replace('_', '-')} must be >= 1 (got {size})")


def isolated(cases) -> list["BenchResult"]:
    """Run each (function, args, kwargs) case in a fresh process, one after the other: a case's
    thread pools (torch's OpenMP after aihwkit or a convolution, NumPy's OpenBLAS) would otherwise
    keep spinning into the next case and slow it (measured: exact MLP steps 2x slower after the
    analog case in one process). A HiltError in a case is raised here."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    results = []
    for fn, args, kwargs in cases:
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            results.append(pool.submit(fn, *args, **kwargs).result())
    return results


def _dims(model: str) -> list[int]:
    return [int(v) for v in model.split(":")[1].split("-")]


def _mlp(model: str, spec, seed: int, batch: int | None = None):
    dims = _dims(model)
    return build_network(model, (dims[0],), dims[-1], crossbar_factory(spec), seed=seed, batch_size=batch)


POOL = 8  # distinct input batches; the timed steps cycle through them (memory does not grow with --steps)
# Untimed training steps of both sides before an analog comparison: a pulsed update's C++ time
# grows with the pulses it fires, and the first steps from the initial weights fire many more
# than the rest of a run does (rram, lr 0.05: timed from step 1, 0.55-0.58x aihwkit's time; from
# step 300, 0.46-0.49x). The warmed-up step is the one a run spends most of its time in.
ANALOG_WARMUP = 300


def _check_inputs(batch: int, sample_values: int, copies: int = 1) -> None:
    """The bench's input batches (drawn in float64, kept in float32, `copies` more) fit."""
    check_memory(f"bench inputs ({POOL} batches of {batch} samples of {sample_values:,} values; --batch-size)",
                 (8.0 + 4.0 * copies) * POOL * batch * sample_values)


def _batches(model: str, batch: int, steps: int, seed: int):
    """Random inputs and labels: POOL batches for the warm-up and the timed steps of each side."""
    dims, rng = _dims(model), np.random.default_rng(seed)
    _check_inputs(batch, dims[0])
    xs = rng.uniform(0, 1, size=(POOL, batch, dims[0])).astype(np.float32)
    ys = rng.integers(0, dims[-1], size=(POOL, batch))
    return xs, ys


def _time_ms(fn, xs, ys, start: int, count: int) -> list[float]:
    times = []
    for i in range(start, start + count):
        i %= len(xs)
        t0 = time.perf_counter()
        fn(xs[i], ys[i])
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def _alternate(hilt_step, ref_step, xs, ys, steps: int, warmup: int = 1) -> tuple[float, float, float]:
    """Median ms per step of both, after `warmup` untimed steps of each on the same batches, timed
    in alternating blocks of the same batches (about 10 blocks), and the median over the blocks of
    (hilt's block median / the reference's block median), the ratio reported: a disturbance hits
    both sides of a pair alike."""
    for i in range(warmup):
        i %= len(xs)
        hilt_step(xs[i], ys[i])
        ref_step(xs[i], ys[i])
    hilt_t, ref_t, pairs, block = [], [], [], max(1, steps // 10)
    for start in range(2, steps + 2, block):
        count = min(block, steps + 2 - start)
        h, r = _time_ms(hilt_step, xs, ys, start, count), _time_ms(ref_step, xs, ys, start, count)
        hilt_t += h
        ref_t += r
        pairs.append(float(np.median(h)) / float(np.median(r)))
    return float(np.median(hilt_t)), float(np.median(ref_t)), float(np.median(pairs))


def bench_analog(model: str, device: str, batch: int, steps: int, lr: float, seed: int = 0,
                 update: str | None = None, warmup: int = ANALOG_WARMUP) -> BenchResult:
    """hilt's analog bp step against aihwkit's AnalogSequential + AnalogSGD on the same rpu config
    (ms per step), timed after `warmup` steps of both; `update`: an update algorithm other than
    the preset's own."""
    import torch
    from aihwkit.optim import AnalogSGD

    from hilt.experiments.reference.native import native_model

    backend.use("numpy")
    spec = parse_device(device, seed=seed, update=update)
    net = _mlp(model, spec, seed, batch)
    rule = make_rule("bp")
    native = native_model(net, spec, seed)
    opt = AnalogSGD(native.parameters(), lr=lr)
    opt.regroup_param_groups(native)
    loss_fn = torch.nn.CrossEntropyLoss()

    def native_step(x, y):
        opt.zero_grad()
        loss_fn(native(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()

    def hilt_step(x, y):
        rule.step(net, x, y, lr)

    xs, ys = _batches(model, batch, steps, seed)
    hilt_ms, native_ms, paired = _alternate(hilt_step, native_step, xs, ys, steps, warmup=warmup)
    return BenchResult(f"bp step, {device}, {model}, batch {batch}", hilt_ms, native_ms,
                       f"aihwkit AnalogSequential + AnalogSGD (after {warmup} steps)", paired_ratio=paired)


def _exact_against(model: str, batch: int, steps: int, lr: float, seed: int, reference: str, make_step) -> BenchResult:
    """hilt's exact bp step against a reference step, `make_step(net)`, made from the freshly built
    network (from its own copies of the weights), timed side by side on the same batches."""
    backend.use("numpy")
    net = _mlp(model, parse_device("exact"), seed, batch)
    rule = make_rule("bp")
    ref_step = make_step(net)

    def hilt_step(x, y):
        rule.step(net, x, y, lr)

    xs, ys = _batches(model, batch, steps, seed)
    hilt_ms, ref_ms, paired = _alternate(hilt_step, ref_step, xs, ys, steps)
    return BenchResult(f"bp step, exact, {model}, batch {batch}", hilt_ms, ref_ms, reference, paired_ratio=paired)


def bench_exact(model: str, batch: int, steps: int, lr: float, seed: int = 0) -> BenchResult:
    """hilt's exact bp step against the same matmuls in bare NumPy (ms per step)."""
    return _exact_against(model, batch, steps, lr, seed, "NumPy matmuls only", _floor_step)


def _floor_step(net):
    """The products of a bp step of `net` and nothing else: per layer x W^T, d W (not for the first
    layer) and d^T x."""
    Ws = [np.ascontiguousarray(c.W) for c in net.crossbars()]

    def floor_step(x, y):
        acts = [x]
        for W in Ws:
            acts.append(acts[-1] @ W.T)
        d = acts[-1]
        for k in reversed(range(len(Ws))):
            grad = d.T @ acts[k]
            if k:
                d = d @ Ws[k]
        return grad

    return floor_step


def flat_bp_step(Ws, bs, x, y, lr: float) -> tuple[float, int]:
    """One bp step of an MLP (ReLU hidden layers, linear output, biases, softmax cross-entropy, plain
    SGD) written as one flat NumPy function: the arithmetic of hilt's exact bp step without its
    layers, crossbars and checks. Updates the weights Ws (out x in) and biases bs in place; returns
    the batch's summed loss and correct count, as hilt's step does."""
    acts, pre = [x], []
    for k, (W, b) in enumerate(zip(Ws, bs)):
        a = acts[-1] @ W.T
        a += b
        pre.append(a)
        acts.append(np.maximum(a, 0) if k < len(Ws) - 1 else a)
    out = acts[-1]
    e = np.exp(out - out.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    rows = np.arange(len(out))
    loss = -float(np.log(np.maximum(p[rows, y], 1e-30)).sum())
    correct = int((out.argmax(axis=1) == y).sum())
    p[rows, y] -= 1.0
    d = p * (lr / len(out))  # lr / B times dL/da of the output
    for k in reversed(range(len(Ws))):
        below = (d @ Ws[k]) * (pre[k - 1] > 0) if k else None
        Ws[k] -= (acts[k].T @ d).T
        bs[k] -= d.sum(axis=0)
        d = below
    return loss, correct


def bench_flat(model: str, batch: int, steps: int, lr: float, seed: int = 0) -> BenchResult:
    """hilt's exact bp step against `flat_bp_step` on copies of the same weights (ms per step): the
    cost of hilt's layers, crossbar contract and checks over the same arithmetic."""
    def flat_step(net):
        Ws = [c.W.copy(order="K") for c in net.crossbars()]  # hilt's own layout
        bs = [c.b.copy() for c in net.crossbars()]
        return lambda x, y: flat_bp_step(Ws, bs, x, y, lr)

    return _exact_against(model, batch, steps, lr, seed, "a flat NumPy bp step (same arithmetic)", flat_step)


def bench_rule_vs_bp(rule_name: str, model: str, device: str, batch: int, steps: int, lr: float,
                     seed: int = 0) -> BenchResult:
    """One training step of a rule (its default options) divided by one `bp` step, same backend."""
    spec = parse_device(device, seed=seed)
    backend.use("auto" if spec.is_exact else "numpy")
    rule, bp = make_rule(rule_name), make_rule("bp")
    dims = _dims(model)
    stand_in = Dataset("bench", np.zeros((1, dims[0]), np.float32), np.zeros(1, np.int64), np.zeros((1, dims[0]), np.float32),
                       np.zeros(1, np.int64), n_classes=dims[-1], default_hidden=dims[1])
    plan = rule.network_plan(stand_in)  # the rule's own network for the model's sizes (ff: label inputs, no readout)
    factory = crossbar_factory(spec)
    nets = [build_network(model if plan.readout else plan.default_model, plan.input_shape, dims[-1], factory, seed=seed,
                          readout=plan.readout, batch_size=batch), _mlp(model, spec, seed, batch)]
    rule.attach(nets[0], factory, np.random.default_rng(seed))
    xs, ys = _batches(model, batch, steps, seed)
    rule_ms, bp_ms, paired = _alternate(lambda x, y: rule.step(nets[0], x, y, lr), lambda x, y: bp.step(nets[1], x, y, lr),
                                xs, ys, steps)
    return BenchResult(f"{rule_name} step, {device}, {model}, batch {batch}", rule_ms, bp_ms, "hilt bp step",
                       paired_ratio=paired)


def _peak_bytes(step, x, y) -> int:
    """Peak memory allocated during one call of step (after a warm-up call)."""
    xp = backend.xp()
    if xp is np:
        import tracemalloc

        tracemalloc.start()
        step(x, y)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak
    pool = xp.get_default_memory_pool()
    pool.free_all_blocks()
    step(x, y)
    xp.cuda.Device().synchronize()
    return pool.total_bytes()


def bench_conv(model: str, image_size: int, n_classes: int, batch: int, steps: int, lr: float,
               seed: int = 0, rule_name: str = "bp", **rule_options) -> BenchResult:
    """An exact-path conv net's step (rule rule_name) against the same network in torch (ms per
    step, peak memory)."""
    import torch

    xp = backend.use("auto")
    device = "cpu" if xp is np else "cuda"
    rule = make_rule(rule_name, **{k: v for k, v in rule_options.items() if v is not None})
    ssl = rule.self_supervised
    factory, shape = crossbar_factory(parse_device("exact")), (3, image_size, image_size)
    net = build_network(model, shape, n_classes, factory, seed=seed, readout=not ssl, batch_size=(1 + ssl) * batch)
    rule.attach(net, factory, np.random.default_rng(seed))
    # A self-supervised step sees two views of `batch` images; torch's BP step then gets the 2B views.
    reference_net = build_network(model, shape, n_classes, factory, seed=seed) if ssl else net
    params, forward = torch_twin(reference_net, device)
    rng = np.random.default_rng(seed)
    _check_inputs((1 + ssl) * batch, int(np.prod(shape)), copies=3)  # and hilt's and torch's copies
    xs = rng.normal(size=(POOL, (1 + ssl) * batch, *shape)).astype(np.float32)
    ys = rng.integers(0, n_classes, size=(POOL, (1 + ssl) * batch))
    hx, tx = [backend.asarray(x) for x in xs], [torch.from_numpy(x).to(device) for x in xs]
    ty = [torch.from_numpy(y).to(device) for y in ys]
    if ssl:
        hx = [Pairs(x[:batch], x[batch:], next_row(2 * batch)) for x in hx]

    def sync():
        if device == "cuda":
            xp.cuda.Device().synchronize()
            torch.cuda.synchronize()

    def hilt_step(i, y):  # _alternate passes (batch index, labels)
        rule.step(net, hx[i], y, lr)
        sync()

    def torch_step(i, y):
        loss = torch.nn.functional.cross_entropy(forward(tx[i]), ty[i])
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
                p.grad = None
        sync()

    hilt_ms, torch_ms, paired = _alternate(hilt_step, torch_step, list(range(len(xs))), ys, steps)
    inputs = (1 + ssl) * batch  # images, or views of them
    extra = {"hilt_images_per_s": inputs / hilt_ms * 1e3, "torch_images_per_s": inputs / torch_ms * 1e3,
             "hilt_peak_mib": _peak_bytes(hilt_step, 0, ys[0]) / 2**20, "backend": xp.__name__}
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch_step(1, ys[1])
        extra["torch_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    reference = "PyTorch cuDNN" if device == "cuda" else f"PyTorch CPU ({torch.get_num_threads()} threads)"
    options = ", ".join(f"{k}={v}" for k, v in rule_options.items() if v is not None)
    what = f"bp on the {2 * batch} views + readout" if ssl else "bp"
    return BenchResult(f"{rule_name}{f' ({options})' if options else ''} step, exact ({xp.__name__}), {model}, "
                       f"{image_size}x{image_size}, batch {batch}", hilt_ms, torch_ms, f"{reference}, {what}", extra,
                       paired_ratio=paired)


def growth_case(model: str, device: str, update: str | None, batch: int, steps: int, lr: float = 0.01,
                seed: int = 0) -> dict:
    """One row of the cost-growth table (bench/cost_growth.py): an MLP's bp step on `device`
    (with `update`), its median ms beside its reference (bare NumPy matmuls on the exact path,
    aihwkit's AnalogSequential + AnalogSGD on a device, none for hilt's own `summed`), and the
    process's peak resident memory above what it held with its libraries loaded, before the
    network was built (run it in a fresh process: see `isolated`)."""
    import resource

    def rss_mib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    spec = parse_device(device, seed=seed, update=update)
    import torch  # noqa: F401  (the libraries' own memory is not the network's)

    if not spec.is_exact:
        from aihwkit.simulator.tiles import AnalogTile  # noqa: F401
    before = rss_mib()
    if spec.is_exact:
        result = bench_exact(model, batch, steps, lr, seed)
    elif spec.summed:
        backend.use("numpy")
        xs, ys = _batches(model, batch, steps, seed)
        net = _mlp(model, spec, seed, batch)
        rule = make_rule("bp")
        step = lambda x, y: rule.step(net, x, y, lr)  # noqa: E731
        step(xs[0], ys[0])
        result = BenchResult(f"bp step, {device}+{update}", float(np.median(_time_ms(step, xs, ys, 1, steps))),
                             float("nan"), "none (hilt's own update)")
    else:
        result = bench_analog(model, device, batch, steps, lr, seed, update=update, warmup=1)  # wide nets: no long warm-up
    return {"model": model, "device": device, "update": update or "", "batch": batch, "hilt_ms": result.hilt_ms,
            "reference_ms": result.reference_ms, "reference": result.reference,
            "peak_mib": rss_mib() - before}
