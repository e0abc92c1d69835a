"""Contract over the whole model registry: every (task, family) builds from scratch and maps a batch to the right shape."""

from __future__ import annotations

import pytest
import torch

from datakit import config as cfg
from datakit.models import REGISTRY, build_model
from datakit.tasks import TASKS

# the largest families take seconds each to build: tested under -m slow, one fast one by default
HEAVY = {"resnet50", "densenet121", "convnext_tiny", "efficientnet_b1", "mobilenet_v3_large", "regnet_y_400mf",
         "resnet34", "mobilenet_v2", "shufflenet_v2_x1_0", "efficientnet_b0", "mobilenet_v3_small",
         # torchvision detectors (built from scratch, seconds each)
         "fasterrcnn_mobilenet_v3_large_320_fpn", "fasterrcnn_mobilenet_v3_large_fpn", "retinanet_resnet50_fpn",
         "fcos_resnet50_fpn", "ssdlite320_mobilenet_v3_large",
         # torchvision Mask R-CNN (instance segmentation)
         "maskrcnn_resnet50_fpn", "maskrcnn_mobilenet_v3_large_fpn",
         # torchvision segmentation models (from scratch)
         "deeplabv3_mobilenet_v3_large", "fcn_resnet50", "deeplabv3_resnet50"}


def _cases() -> list:
    return [pytest.param(task, name, marks=[pytest.mark.slow] if name in HEAVY else [], id=f"{task}-{name}")
            for (task, name) in REGISTRY]


@pytest.mark.parametrize(("task", "name"), _cases())
def test_family_builds_and_maps_a_batch(task: str, name: str) -> None:
    assert task in TASKS
    family = REGISTRY[(task, name)]
    config = cfg.resolve_config(None, {"model.name": name, "model.conv.filters": [8, 16]}).model
    channels = family.channels or 1
    model = build_model(config, channels, 3, (32, 32), task=task)
    model.eval()
    with torch.inference_mode():
        out = model(torch.randn(2, channels, 32, 32))
    if task == "classification":
        assert out.shape == (2, 3)
    if task == "localization":  # class logits, then the box
        assert out.shape == (2, 3 + 4)
    if task == "detection" and isinstance(out, dict):  # raw maps: a heatmap per class
        assert out["heatmap"].shape[:2] == (2, 3)
    if task == "semantic_segmentation":  # class logits for every pixel, at the input size
        assert out.shape == (2, 3, 32, 32)
    if family.channels is None:  # any channel count: 3 works as well as 1
        assert _batch(build_model(config, 3, 3, (32, 32), task=task)(torch.randn(1, 3, 32, 32))) == 1


def _batch(out: object) -> int:
    """Images in a model's output: a tensor, a dict of maps or a list of per-image detections."""
    if isinstance(out, dict):
        return next(iter(out.values())).shape[0]
    if isinstance(out, list):
        return len(out)
    return out.shape[0]  # type: ignore[attr-defined]
