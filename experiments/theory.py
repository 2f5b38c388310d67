"""Linear-network theory of local contrastive learning (SPECS 2.12; seeds/002 section 3), checked
numerically on embedded data: digits, two random 6x6 crops of each 8x8 image (the papers use
14x14 crops of MNIST, which hilt does not embed).

Per layer l, with f(x) = log(1 + e^-x) (softplus, or linear f = -x) and the batch sum (B13):

    L^l(B) = sum_mu f(z_pos^T B c) + f(-z_neg^T B c) + lambda ||B||^2,   B*^l = argmin L^l

z_pos = layer-l activity of crop A, z_neg = crop A of the next image in the batch, c = crop B's
layer-l activity (standard) or layer-L activity (DFB). The local update of W^l is dL^l/dW^l at
B*^l with c constant; BP-SSL is dL^L/dW^l at B*^L backpropagated through the layers above (c^L
constant, B18). B* comes from L-BFGS (scipy), or in closed form for linear f:
B* = (1/2 lambda) sum (z_pos - z_neg) c^T.

Checks:
- thm31: 6 linear layers of 128, orthogonal W^2..W^6: cosine(local, BP) = 1 in every layer
  (Theorem 3.1), and the ablations that break it: random fixed B^l, non-orthogonal W
  (torch's default uniform init), ReLU, and the last two together.
- thm33: shrinking widths 128-64-32-16-8-4 with orthonormal rows, linear f: the DFB local update
  is at least as close to BP as the standard one in every layer (Theorem 3.3); also reported
  for softplus f.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from devices.errors import HiltError

CHECKS = ("thm31", "thm33")


def _softplus(x):
    return np.logaddexp(0, -x), -0.5 * (1 - np.tanh(0.5 * x))  # f, f'


def _linear(x):
    return -x, -np.ones_like(x)


F = {"softplus": _softplus, "linear": _linear}


def crops(n_images: int, rng: np.random.Generator, size: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Two independent random size x size crops of each of the first n digits training images."""
    from data.digits import load_digits

    images = load_digits().x_train[:n_images, 0].astype(np.float64)
    if len(images) < n_images:
        raise HiltError(f"align: digits has only {len(images)} training images (asked for {n_images})")
    out = []
    for _ in range(2):
        dy, dx = rng.integers(0, 8 - size + 1, size=(2, n_images))
        out.append(np.stack([im[y : y + size, x : x + size].ravel() for im, y, x in zip(images, dy, dx)]))
    return out[0], out[1]


def orthonormal(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """A rows x cols matrix with orthonormal rows (rows <= cols) or columns (rows > cols)."""
    q, _ = np.linalg.qr(rng.normal(size=(max(rows, cols), min(rows, cols))))
    return q.T if rows <= cols else q


def uniform_init(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    bound = 1 / np.sqrt(cols)
    return rng.uniform(-bound, bound, size=(rows, cols))


def forward(Ws, x, relu: bool) -> tuple[list, list]:
    """Activities z^0..z^L and pre-activations a^1..a^L (index 0 unused)."""
    zs, pre = [x], [None]
    for W in Ws:
        a = zs[-1] @ W.T
        pre.append(a)
        zs.append(np.maximum(a, 0) if relu else a)
    return zs, pre


def loss_and_grad_B(B, zp, zn, c, lam, f):
    bc = c @ B.T
    fp, dfp = F[f]((zp * bc).sum(1))
    fn, dfn = F[f](-(zn * bc).sum(1))
    d = dfp[:, None] * zp - dfn[:, None] * zn
    return fp.sum() + fn.sum() + lam * (B * B).sum(), d.T @ c + 2 * lam * B


def optimal_B(zp, zn, c, lam, f) -> np.ndarray:
    if f == "linear":
        return (zp - zn).T @ c / (2 * lam)
    shape = (zp.shape[1], c.shape[1])
    fun = lambda b: [v.ravel() if i else v for i, v in enumerate(loss_and_grad_B(b.reshape(shape), zp, zn, c, lam, f))]  # noqa: E731
    res = minimize(fun, np.zeros(np.prod(shape)), jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 5000})
    return res.x.reshape(shape)


def grad_z(B, zp, zn, c, f) -> tuple[np.ndarray, np.ndarray]:
    """dL/dz_pos, dL/dz_neg of the layer loss at B (rows: samples)."""
    bc = c @ B.T
    _, dfp = F[f]((zp * bc).sum(1))
    _, dfn = F[f](-(zn * bc).sum(1))
    return dfp[:, None] * bc, -dfn[:, None] * bc


def layer_grads(Ws, xa, xn, ctx, Bs, relu, f) -> tuple[list, list]:
    """(local dL^l/dW^l, BP dL^L/dW^l) for every layer, given B^l and contexts per layer."""
    (zp, ap), (zn, an) = forward(Ws, xa, relu), forward(Ws, xn, relu)
    L = len(Ws)
    deriv = (lambda a: (a > 0).astype(a.dtype)) if relu else (lambda a: np.ones_like(a))
    local = []
    for l in range(1, L + 1):
        gp, gn = grad_z(Bs[l], zp[l], zn[l], ctx[l], f)
        local.append((gp * deriv(ap[l])).T @ zp[l - 1] + (gn * deriv(an[l])).T @ zn[l - 1])
    gp, gn = grad_z(Bs[L], zp[L], zn[L], ctx[L], f)
    bp = [None] * L
    for l in range(L, 0, -1):
        gp, gn = gp * deriv(ap[l]), gn * deriv(an[l])
        bp[l - 1] = gp.T @ zp[l - 1] + gn.T @ zn[l - 1]
        gp, gn = gp @ Ws[l - 1], gn @ Ws[l - 1]
    return local, bp


def cosine(a, b) -> float:
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))


@dataclass
class Condition:
    name: str
    orthogonal: bool = True
    relu: bool = False
    random_B: bool = False


THM31_CONDITIONS = [Condition("theorem"), Condition("random B", random_B=True), Condition("non-orthogonal W", orthogonal=False),
                    Condition("ReLU", relu=True), Condition("non-orthogonal W + ReLU", orthogonal=False, relu=True)]


def weights(widths: list[int], n_in: int, orthogonal: bool, rng) -> list[np.ndarray]:
    sizes = [n_in, *widths]
    make = orthonormal if orthogonal else uniform_init
    return [make(o, i, rng) for i, o in zip(sizes[:-1], sizes[1:])]


def batch_contexts(Ws, xb, relu, dfb: bool) -> list:
    zb, _ = forward(Ws, xb, relu)
    return [None] + [zb[-1] if dfb else zb[l] for l in range(1, len(Ws) + 1)]


def thm31(batches: int = 32, batch_size: int = 32, width: int = 128, depth: int = 6, lam: float = 0.01,
          seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    xa, xb = crops(batches * batch_size, rng)
    cos = {c.name: [] for c in THM31_CONDITIONS}
    for cond in THM31_CONDITIONS:
        crng = np.random.default_rng(seed + 1)
        Ws = weights([width] * depth, xa.shape[1], cond.orthogonal, crng)
        for i in range(batches):
            a, b = xa[i * batch_size : (i + 1) * batch_size], xb[i * batch_size : (i + 1) * batch_size]
            neg = np.roll(a, -1, axis=0)
            ctx = batch_contexts(Ws, b, cond.relu, dfb=False)
            (zp, _), (zn, _) = forward(Ws, a, cond.relu), forward(Ws, neg, cond.relu)
            Bs = [None] + [uniform_init(width, width, crng) if cond.random_B and l < depth else
                           optimal_B(zp[l], zn[l], ctx[l], lam, "softplus") for l in range(1, depth + 1)]
            local, bp = layer_grads(Ws, a, neg, ctx, Bs, cond.relu, "softplus")
            cos[cond.name].append([cosine(g, h) for g, h in zip(local, bp)])
    layers = []
    for l in range(depth):
        entry = {"layer": l + 1}
        for name, values in cos.items():
            v = np.array(values)[:, l]
            key = "cos" if name == "theorem" else name
            entry[key] = float(v.mean())
            if name == "theorem":
                entry["cos_ci95"] = float(1.96 * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
        layers.append(entry)
    return {"check": "thm31", "batches": batches, "lambda": lam, "f": "softplus", "widths": [width] * depth,
            "layers": layers}


def thm33(batches: int = 32, batch_size: int = 32, widths=(128, 64, 32, 16, 8, 4), lam: float = 0.01,
          seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    xa, xb = crops(batches * batch_size, rng)
    Ws = weights(list(widths), xa.shape[1], True, np.random.default_rng(seed + 1))
    L = len(widths)
    layers = [{"layer": l + 1} for l in range(L)]
    for f in ("linear", "softplus"):
        dist = {"standard": [], "dfb": []}
        cos = {"standard": [], "dfb": []}
        for i in range(batches):
            a, b = xa[i * batch_size : (i + 1) * batch_size], xb[i * batch_size : (i + 1) * batch_size]
            neg = np.roll(a, -1, axis=0)
            (zp, _), (zn, _) = forward(Ws, a, False), forward(Ws, neg, False)
            for kind in ("standard", "dfb"):
                ctx = batch_contexts(Ws, b, False, dfb=kind == "dfb")
                Bs = [None] + [optimal_B(zp[l], zn[l], ctx[l], lam, f) for l in range(1, L + 1)]
                local, bp = layer_grads(Ws, a, neg, ctx, Bs, False, f)
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


def run_check(check: str, batches: int = 8, seed: int = 0, width: int | None = None) -> dict:
    """One check; `width` scales the layers (thm31: every layer; thm33: the first, halving after)."""
    if check not in CHECKS:
        raise HiltError(f"align --check {check!r}: allowed: {', '.join(CHECKS)}")
    if batches < 2:
        raise HiltError(f"align --batches must be >= 2 (got {batches})")
    if width is not None and not 4 <= width <= 1024:
        raise HiltError(f"align --width must be in [4, 1024] (got {width})")
    if check == "thm31":
        return thm31(batches=batches, seed=seed, width=width or 128)
    w = width or 128
    return thm33(batches=batches, seed=seed, widths=tuple(max(1, w >> k) for k in range(6)))
