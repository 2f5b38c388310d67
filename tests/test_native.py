"""hilt's bp on the aihwkit backend against aihwkit's own training loop (AnalogSequential + AnalogSGD)."""

import numpy as np
import torch

from devices import parse_device
from experiments.native import native_mlp
from experiments.train import TrainConfig, build


def test_bp_on_ideal_matches_aihwkit_analog_sgd_from_the_same_init(tmp_path):
    setup = build(TrainConfig(device="ideal", model="mlp:64-24-10", seed=3, out=str(tmp_path)))
    net, data = setup.net, setup.data
    init = [np.asarray(b.crossbar.weights()) for b in net.blocks]
    model = native_mlp(net, parse_device("ideal", seed=3), seed=0, init_weights=init)
    from aihwkit.optim import AnalogSGD

    opt = AnalogSGD(model.parameters(), lr=0.05)
    opt.regroup_param_groups(model)
    lins = [m for m in model if type(m).__name__ == "AnalogLinear"]
    for lin, W in zip(lins, init):  # the native tiles really hold hilt's init
        w, b = lin.get_weights()
        np.testing.assert_allclose(np.c_[w.numpy(), b.numpy()], W, atol=1e-6)

    x, y = data.x_train[:16].reshape(16, -1), data.y_train[:16]
    for _ in range(3):
        setup.rule.step(net, x, y, 0.05)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
    for lin, block, W0 in zip(lins, net.blocks, init):
        w, b = lin.get_weights()
        native, hilt = np.c_[w.numpy(), b.numpy()], np.asarray(block.crossbar.weights())
        assert np.abs(hilt - W0).max() > 1e-3  # the steps moved the weights
        np.testing.assert_allclose(hilt, native, atol=1e-5)
