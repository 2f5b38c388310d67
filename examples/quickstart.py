"""hilt from Python: train dual propagation (DP-transpose) on an RRAM device and on the exact path,
then plot test accuracy per epoch.

    python examples/quickstart.py                  # 10 epochs each, writes quickstart.png
    python examples/quickstart.py --epochs 2 --figure /tmp/q.png
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import hilt  # noqa: E402


def main(epochs: int = 10, figure: str = "quickstart.png") -> dict:
    runs = {device: hilt.train(rule="dp_adjoint", device=device, epochs=epochs, lr=0.05, out=None)  # out=None: no files
            for device in ("exact", "rram")}
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for device, run in runs.items():
        test = run.metrics.query("split == 'test'")  # one row per epoch and split
        ax.plot(test.epoch, test.accuracy, marker="o", label=f"{device}: {run.summary['test_accuracy']:.3f}")
    ax.set(xlabel="epoch", ylabel="test accuracy", title="dp_adjoint on digits, MLP 64-512-10")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(figure, dpi=110)
    for device, run in runs.items():
        print(f"{device}: test accuracy {run.summary['test_accuracy']:.4f}, "
              f"{run.summary['train_expected_pulses']:.3g} expected pulses in training")
    print(f"figure: {figure}")
    return runs


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--figure", default="quickstart.png")
    args = parser.parse_args()
    main(args.epochs, args.figure)
