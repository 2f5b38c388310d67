"""Learning-rate schedules, evaluated at every training step (`--lr-schedule`; the peak is --lr).

- `constant`: --lr throughout.
- `warmup-cosine:W,D,INIT,FINAL` (Two Tales' VGG16 schedule; optax's warmup_cosine_decay_schedule): linear
  from INIT to --lr over the first W epochs, cosine from --lr to FINAL until epoch D (D counts the
  warmup, as optax's decay_steps does), then FINAL. Scheduled per step. INIT and FINAL must be > 0
  (optax allows 0; a crossbar update needs lr > 0 at every step, so 0 would fail mid-run).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from hilt.errors import HiltError

FORMS = "constant | warmup-cosine:WARMUP_EPOCHS,DECAY_EPOCHS,INIT_LR,FINAL_LR"


@dataclass(frozen=True)
class WarmupCosine:
    warmup: float
    decay: float
    init: float
    final: float

    def lr(self, peak: float, step: int, steps_per_epoch: int) -> float:
        """The learning rate at training step `step` (0-based) for peak lr and steps per epoch."""
        warmup, decay = self.warmup * steps_per_epoch, self.decay * steps_per_epoch
        if step < warmup:
            return self.init + (peak - self.init) * step / warmup
        t = min(step - warmup, decay - warmup) / max(decay - warmup, 1)
        return self.final + (peak - self.final) * 0.5 * (1 + math.cos(math.pi * t))


@dataclass(frozen=True)
class Constant:
    def lr(self, peak: float, step: int, steps_per_epoch: int) -> float:
        """The peak lr at every step."""
        return peak


def parse_schedule(text: str | None):
    """The schedule of --lr-schedule's text (HiltError naming what is allowed otherwise)."""
    if text in (None, "", "constant"):
        return Constant()
    m = re.fullmatch(r"warmup-cosine:([^,]+),([^,]+),([^,]+),([^,]+)", text.replace(" ", ""))
    if m:
        try:
            warmup, decay, init, final = (float(v) for v in m.groups())
        except ValueError:
            warmup = decay = init = final = math.nan
        if 0 <= warmup <= decay and decay > 0 and init > 0 and final > 0 and all(
                math.isfinite(v) for v in (warmup, decay, init, final)):
            return WarmupCosine(warmup, decay, init, final)
    raise HiltError(f"--lr-schedule {text!r}: expected {FORMS} (0 <= WARMUP <= DECAY, DECAY > 0, rates > 0: "
                    "a pulsed update needs lr > 0 at every step)")
