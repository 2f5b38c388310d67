"""Recipes: the papers' hyperparameters (a table), overrides, and a run from one."""

import json
from pathlib import Path

import pytest

from hilt.experiments.run.recipes import apply_recipe, recipes
from hilt.experiments.run.setup import validate
from tests.helpers import runner
from tests.test_data import make_fake


# name: (dataset, model, rule, optimizer, lr, batch, epochs, momentum, weight decay, schedule, rule options)
PAPERS = {
    "dp-vgg16-cifar10": ("cifar10", "vgg16", "dp_adjoint", "sgd", 0.025, 100, 130, 0.9, 5e-4,
                         "warmup-cosine:10,120,0.001,2e-6", {"alpha": 0.0, "beta": 0.1}),
    "dp-vgg16-cifar100": ("cifar100", "vgg16", "dp_adjoint", "sgd", 0.015, 50, 200, 0.9, 5e-4,
                          "warmup-cosine:10,190,0.001,2e-6", {"alpha": 0.0, "beta": 0.1}),
    "bp-vgg16-cifar10": ("cifar10", "vgg16", "bp", "sgd", 0.025, 100, 130, 0.9, 5e-4,
                         "warmup-cosine:10,120,0.001,2e-6", {}),
    "clapp-pp-vgg6-cifar10": ("cifar10", "vgg6", "clapp_pp", "adamw", 2e-4, 32, 300, 0.0, 0.0, "constant",
                              {"pool": "4-4-4-2-2-1"}),
    "clapp-pp-dfb-vgg6-stl10": ("stl10", "vgg6", "clapp_pp_dfb", "adamw", 2e-4, 32, 300, 0.0, 0.0, "constant",
                                {"pool": "12-12-12-6-6-3"}),
    "clapp-pp-both-vgg6-tiny": ("tiny-imagenet", "vgg6", "clapp_pp_both", "adamw", 2e-4, 32, 300, 0.0, 1e-5,
                                "constant", {"pool": "8-8-8-4-4-2"}),
    "dp-adjoint-mlp-mnist": ("mnist", "mlp:784-512-512-10", "dp_adjoint", "adam", 1e-3, 50, 20, 0.0, 0.0,
                             "constant", {"loss": "mse", "beta": 0.5}),
    "dp-mlp4-mnist": ("mnist", "mlp:784-1000-1000-1000-1000-10", "dp", "adam", 1e-3, 50, 20, 0.0, 0.0, "constant",
                      {"alpha": 0.0, "passes": 30}),
}


@pytest.mark.parametrize("name", list(PAPERS))
def test_recipe_has_the_papers_hyperparameters(name):
    cfg = apply_recipe(name, {})
    dataset, model, rule, optimizer, lr, batch, epochs, momentum, wd, schedule, options = PAPERS[name]
    assert (cfg.dataset, cfg.model, cfg.rule, cfg.optimizer, cfg.lr, cfg.batch_size, cfg.epochs, cfg.momentum,
            cfg.weight_decay, cfg.lr_schedule) == (dataset, model, rule, optimizer, lr, batch, epochs, momentum, wd,
                                                   schedule)
    assert options.items() <= cfg.rule_options.items()


def test_every_recipe_is_a_valid_run_and_vgg16_ones_hold_out_validation():
    table = recipes()
    kinds = {"vgg16": 0, "clapp": 0}
    for name, entry in table.items():
        cfg = apply_recipe(name, {})
        validate(cfg)  # raises HiltError for a recipe that cannot run
        for key, value in entry.items():  # the run is the recipe: every key reaches the settings
            if key not in ("description", "rule_options"):
                assert getattr(cfg, key) == value, (name, key)
        assert entry.get("rule_options", {}).items() <= cfg.rule_options.items(), name
        if cfg.model == "vgg16":
            kinds["vgg16"] += 1
            assert "validation=0.1" in cfg.data_set and cfg.keep_best and "augment=crop-flip" in cfg.data_set, name
        if cfg.rule.startswith("clapp"):
            kinds["clapp"] += 1
            assert "views=simclr" in cfg.data_set, name
    assert kinds["vgg16"] >= 4 and kinds["clapp"] >= 4, kinds  # the checks above ran on both kinds


def test_typed_flags_override_the_recipe():
    cfg = apply_recipe("dp-vgg16-cifar10", {"epochs": 2, "beta": 0.5, "data_set": ["validation=0.2", "train_size=9"]})
    assert cfg.epochs == 2 and cfg.rule_options["beta"] == 0.5 and cfg.rule_options["alpha"] == 0.0
    assert cfg.data_set == ["norm=dp", "augment=crop-flip", "validation=0.2", "train_size=9"]
    assert cfg.lr == 0.025


def test_train_from_a_recipe_on_image_files(tmp_path, rng):
    from hilt.cli import app

    make_fake("cifar10", tmp_path / "data", rng)
    result = runner.invoke(app, ["train", "--recipe", "bp-vgg16-cifar10", "--model", "vgg16@0.0625",
                                      "--epochs", "1", "--data-dir", str(tmp_path / "data"), "--out",
                                      str(tmp_path / "runs"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    config = json.loads((Path(summary["run_dir"]) / "config.json").read_text())
    assert (config["lr"], config["momentum"], config["lr_schedule"], config["batch_size"]) == (
        0.025, 0.9, "warmup-cosine:10,120,0.001,2e-6", 100)
    assert summary["best_epoch"] in (0, 1) and "best_val_accuracy" in summary
    bad = runner.invoke(app, ["train", "--recipe", "nope"])
    assert bad.exit_code == 2 and "unknown recipe 'nope'; allowed: dp-vgg16-cifar10" in bad.output


def test_a_recipe_run_resumes_bit_identically(tmp_path, rng):
    """Augmentation draws come from the run's saved data-order RNG, the schedule from the step count."""
    from hilt.cli import app

    make_fake("cifar10", tmp_path / "data", rng)
    common = ["train", "--recipe", "bp-vgg16-cifar10", "--model", "vgg16@0.0625", "--batch-size", "2",
              "--lr-schedule", "warmup-cosine:1,2,0.001,0.0001", "--data-dir", str(tmp_path / "data"), "--json"]
    straight = json.loads(runner.invoke(app, common + ["--epochs", "2", "--out", str(tmp_path / "a")]).stdout.splitlines()[-1])
    first = json.loads(runner.invoke(app, common + ["--epochs", "1", "--out", str(tmp_path / "b")]).stdout.splitlines()[-1])
    resumed = runner.invoke(app, ["train", "--resume", first["run_dir"], "--epochs", "2", "--json"])
    assert resumed.exit_code == 0, resumed.output
    a, b = (Path(s["run_dir"]) / "metrics.csv" for s in (straight, first))
    assert a.read_bytes() == b.read_bytes()
