"""Linear probe of a frozen encoder: features from its layers, pooled as the rule pools them, and
a multinomial logistic regression trained digitally (scikit-learn, L-BFGS, standardized features)
on the training set's features, tested on the test set's, as in Illing et al. (2021) and
Dong et al. (2025) for CLAPP.

It is how a self-supervised rule predicts (`ProbeReadout`: fitted on the concatenation of all
layers before every evaluation), and `probe` also fits it per layer for the final metrics. The
features are read through the network's crossbars (analog reads on the analog path).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from hilt.analog import backend
from hilt.analog.network import EVAL_BATCH


@dataclass
class ProbeResult:
    accuracy: float  # the concatenation of all layers
    loss: float  # its test cross-entropy (mean)
    per_layer: list[float]  # layer 1..L (index 0: layer 1)


def features(net, x, pools, batch_size: int = EVAL_BATCH) -> list[np.ndarray]:
    """Pooled activity of every block for inputs x, as host arrays (one per layer)."""
    out = [[] for _ in net.blocks]
    for i in range(0, len(x), batch_size):
        s = backend.asarray(x[i : i + batch_size])
        for k, (block, pool) in enumerate(zip(net.blocks, pools)):
            a, _ = block.forward(s)
            s = block.act(a)
            out[k].append(backend.to_numpy(pool(s)))
    return [np.concatenate(f) for f in out]


class LinearProbe:
    """A standardized multinomial logistic regression on features (n x D) -> class logits."""

    def __init__(self, f_train, y_train, max_iter: int = 100):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        self.scaler = StandardScaler().fit(f_train)
        self.model = LogisticRegression(max_iter=max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter bounds the probe's cost
            self.model.fit(self.scaler.transform(f_train), y_train)

    def logits(self, f, n_classes: int) -> np.ndarray:
        """n x n_classes scores whose softmax is the probe's class probabilities; a class the
        training set lacks gets -1e30 (probability 0)."""
        z = self.model.decision_function(self.scaler.transform(f))
        if len(self.model.classes_) == 2:  # binary: one score for classes_[1] against classes_[0]
            z = np.stack([np.zeros_like(z), z], axis=1)
        out = np.full((len(f), n_classes), -1e30)
        out[:, self.model.classes_] = z
        return out


class ProbeReadout:
    """How a self-supervised rule predicts: a linear probe on the pooled features of every layer
    (the rule's `pools(net)`), fitted on the training set before every evaluation."""

    self_supervised = True
    _readout: tuple | None = None  # (the network, its fitted probe, n_classes)

    def features(self, net, x) -> list[np.ndarray]:
        """The probe's features of inputs x, one host array (n x D_l) per layer: the pooled activity
        of every block (`pools(net)`); a rule whose layers compute otherwise overrides this."""
        return features(net, x, self.pools(net))

    def fit_readout(self, net, data) -> None:
        """Fit the linear probe on the features of data's training set (read through net)."""
        f = np.concatenate(self.features(net, data.x_train), axis=1)
        self._readout = (net, LinearProbe(f, data.y_train), data.n_classes)

    def predict(self, net, x):
        """The probe's class logits (batch x n_classes) of inputs x, read through net."""
        if self._readout is None or self._readout[0] is not net:
            raise RuntimeError("a self-supervised rule predicts through its probe: call fit_readout(net, data) first")
        _, readout, n_classes = self._readout
        f = np.concatenate(self.features(net, x), axis=1)
        return backend.asarray(readout.logits(f, n_classes))


def fit_and_score(f_train, y_train, f_test, y_test, max_iter: int = 100) -> tuple[float, float]:
    """(test accuracy, test cross-entropy) of a standardized multinomial logistic regression."""
    probe = LinearProbe(f_train, y_train, max_iter)
    model = probe.model
    proba = model.predict_proba(probe.scaler.transform(f_test))
    cols = np.searchsorted(model.classes_, y_test)
    known = cols < len(model.classes_)
    p_true = np.where(known, proba[np.arange(len(y_test)), np.minimum(cols, len(model.classes_) - 1)], 0.0)
    accuracy = float((model.classes_[proba.argmax(axis=1)] == y_test).mean())
    return accuracy, float(-np.log(np.maximum(p_true, 1e-30)).mean())


def probe(features_of, data, per_layer: bool = True) -> ProbeResult:
    """Probe accuracy of the concatenated features (and of each layer's when per_layer);
    features_of(x) gives the per-layer features of inputs x (a rule's `features`)."""
    train, test = features_of(data.x_train), features_of(data.x_test)
    accuracy, loss = fit_and_score(np.concatenate(train, axis=1), data.y_train, np.concatenate(test, axis=1), data.y_test)
    layers = [fit_and_score(a, data.y_train, b, data.y_test)[0] for a, b in zip(train, test)] if per_layer else []
    return ProbeResult(accuracy, loss, layers)


def raw_input_accuracy(data) -> float:
    """The probe on the raw input: what an encoder has to beat."""
    flat = lambda x: x.reshape(len(x), -1)  # noqa: E731
    return fit_and_score(flat(data.x_train), data.y_train, flat(data.x_test), data.y_test)[0]
