"""--lr-schedule: warmup-cosine equals optax's warmup_cosine_decay_schedule (Two Tales' schedule), per step."""

import math

import pytest

from hilt.errors import HiltError
from hilt.experiments.run.schedule import Constant, parse_schedule


def optax_warmup_cosine(step, init, peak, warmup_steps, decay_steps, end):
    """optax.warmup_cosine_decay_schedule written out from its definition (optax is not a dependency)."""
    if step < warmup_steps:
        return init + (peak - init) * step / warmup_steps
    t = min(step - warmup_steps, decay_steps - warmup_steps)
    return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * t / (decay_steps - warmup_steps)))


def test_warmup_cosine_is_optax_schedule_per_step():
    s = parse_schedule("warmup-cosine:10,120,0.001,2e-6")  # the CIFAR-10 VGG16 recipe
    steps = 450  # 45 000 training images / batch 100
    for step in [0, 1, 449, 450, 4499, 4500, 4501, 30000, 53999, 54000, 58499]:
        assert s.lr(0.025, step, steps) == pytest.approx(optax_warmup_cosine(step, 1e-3, 0.025, 4500, 54000, 2e-6))
    assert s.lr(0.025, 4500, steps) == pytest.approx(0.025)
    assert s.lr(0.025, 10**6, steps) == pytest.approx(2e-6)
    assert isinstance(parse_schedule("constant"), Constant)


@pytest.mark.parametrize("text", ["cosine", "warmup-cosine:10,5,0.1,0", "warmup-cosine:1,2,3", "warmup-cosine:a,2,3,4",
                                  "warmup-cosine:0,0,0.1,0"])
def test_bad_schedule_is_one_clear_error(text):
    with pytest.raises(HiltError, match="expected constant | warmup-cosine"):
        parse_schedule(text)


def test_train_follows_the_schedule(tmp_path):
    from hilt.experiments.run.config import TrainConfig
    from hilt.experiments.run.setup import build
    from hilt.experiments.run.trainer import train

    seen = []
    setup = build(TrainConfig(device="exact", epochs=2, batch_size=500, lr=0.5,
                              lr_schedule="warmup-cosine:1,2,0.1,0.01", out=str(tmp_path)))
    step = setup.rule.step
    setup.rule.step = lambda net, x, y, lr: (seen.append(lr), step(net, x, y, lr))[1]
    assert train(setup)["status"] == "finished"
    steps = 3  # 1437 digits / 500
    assert seen == pytest.approx([parse_schedule("warmup-cosine:1,2,0.1,0.01").lr(0.5, t, steps) for t in range(6)])
    assert seen[0] == pytest.approx(0.1) and seen[3] == pytest.approx(0.5)
