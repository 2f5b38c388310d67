"""How a run is scored on held-out data: the rule's own prediction (Rule.fit_readout, then
Rule.predict), and which accuracy picks the best epoch."""

from __future__ import annotations

from hilt.analog import backend
from hilt.analog.network import EVAL_BATCH, Network
from hilt.rules.base import output_metrics
from hilt.rules.losses import cross_entropy

# The best epoch (--keep-best) is picked on validation accuracy when the data has a validation set
# (--data-set validation=F), else on test accuracy (optimistic: say so when reporting it).


def selection_metric(data) -> str:
    """The accuracy that picks the best epoch: validation when data has a validation set, else test."""
    return "val_accuracy" if data.x_val is not None else "test_accuracy"


def held_out_score(rule, net: Network, data, batch_size: int = EVAL_BATCH) -> dict:
    """Test loss and accuracy of a network trained by `rule`, scored by the rule's own prediction
    (`rule.fit_readout`, then `rule.predict` batch by batch): accuracy of the largest score; loss,
    the rule's output loss of the scores (cross-entropy for a rule without one, such as a
    self-supervised rule's linear probe)."""
    rule.fit_readout(net, data)
    loss = rule.loss or cross_entropy
    xp = backend.xp()
    total, correct = 0.0, 0
    for i in range(0, len(data.x_test), batch_size):
        scores = rule.predict(net, backend.asarray(data.x_test[i : i + batch_size]))
        m = output_metrics(scores, data.y_test[i : i + batch_size], loss(scores, xp.asarray(data.y_test[i : i + batch_size]))[0])
        total += m["loss_sum"]
        correct += m["correct"]
    return {"loss": total / len(data.x_test), "accuracy": correct / len(data.x_test)}
