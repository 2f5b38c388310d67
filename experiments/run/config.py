"""TrainConfig: every setting of a training run, and the one place its defaults live.

The CLI's options take their defaults from here (cli.py reads `TrainConfig()`), and so do
recipes, sweeps and resumed runs. A light module: the CLI imports it at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def flag(key: str) -> str:
    """The command-line flag of a TrainConfig field or rule option: lr -> --lr, sets -> --set."""
    return "--set" if key == "sets" else "--" + key.replace("_", "-")


# the settings that tell runs apart: report's grouping columns, a run's TensorBoard hparams
RUN_SETTINGS = ("dataset", "model", "device", "update", "rule", "lr", "lr_schedule", "batch_size", "optimizer",
                "momentum", "weight_decay", "activation")


@dataclass
class TrainConfig:
    """Every setting of a training run (see the fields' comments; `hilt train --help` for each)."""

    dataset: str = "digits"
    data_set: list[str] = field(default_factory=list)
    data_dir: str | None = None  # where the on-disk datasets are (data/disk.py)
    download: bool = False  # fetch a missing on-disk dataset into data_dir first (data/download.py)
    model: str | None = None  # None: the dataset's default MLP
    device: str = "rram"  # a preset, a NeuroSim device or a device file (devices/presets.py DEVICE_CHOICES)
    device_definition: dict | None = None  # a non-preset device's full definition, recorded by build()
    sets: list[str] = field(default_factory=list)
    update: str | None = None  # the analog update algorithm (devices/updates.py); None: the preset's own
    rule: str = "bp"
    rule_options: dict = field(default_factory=dict)
    epochs: int = 30
    batch_size: int | None = None  # None: the dataset's
    lr: float = 0.05
    lr_schedule: str = "constant"  # experiments/run/schedule.py; the peak is lr
    seed: int = 0
    optimizer: str = "sgd"
    momentum: float = 0.0
    weight_decay: float = 0.0
    activation: str = "relu"
    log_alignment: bool = False
    keep_best: bool = False  # also keep checkpoint-best.npz, by selection_metric(data)
    tensorboard: bool = True  # write RUN_DIR/tensorboard/ (experiments/run/events.py)
    eval_every: int = 1  # test evaluation every N epochs (and after the last)
    cost_table: dict | None = None  # energy/latency costs per operation (experiments/measure/cost.py); None: the default, recorded by build()
    out: str | None = "results/runs"  # None: the run is kept in memory, nothing is written (Python API)

    @property
    def device_label(self) -> str:
        """--device, with the update algorithm when one was chosen (rram+summed): names and titles."""
        from hilt.devices.device_file import device_label

        name = device_label(self.device)
        return name if self.update is None else f"{name}+{self.update}"

    @property
    def rule_label(self) -> str:
        """--rule in names and titles: a plug-in from a file or module by its class name."""
        from hilt.rules import resolve

        return resolve(self.rule).label

    def device_spec(self):
        """The validated DeviceSpec of --device, --set, --update and --seed (DeviceError on bad input)."""
        from hilt.devices import parse_device

        return parse_device(self.device, self.sets, seed=self.seed, update=self.update, definition=self.device_definition)


# Where a command's defaults differ from a single run's (the CLI's and the API's defaults both come from here).
COMPARE_EVERY = 50  # compare: update fidelity sampled every N training steps, unless told

COMMAND_DEFAULTS: dict[str, dict] = {
    "sweep": {"out": "results/sweeps"},
    "rhm-pstar": {"dataset": "rhm", "model": "rhm-cnn:256", "out": "results/rhm-pstar"},
}
