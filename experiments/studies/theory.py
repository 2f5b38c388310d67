"""Linear-network theory of local contrastive learning (Wu et al. 2026, arXiv 2601.21683, §3 and App. A/B/D), checked
numerically on embedded data: digits, two random 6x6 crops of each 8x8 image (the papers use
14x14 crops of MNIST, which hilt does not embed).

Per layer l, with f(x) = log(1 + e^-x) (softplus, or linear f = -x) and the batch sum (B13):

    L^l(B) = sum_mu f(z_pos^T B c) + f(-z_neg^T B c) + lambda ||B||^2,   B*^l = argmin L^l

z_pos = layer-l activity of crop A, z_neg = crop A of the next image in the batch, c = crop B's
layer-l activity (standard) or layer-L activity (DFB). The local update of W^l is dL^l/dW^l at
B*^l with c constant; BP-SSL is dL^L/dW^l at B*^L backpropagated through the layers above (c^L
constant, B18). B* comes from Newton's method in the span of the data (`optimal_B`), or in
closed form for linear f:
B* = (1/2 lambda) sum (z_pos - z_neg) c^T.

Checks:
- thm31: 6 linear layers of 128, orthogonal W^2..W^6: cosine(local, BP) = 1 in every layer
  (Theorem 3.1), and the ablations that break it: random fixed B^l, non-orthogonal W
  (torch's default uniform init), ReLU, and the last two together.
- thm33: shrinking widths 128-64-32-16-8-4 with orthonormal rows, linear f: the DFB local update
  is at least as close to BP as the standard one in every layer (Theorem 3.3); also reported
  for softplus f.
- linear-cnn (Fig. 4B): 4 linear conv layers; spatial features against the global mean, and DFB.
- relu-mlp (Fig. 3B): a trained 6 x 512 ReLU MLP; lateral context, DFB, random fixed B, and B^l
  trained towards the Definition 3.4 optimum (`optimum_B_grads`, torch autograd).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hilt.analog.periphery import unwindows, windows
from hilt.errors import HiltError
from hilt.experiments.measure.alignment import cosine
from hilt.rules.contrastive import CONTRAST_F, FeaturePool
from hilt.seeds import check_seed

CHECKS = ("thm31", "thm33", "relu-mlp", "linear-cnn")
NEWTON_STEPS = 100


F = {f: CONTRAST_F[f] for f in ("softplus", "linear")}  # f and f' of the rules' contrastive loss


def crops_of(images, rng: np.random.Generator, size: int = 6, upsample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Two independent random size x size crops of each image (n, H, W), upsampled first by pixel
    repetition (the CNN check crops 16x16 from 24x24), each of shape (n, 1, size, size)."""
    images = np.kron(images, np.ones((1, upsample, upsample)))
    n, side = len(images), images.shape[1]
    out = []
    for _ in range(2):
        dy, dx = rng.integers(0, side - size + 1, size=(2, n))
        out.append(np.stack([im[None, y : y + size, x : x + size] for im, y, x in zip(images, dy, dx)]))
    return out[0], out[1]


def crops(n_images: int, rng: np.random.Generator, size: int = 6, upsample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """`crops_of` the first n digits training images."""
    from hilt.data.digits import load_digits

    images = load_digits().x_train[:n_images, 0].astype(np.float64)
    if len(images) < n_images:
        raise HiltError(f"align: digits has only {len(images)} training images (asked for {n_images})")
    return crops_of(images, rng, size, upsample)


def batches_of(xa, xb, batches: int, batch_size: int):
    """(crop A, its negative: crop A of the next image in the batch, crop B) per batch (B15)."""
    for i in range(batches):
        a, b = xa[i * batch_size : (i + 1) * batch_size], xb[i * batch_size : (i + 1) * batch_size]
        yield a, np.roll(a, -1, axis=0), b


def orthonormal(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """A rows x cols matrix with orthonormal rows (rows <= cols) or columns (rows > cols)."""
    q, _ = np.linalg.qr(rng.normal(size=(max(rows, cols), min(rows, cols))))
    return q.T if rows <= cols else q


def uniform_init(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """torch's default Linear init: U(+-1/sqrt(cols)), rows x cols."""
    bound = 1 / np.sqrt(cols)
    return rng.uniform(-bound, bound, size=(rows, cols))


# The theory's layers are float64 maps of their own, not the crossbar layers (analog/layers.py, float32):
# the theorems claim cosines of exactly 1 (checked to 1e-6) and B* comes from Newton's method in the
# span of the data, both of which float32 rounding would blur. Their arithmetic is the layers' (the
# convolution's windows are periphery.windows / unwindows).
class LinearMap:
    """z -> W z (no bias), float64."""

    def __init__(self, W):
        self.W = W

    def __call__(self, z):
        return z @ self.W.T

    def weight_grad(self, g, z):
        """dL/dW for output gradient g (n x out) at input z (n x in): out x in."""
        return g.T @ z

    def input_grad(self, g):
        """dL/dz for output gradient g (n x out): n x in."""
        return g @ self.W


class PatchConv:
    """Convolution with kernel = stride = 2, no padding, no bias; W: (out, C * 2 * 2), float64."""

    def __init__(self, W):
        self.W = W

    @staticmethod
    def patches(z):
        """The 2 x 2 patches of z (n, C, H, W) as (n, H/2, W/2, 4C)."""
        n, C, H, W = z.shape
        return windows(z, 2).transpose(0, 2, 3, 1, 4).reshape(n, H // 2, W // 2, C * 4)

    def __call__(self, z):
        return np.moveaxis(self.patches(z) @ self.W.T, 3, 1)

    def weight_grad(self, g, z):
        """dL/dW for output gradient g (n, out, H/2, W/2) at input z: out x 4C."""
        return np.moveaxis(g, 1, 3).reshape(-1, g.shape[1]).T @ self.patches(z).reshape(-1, self.W.shape[1])

    def input_grad(self, g):
        """dL/dz for output gradient g (n, out, H/2, W/2): (n, C, H, W)."""
        n, _, h, w = g.shape
        C = self.W.shape[1] // 4
        win = (np.moveaxis(g, 1, 3) @ self.W).reshape(n, h, w, C, 4).transpose(0, 3, 1, 2, 4)
        return unwindows(np.ascontiguousarray(win), 2, (n, C, 2 * h, 2 * w))


@dataclass
class TheoryNet:
    """Linear (or ReLU) layers and the features p^l = pool(z^l) that each layer's loss reads."""

    layers: list
    pools: list
    relu: bool = False

    def forward(self, x) -> tuple[list, list]:
        """Activities z^0..z^L and pre-activations a^1..a^L (index 0 unused)."""
        zs, pre = [x], [None]
        for layer in self.layers:
            a = layer(zs[-1])
            pre.append(a)
            zs.append(np.maximum(a, 0) if self.relu else a)
        return zs, pre

    def features(self, zs) -> list:
        """p^1..p^L of the activities z^0..z^L (index 0 unused)."""
        return [None] + [pool(z) for pool, z in zip(self.pools, zs[1:])]

    def contexts(self, x, dfb: bool) -> list:
        """c^l: the other crop's features of layer l, or of the top layer (DFB)."""
        p = self.features(self.forward(x)[0])
        return [None] + [p[-1] if dfb else p[l] for l in range(1, len(self.layers) + 1)]

    def deriv(self, a):
        """The activation's derivative at pre-activation a (1 for linear layers)."""
        return (a > 0).astype(a.dtype) if self.relu else np.ones_like(a)


def dense_net(Ws, relu: bool = False) -> TheoryNet:
    """A TheoryNet of linear maps Ws (optionally with ReLU), globally pooled features."""
    return TheoryNet([LinearMap(W) for W in Ws], [FeaturePool((W.shape[0],), None) for W in Ws], relu)


def loss_and_grad_B(B, zp, zn, c, lam, f):
    """The layer loss L(B) (f of the positive and negative scores, plus lam ||B||^2) and dL/dB for
    features zp, zn (n x D) and contexts c (n x D')."""
    bc = c @ B.T
    fp, dfp = F[f]((zp * bc).sum(1))
    fn, dfn = F[f](-(zn * bc).sum(1))
    d = dfp[:, None] * zp - dfn[:, None] * zn
    return fp.sum() + fn.sum() + lam * (B * B).sum(), d.T @ c + 2 * lam * B


def optimal_B(zp, zn, c, lam, f) -> np.ndarray:
    """B* = argmin L(B). Linear f: closed form. Softplus: the stationarity condition
    B* = -(1/2 lambda) sum_j s_j f'(s_j u_j) a_j c_j^T (a_j = z_pos or z_neg, s_j = +-1) puts B* in
    the span of the 2n outer products a_j c_j^T, so B = sum_j alpha_j a_j c_j^T with u = K alpha,
    K = (A A^T) * (C C^T), and damped Newton on the 2n coefficients reaches the optimum to
    machine precision (|dL/dB| ~ 1e-15; L-BFGS on B itself stops near 1e-9 and is ~200x slower)."""
    if f == "linear":
        return (zp - zn).T @ c / (2 * lam)
    A, C = np.vstack([zp, zn]), np.vstack([c, c])
    s = np.r_[np.ones(len(zp)), -np.ones(len(zn))]
    K = (A @ A.T) * (C @ C.T)
    objective = lambda al: F[f](s * (K @ al))[0].sum() + lam * al @ K @ al  # noqa: E731
    alpha = np.zeros(len(s))
    for _ in range(NEWTON_STEPS):
        x = s * (K @ alpha)
        residual = s * F[f](x)[1] + 2 * lam * alpha  # zero at the optimum
        if np.abs(residual).max() < 1e-13:
            break
        curvature = 0.25 / np.cosh(0.5 * x) ** 2  # f''(x) of softplus(-x)
        step = np.linalg.solve(curvature[:, None] * K + 2 * lam * np.eye(len(s)), -residual)
        t, before = 1.0, objective(alpha)
        while objective(alpha + t * step) > before and t > 1e-6:
            t /= 2
        alpha = alpha + t * step
    return (A * alpha[:, None]).T @ C


def grad_z(B, zp, zn, c, f) -> tuple[np.ndarray, np.ndarray]:
    """dL/dz_pos, dL/dz_neg of the layer loss at B (rows: samples)."""
    bc = c @ B.T
    _, dfp = F[f]((zp * bc).sum(1))
    _, dfn = F[f](-(zn * bc).sum(1))
    return dfp[:, None] * bc, -dfn[:, None] * bc


def feature_grads(net: TheoryNet, l: int, pos, neg, ctx, B, f) -> tuple[np.ndarray, np.ndarray]:
    """dL^l/dz^l of the positive and negative rows at B, through layer l's pooling; pos and neg
    are `net.forward` of crop A and of its negative."""
    pool = net.pools[l - 1]
    gp, gn = grad_z(B, pool(pos[0][l]), pool(neg[0][l]), ctx[l], f)
    return pool.backward(gp), pool.backward(gn)


def local_grads(net: TheoryNet, pos, neg, ctx, Bs, f) -> list:
    """dL^l/dW^l of every layer's own loss, given its B^l and contexts."""
    activity = [None] + [feature_grads(net, l, pos, neg, ctx, Bs[l], f) for l in range(1, len(net.layers) + 1)]
    return weight_grads(net, pos, neg, activity)


def optimum_B_grads(net: TheoryNet, pos, neg, ctx, Bs, targets, f) -> list:
    """Definition 3.4: d/dB of sum ||dL^l_fb/dz^l(B) - dL*/dz^l||^2 over the batch's positive and
    negative rows, for l = 1..L-1 (torch autograd; dense layers, no pooling). The top layer keeps
    its ordinary loss."""
    import torch

    fprime = {"softplus": lambda x: -torch.sigmoid(-x), "linear": lambda x: -torch.ones_like(x)}[f]
    grads = []
    for l in range(1, len(net.layers)):
        B = torch.tensor(Bs[l], requires_grad=True)
        zp, zn, c = (torch.from_numpy(v) for v in (pos[0][l], neg[0][l], ctx[l]))
        bc = c @ B.T
        gp = fprime((zp * bc).sum(1))[:, None] * bc
        gn = -fprime(-(zn * bc).sum(1))[:, None] * bc
        tp, tn = (torch.from_numpy(t) for t in targets[l])
        ((gp - tp) ** 2 + (gn - tn) ** 2).sum().backward()
        grads.append(B.grad.numpy())
    return grads


def bp_activity_grads(net: TheoryNet, pos, neg, ctx, B_top, f) -> list:
    """dL^L/dz^l of the positive and negative rows for l = 1..L (index 0 unused): the top loss
    backpropagated to every layer's activity."""
    (_, ap), (_, an) = pos, neg
    L = len(net.layers)
    grads = [None] * (L + 1)
    grads[L] = feature_grads(net, L, pos, neg, ctx, B_top, f)
    for l in range(L, 1, -1):
        gp, gn = grads[l]
        layer = net.layers[l - 1]
        grads[l - 1] = layer.input_grad(gp * net.deriv(ap[l])), layer.input_grad(gn * net.deriv(an[l]))
    return grads


def weight_grads(net: TheoryNet, pos, neg, activity_grads: list) -> list:
    """dL/dW^l of every layer from dL/dz^l of its positive and negative rows."""
    (zp, ap), (zn, an) = pos, neg
    return [layer.weight_grad(gp * net.deriv(ap[l]), zp[l - 1]) + layer.weight_grad(gn * net.deriv(an[l]), zn[l - 1])
            for l, (layer, (gp, gn)) in enumerate(zip(net.layers, activity_grads[1:]), 1)]


def bp_grads(net: TheoryNet, pos, neg, ctx, B_top, f) -> list:
    """dL^L/dW^l: the top layer's loss backpropagated to every layer."""
    return weight_grads(net, pos, neg, bp_activity_grads(net, pos, neg, ctx, B_top, f))


def layer_grads(net: TheoryNet, pos, neg, ctx, Bs, f) -> tuple[list, list]:
    """(local, BP) gradients of every layer."""
    return local_grads(net, pos, neg, ctx, Bs, f), bp_grads(net, pos, neg, ctx, Bs[-1], f)


@dataclass
class Condition:
    name: str
    orthogonal: bool = True
    relu: bool = False
    random_B: bool = False


THM31_CONDITIONS = [Condition("theorem"), Condition("random B", random_B=True), Condition("non-orthogonal W", orthogonal=False),
                    Condition("ReLU", relu=True), Condition("non-orthogonal W + ReLU", orthogonal=False, relu=True)]


def weights(widths: list[int], n_in: int, orthogonal: bool, rng) -> list[np.ndarray]:
    """Weights of a net with the given widths from input size n_in: orthonormal rows, or torch's
    uniform init."""
    sizes = [n_in, *widths]
    make = orthonormal if orthogonal else uniform_init
    return [make(o, i, rng) for i, o in zip(sizes[:-1], sizes[1:])]


def optimal_Bs(net: TheoryNet, pos, neg, ctx, lam, f) -> list:
    """B*^l for every layer l (index 0 unused) on one batch."""
    pp, pn = net.features(pos[0]), net.features(neg[0])
    return [None] + [optimal_B(pp[l], pn[l], ctx[l], lam, f) for l in range(1, len(net.layers) + 1)]


def per_layer(values: dict, main: str) -> list[dict]:
    """{condition: [per-batch list of per-layer cosines]} -> rows {layer, cos (of `main`), cos_ci95, condition: mean}."""
    rows = []
    for l in range(len(next(iter(values.values()))[0])):
        entry = {"layer": l + 1}
        for name, batches in values.items():
            v = np.array(batches)[:, l]
            entry["cos" if name == main else name] = float(v.mean())
            if name == main:
                entry["cos_ci95"] = float(1.96 * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
        rows.append(entry)
    return rows


def thm31(batches: int = 32, batch_size: int = 32, width: int = 128, depth: int = 6, lam: float = 0.01,
          seed: int = 0) -> dict:
    """Theorem 3.1 and its ablations: per-layer cosine of local and BP-SSL updates, mean over
    batches."""
    rng = np.random.default_rng(seed)
    xa, xb = (x.reshape(len(x), -1) for x in crops(batches * batch_size, rng))
    cos = {c.name: [] for c in THM31_CONDITIONS}
    for cond in THM31_CONDITIONS:
        crng = np.random.default_rng(seed + 1)
        net = dense_net(weights([width] * depth, xa.shape[1], cond.orthogonal, crng), cond.relu)
        for a, neg, b in batches_of(xa, xb, batches, batch_size):
            ctx, pos, neg = net.contexts(b, dfb=False), net.forward(a), net.forward(neg)
            Bs = optimal_Bs(net, pos, neg, ctx, lam, "softplus")
            if cond.random_B:
                Bs[1:-1] = [uniform_init(width, width, crng) for _ in Bs[1:-1]]
            local, bp = layer_grads(net, pos, neg, ctx, Bs, "softplus")
            cos[cond.name].append([cosine(g, h) for g, h in zip(local, bp)])
    return {"check": "thm31", "batches": batches, "lambda": lam, "f": "softplus", "widths": [width] * depth,
            "layers": per_layer(cos, "theorem")}


def thm33(batches: int = 32, batch_size: int = 32, widths=(128, 64, 32, 16, 8, 4), lam: float = 0.01,
          seed: int = 0) -> dict:
    """Theorem 3.3: per-layer cosine with BP of the standard and the DFB local update, shrinking
    widths."""
    rng = np.random.default_rng(seed)
    xa, xb = (x.reshape(len(x), -1) for x in crops(batches * batch_size, rng))
    net = dense_net(weights(list(widths), xa.shape[1], True, np.random.default_rng(seed + 1)))
    L = len(widths)
    layers = [{"layer": l + 1} for l in range(L)]
    for f in ("linear", "softplus"):
        dist = {"standard": [], "dfb": []}
        cos = {"standard": [], "dfb": []}
        for a, neg, b in batches_of(xa, xb, batches, batch_size):
            pos, neg = net.forward(a), net.forward(neg)
            for kind in ("standard", "dfb"):
                ctx = net.contexts(b, dfb=kind == "dfb")
                local, bp = layer_grads(net, pos, neg, ctx, optimal_Bs(net, pos, neg, ctx, lam, f), f)
                dist[kind].append([np.linalg.norm(g - h) for g, h in zip(local, bp)])
                cos[kind].append([cosine(g, h) for g, h in zip(local, bp)])
        for l in range(L):
            for kind in ("standard", "dfb"):
                layers[l][f"{f}_distance_{kind}"] = float(np.mean(np.array(dist[kind])[:, l]))
                layers[l][f"{f}_cos_{kind}"] = float(np.mean(np.array(cos[kind])[:, l]))
            # Theorem 3.3 is about every batch, so the inequality is checked batch by batch.
            holds = np.array(dist["dfb"])[:, l] <= np.array(dist["standard"])[:, l] * (1 + 1e-9) + 1e-12
            layers[l][f"{f}_dfb_closer_all_batches"] = bool(holds.all())
    for entry in layers:
        entry["cos"] = entry["linear_cos_dfb"]
    return {"check": "thm33", "batches": batches, "lambda": lam, "widths": list(widths), "layers": layers}


LINEAR_CNN_CONDITIONS = {"spatial": (True, False), "spatial + DFB": (True, True), "non-spatial": (False, False)}


def linear_cnn(batches: int = 32, batch_size: int = 32, channels: int = 32, lam: float = 0.02, seed: int = 0) -> dict:
    """Wu et al. 2026, Fig. 4B: 4 linear conv layers (kernel = stride = 2) on 16x16 crops, 16 -> 8 -> 4 -> 2 -> 1.
    Spatial features: layer 1 average-pooled 2x2 (4x4 grid), layers 2-4 flattened; non-spatial: the
    global mean; DFB: c = the other crop's flattened layer 4. Weights: torch's default init."""
    rng = np.random.default_rng(seed)
    xa, xb = crops(batches * batch_size, rng, size=16, upsample=3)
    wrng = np.random.default_rng(seed + 1)
    sizes = [1, *[channels] * 4]
    layers = [PatchConv(uniform_init(o, 4 * i, wrng)) for i, o in zip(sizes[:-1], sizes[1:])]
    shapes = [(channels, 16 >> l, 16 >> l) for l in range(1, 5)]
    cos = {}
    for name, (spatial, dfb) in LINEAR_CNN_CONDITIONS.items():
        kernels = [2, 1, 1, 1] if spatial else [None] * 4
        net = TheoryNet(layers, [FeaturePool(shape, k) for shape, k in zip(shapes, kernels)])
        cos[name] = []
        for a, neg, b in batches_of(xa, xb, batches, batch_size):
            ctx, pos, neg = net.contexts(b, dfb=dfb), net.forward(a), net.forward(neg)
            local, bp = layer_grads(net, pos, neg, ctx, optimal_Bs(net, pos, neg, ctx, lam, "softplus"), "softplus")
            cos[name].append([cosine(g, h) for g, h in zip(local, bp)])
    return {"check": "linear-cnn", "batches": batches, "lambda": lam, "f": "softplus", "channels": channels,
            "layers": per_layer(cos, "spatial")}


# condition: (context from the top layer (DFB), B^l fixed below the top, B^l by Definition 3.4)
RELU_MLP_CONDITIONS = {"local": (False, False, False), "DFB": (True, False, False), "random B": (False, True, False),
                       "optimum (Def. 3.4)": (True, False, True)}


def relu_mlp(epochs: int = 20, width: int = 512, depth: int = 6, lr: float = 5e-4, batch_size: int = 32,
             lam: float = 0.0, eval_batches: int = 10, seed: int = 0) -> dict:
    """Wu et al. 2026, Fig. 3B: a ReLU MLP (torch's default init) trained with its local losses, W^l and
    B^l together by Adam (B16: lambda = 0), on two 6x6 crops of each digits training image (new crops
    every epoch). Then, on crops of the test images, the cosine of each layer's local update with
    BP-SSL (the top loss at the trained B^L). Conditions: lateral context (local), top-layer context
    (DFB), B^l fixed at random init below the top (random B), and the optimum of Definition 3.4: DFB
    context with each B^l (l < L) trained to make dL^l/dz^l match BP's dL^L/dz^l (an upper bound
    that needs BP)."""
    import torch

    from hilt.data.digits import load_digits

    digits = load_digits()
    train_images = len(digits.x_train)
    rng = np.random.default_rng(seed)
    test = [c.reshape(len(c), -1) for c in crops_of(digits.x_test[:, 0].astype(np.float64), rng)]
    cos = {}
    for name, (dfb, fixed_B, optimum) in RELU_MLP_CONDITIONS.items():
        crng = np.random.default_rng(seed + 1)
        Ws = weights([width] * depth, 36, False, crng)
        net = dense_net(Ws, relu=True)
        Bs = [None] + [uniform_init(width, width, crng) for _ in range(depth)]
        trained = Ws + (Bs[-1:] if fixed_B else Bs[1:])
        params = [torch.from_numpy(p) for p in trained]  # shares memory: Adam moves the arrays in place
        opt = torch.optim.Adam(params, lr=lr)
        for _ in range(epochs):
            xa, xb = (c.reshape(len(c), -1) for c in crops_of(digits.x_train[:, 0].astype(np.float64), crng))
            order = crng.permutation(train_images)
            xa, xb = xa[order], xb[order]
            for a, neg, b in batches_of(xa, xb, train_images // batch_size, batch_size):
                ctx, pos, neg = net.contexts(b, dfb), net.forward(a), net.forward(neg)
                local = local_grads(net, pos, neg, ctx, Bs, "softplus")
                pp, pn = net.features(pos[0]), net.features(neg[0])
                grad_B = [loss_and_grad_B(Bs[l], pp[l], pn[l], ctx[l], lam, "softplus")[1] for l in range(1, depth + 1)]
                if optimum:
                    targets = bp_activity_grads(net, pos, neg, ctx, Bs[-1], "softplus")
                    grad_B[:-1] = optimum_B_grads(net, pos, neg, ctx, Bs, targets, "softplus")
                for p, g in zip(params, local + (grad_B[-1:] if fixed_B else grad_B)):
                    p.grad = torch.from_numpy(g)
                opt.step()
        cos[name] = []
        for a, neg, b in batches_of(*test, min(eval_batches, len(test[0]) // batch_size), batch_size):
            local, bp = layer_grads(net, net.forward(a), net.forward(neg), net.contexts(b, dfb), Bs, "softplus")
            cos[name].append([cosine(g, h) for g, h in zip(local, bp)])
    return {"check": "relu-mlp", "epochs": epochs, "lr": lr, "lambda": lam, "f": "softplus", "widths": [width] * depth,
            "layers": per_layer(cos, "local")}


def run_check(check: str, batches: int = 32, seed: int = 0, width: int | None = None, epochs: int = 20) -> dict:
    """One check; `width` scales the layers (thm31, relu-mlp: every layer; thm33: the first, halving
    after; linear-cnn: channels); `epochs` trains relu-mlp."""
    if check not in CHECKS:
        raise HiltError(f"align --check {check!r}: allowed: {', '.join(CHECKS)}")
    check_seed(seed, "align --seed")
    if batches < 2:
        raise HiltError(f"align --batches must be >= 2 (got {batches})")
    if width is not None and not 4 <= width <= 1024:
        raise HiltError(f"align --width must be in [4, 1024] (got {width})")
    if not 0 <= epochs <= 1000:
        raise HiltError(f"align --epochs must be in [0, 1000] (got {epochs})")
    if check == "thm31":
        return thm31(batches=batches, seed=seed, width=width or 128)
    if check == "relu-mlp":
        return relu_mlp(epochs=epochs, width=width or 512, eval_batches=batches, seed=seed)
    if check == "linear-cnn":
        return linear_cnn(batches=batches, channels=width or 32, seed=seed)
    w = width or 128
    return thm33(batches=batches, seed=seed, widths=tuple(max(1, w >> k) for k in range(6)))
