"""The training config: defaults in one place, dotted keys, aliases, YAML, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from datakit import config as cfg
from datakit.errors import DatakitError

REPO = Path(__file__).resolve().parents[1]


def test_every_key_has_a_default_a_type_and_help() -> None:
    rows = cfg.describe()
    keys = [r[0] for r in rows]
    assert len(keys) == len(set(keys))
    for key in ("seed", "optim.lr", "model.conv.filters", "model.pool.type", "model.head.dense",
                "train.patience", "data.val_fraction", "augment", "schedule.name"):
        assert key in keys
    assert all(help_text for _, _, _, help_text in rows)
    defaults = cfg.TrainConfig()
    for key, default, _, _ in rows:
        assert cfg.get_key(defaults, key) == default


def test_dotted_keys_aliases_and_double_underscores_all_set_the_same_key() -> None:
    config = cfg.resolve_config(None, {"optim.lr": 0.05})
    assert config.optim.lr == 0.05
    assert cfg.resolve_config(None, {"lr": 0.05}).optim.lr == 0.05
    assert cfg.resolve_config(None, {"optim__lr": 0.05}).optim.lr == 0.05
    assert cfg.resolve_config(None, {"model.conv.filters": [8, 16]}).model.conv.filters == [8, 16]
    assert cfg.resolve_config(None, {"epochs": 3}).train.epochs == 3


def test_ints_become_floats_and_tuples_lists() -> None:
    config = cfg.resolve_config(None, {"optim.lr": 1, "model.conv.filters": (4, 8)})
    assert config.optim.lr == 1.0 and isinstance(config.optim.lr, float)
    assert config.model.conv.filters == [4, 8]


def test_unknown_key_names_the_closest_one() -> None:
    with pytest.raises(DatakitError, match=r"unknown config key 'optim.lrr'; did you mean 'optim.lr'\?"):
        cfg.resolve_config(None, {"optim.lrr": 0.1})
    with pytest.raises(DatakitError, match=r"did you mean 'model.conv.filters'"):
        cfg.resolve_config(None, {"model.conv.filter": [8]})
    with pytest.raises(DatakitError, match=r"did you mean 'train.epochs'"):
        cfg.resolve_config(None, {"train.epoch": 3})


def test_wrong_type_and_unknown_choice_are_named() -> None:
    with pytest.raises(DatakitError, match=r"config key 'train.epochs': 'ten' is not int"):
        cfg.resolve_config(None, {"epochs": "ten"})
    with pytest.raises(DatakitError, match=r"config key 'optim.name': 'sgdd' .*did you mean 'sgd'\?"):
        cfg.resolve_config(None, {"optim.name": "sgdd"})
    with pytest.raises(DatakitError, match=r"'train.epochs': True is not int"):
        cfg.resolve_config(None, {"epochs": True})
    with pytest.raises(DatakitError, match=r"config key 'model.conv' is a section; set one of its keys, e.g. 'model.conv.filters'"):
        cfg.set_key(cfg.TrainConfig(), "model.conv", 3)


def test_ranges_and_relations_between_keys_are_checked() -> None:
    with pytest.raises(DatakitError, match="must leave images for training"):
        cfg.resolve_config(None, {"data.val_fraction": 0.5, "data.test_fraction": 0.5})
    with pytest.raises(DatakitError, match="'train.epochs' must be > 0"):
        cfg.resolve_config(None, {"epochs": 0})
    with pytest.raises(DatakitError, match=r"lists 3 values for 2 conv blocks"):
        cfg.resolve_config(None, {"model.conv.filters": [8, 16], "model.conv.kernel_size": [3, 3, 3]})


@pytest.mark.parametrize("key,value,message", [
    ("train.patience", -2, "config key 'train.patience' must be >= 0 (0 turns early stopping off), got -2"),
    ("data.workers", -1, "config key 'data.workers' must be >= 0 (0 decodes in the training process), got -1"),
    ("train.threads", 0, "config key 'train.threads' must be > 0, got 0"),
])
def test_range_messages_say_whether_0_is_allowed(key: str, value: int, message: str) -> None:
    from typer.testing import CliRunner

    from datakit.cli import app

    result = CliRunner().invoke(app, ["train", "m", "-o", "run", "--set", f"{key}={value}", "--print-config"])
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())


def test_patience_0_turns_early_stopping_off() -> None:
    assert cfg.resolve_config(None, {"train.patience": 0}).train.patience is None


def test_yaml_nested_and_dotted_keys_and_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\nmodel:\n  name: cnn\n  conv: {filters: [4, 8]}\n'optim.lr': 0.2\nepochs: 2\n")
    config = cfg.resolve_config(path)
    assert (config.seed, config.model.conv.filters, config.optim.lr, config.train.epochs) == (3, [4, 8], 0.2, 2)
    path.write_text("model:\n  conv:\n    filtres: [4]\n")
    with pytest.raises(DatakitError, match=r"c.yaml: unknown config key 'model.conv.filtres'; did you mean 'model.conv.filters'"):
        cfg.resolve_config(path)
    path.write_text("model: [unclosed\n")
    with pytest.raises(DatakitError, match=r"c.yaml: line \d+, column \d+: invalid YAML"):
        cfg.resolve_config(path)
    with pytest.raises(DatakitError, match="config file not found"):
        cfg.resolve_config(tmp_path / "missing.yaml")
    # a key twice in one mapping: plain YAML keeps the last and drops the first without a word
    path.write_text("train:\n  epochs: 3\noptim: {lr: 0.1}\ntrain:\n  batch_size: 8\n")
    with pytest.raises(DatakitError, match=r"c.yaml: line 4, column 1: invalid YAML \(key 'train' is given twice"):
        cfg.resolve_config(path)
    path.write_text("base: &b {lr: 0.1, name: sgd}\noptim:\n  <<: *b\n  lr: 0.5\n")  # a merge key overrides
    assert cfg.load_yaml(path)["optim"] == {"lr": 0.5, "name": "sgd"}


def test_dumped_config_loads_back_identical(tmp_path: Path) -> None:
    config = cfg.resolve_config(None, {"model.conv.filters": [4, 8], "augment": [{"HorizontalFlip": {"p": 0.5}}]})
    path = tmp_path / "config.yaml"
    path.write_text(cfg.dump_yaml(config))
    assert cfg.resolve_config(path) == config


def test_command_line_assignments_are_read_as_yaml() -> None:
    assert cfg.parse_assignment("optim.lr=0.01") == ("optim.lr", 0.01)
    assert cfg.parse_assignment("model.conv.filters=[8,16]") == ("model.conv.filters", [8, 16])
    assert cfg.parse_assignment("train.patience=null") == ("train.patience", None)
    assert cfg.parse_assignment("model.name=resnet18") == ("model.name", "resnet18")
    with pytest.raises(DatakitError, match="--set expects key=value"):
        cfg.parse_assignment("optim.lr")


@pytest.mark.parametrize("name", ["digits-cnn.yaml", "shapes-classify.yaml"])
def test_shipped_train_configs_are_valid(name: str) -> None:
    config = cfg.resolve_config(REPO / "configs" / name)
    assert config.model.name == "cnn"


def test_patience_zero_switches_early_stopping_off(digits_small: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from datakit.cli import app
    from datakit.training import train
    from tests.conftest import TINY_TRAIN

    assert cfg.resolve_config(None, {"patience": 0}).train.patience is None
    assert cfg.resolve_config(None, {"train.patience": 3}).train.patience == 3
    with pytest.raises(DatakitError, match="train.patience"):
        cfg.resolve_config(None, {"train.patience": -1})
    shown = CliRunner().invoke(app, ["train", "--print-config", "--patience", "0"])
    assert shown.exit_code == 0, shown.output
    assert "patience: null" in shown.stdout
    # no epoch can beat the first by 10 in val loss: with patience 2 this stops after epoch 3 (test_train);
    # with patience 0 every epoch runs
    result = train(digits_small, output=tmp_path / "run", show_progress=False,
                   **{**TINY_TRAIN, "epochs": 4, "train.monitor": "val_loss", "train.min_delta": 10.0, "patience": 0})
    assert result.status == "completed" and result.epochs_run == 4


def test_list_keys_prints_brackets_as_text() -> None:
    import io

    from rich.console import Console
    from typer.testing import CliRunner

    from datakit.cli import app
    from datakit.render_training import config_keys

    listed = CliRunner().invoke(app, ["train", "--list-keys"])
    assert listed.exit_code == 0, listed.output
    assert "[height," in listed.stdout  # rich markup would have swallowed the bracketed words
    wide = Console(file=io.StringIO(), width=250)
    config_keys(wide, cfg.describe())
    lines = wide.file.getvalue().splitlines()
    line = next(row for row in lines if "data.image_size" in row)
    assert "or [height, width]" in line and "int or list[int]" in line
    assert "0 or null = off" in next(row for row in lines if "train.patience" in row)
