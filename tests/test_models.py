"""Model registry: the configurable CNN and torchvision families, built from scratch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from datakit import config as cfg
from datakit.checkpoint import load_initial_weights
from datakit.errors import DatakitError
from datakit.models import MODELS, build_model, get_family


def _model_config(**overrides: object) -> cfg.ModelConfig:
    return cfg.resolve_config(None, {f"model.{k}": v for k, v in overrides.items()}).model


@pytest.mark.parametrize("overrides", [
    {},
    {"conv.filters": [4, 8, 16], "conv.kernel_size": [5, 3, 3], "conv.activation": "gelu", "conv.batch_norm": False},
    {"conv.filters": [4, 8], "conv.stride": [2, 1], "conv.padding": "valid", "pool.type": "avg"},
    {"conv.filters": [4, 8], "pool.type": "none", "head.pooling": "global_max", "head.dense": []},
    {"conv.filters": [4, 8], "head.pooling": "flatten", "head.dense": [32, 16], "head.dropout": 0.5},
    {"conv.filters": [4, 8], "head.pooling": "global_avg_max", "head.dense": []},
    {"conv.filters": [4], "conv.convs_per_block": 3, "pool.kernel_size": 3, "pool.stride": 2, "pool.padding": 1},
])
def test_cnn_from_config_maps_images_to_class_logits(overrides: dict) -> None:
    model = build_model(_model_config(**overrides), in_channels=3, num_classes=5, image_size=(32, 24))
    logits = model(torch.randn(2, 3, 32, 24))
    assert logits.shape == (2, 5)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_cnn_layers_follow_the_config() -> None:
    model = build_model(_model_config(**{"conv.filters": [6, 12], "conv.kernel_size": 5, "conv.convs_per_block": 2,
                                         "pool.type": "avg", "head.dense": [20], "head.dropout": 0.25}),
                        in_channels=1, num_classes=2, image_size=(16, 16))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 6, (5, 5)), (6, 6, (5, 5)), (6, 12, (5, 5)), (12, 12, (5, 5))]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 4
    assert sum(isinstance(m, nn.AvgPool2d) for m in model.modules()) == 2
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(12, 20), (20, 2)]
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.25, 0.25]


def test_avg_max_pooling_gives_both_statistics_side_by_side() -> None:
    from datakit.models.cnn import global_pool

    maps = torch.zeros(1, 2, 4, 4)
    maps[0, 0, 1, 2] = 8.0  # one small bright spot: the average hides it, the max keeps it
    maps[0, 1] = 1.0
    assert global_pool("global_avg_max")(maps).tolist() == [[0.5, 1.0, 8.0, 1.0]]
    model = build_model(_model_config(**{"conv.filters": [4, 8], "head.pooling": "global_avg_max", "head.dense": []}),
                        in_channels=1, num_classes=3, image_size=(16, 16))
    (linear,) = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linear.in_features == 16


def test_localizer_head_takes_avg_max_pooling() -> None:
    config = _model_config(**{"conv.filters": [4, 8], "head.pooling": "global_avg_max", "head.dense": []})
    model = build_model(config, in_channels=3, num_classes=4, image_size=(32, 32), task="localization")
    out = model(torch.randn(2, 3, 32, 32))
    tensors = out.values() if isinstance(out, dict) else out if isinstance(out, (tuple, list)) else [out]
    assert all(t.shape[0] == 2 and torch.isfinite(t).all() for t in tensors)


def test_flatten_head_width_is_computed_from_the_image_size() -> None:
    model = build_model(_model_config(**{"conv.filters": [4, 8], "head.pooling": "flatten", "head.dense": []}),
                        in_channels=1, num_classes=3, image_size=(16, 12))
    (linear,) = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linear.in_features == 8 * 4 * 3


def test_too_many_poolings_for_the_image_size_is_a_clear_error() -> None:
    with pytest.raises(DatakitError, match=r"shrink a 8x8 image to nothing.*larger data.image_size"):
        build_model(_model_config(**{"conv.filters": [4, 4, 4, 4, 4]}), 1, 2, (8, 8))


def test_unknown_model_suggests_the_closest_name() -> None:
    with pytest.raises(DatakitError, match=r"unknown model 'resnet81'; did you mean 'resnet18'\?"):
        get_family("resnet81")
    with pytest.raises(DatakitError, match=r"unknown model 'zzz'; known models: cnn, resnet18"):
        get_family("zzz")


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "efficientnet_b0"])
def test_torchvision_families_build_from_scratch_without_downloading(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    model = build_model(_model_config(name=name), in_channels=3, num_classes=3, image_size=(32, 32))
    model.eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    assert get_family(name).channels == 3
    assert not (tmp_path / "torch_home").exists()  # nothing fetched or cached


def test_every_registered_family_has_a_builder() -> None:
    assert "cnn" in MODELS and get_family("cnn").channels is None
    assert all(callable(family.build) for family in MODELS.values())


def test_initial_weights_from_a_local_file_keep_mismatched_heads_fresh(tmp_path: Path) -> None:
    source = build_model(_model_config(**{"conv.filters": [4, 8]}), 1, 10, (16, 16))
    path = tmp_path / "pretrained.pth"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)  # as saved from DDP
    target = build_model(_model_config(**{"conv.filters": [4, 8]}), 1, 3, (16, 16))
    note = load_initial_weights(target, path)
    first_conv = "features.0.weight"
    assert torch.equal(target.state_dict()[first_conv], source.state_dict()[first_conv])
    assert "kept fresh: head." in note and "shape differs" in note


def test_initial_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, path)
    target = build_model(_model_config(**{"conv.filters": [4]}), 1, 2, (8, 8))
    with pytest.raises(DatakitError, match="no tensor names and shapes match this model"):
        load_initial_weights(target, path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatakitError, match="not a readable checkpoint"):
        load_initial_weights(target, tmp_path / "notes.txt")
