"""A datakit epoch on a GPU against hand-written loops, with and without augmentation (issue 13).

    python benchmarks/gpu_epoch.py [--epochs 10] [--rounds 4] [--workers 4] [--device cuda] [--augment medium:fixed]
                                   [--on-device true]

All sides train the shipped digits config (configs/digits-cnn.yaml: 16 px, batch 32, its Affine
augmentation, or ``--augment``'s) on scikit-learn's digits with the same model, optimizer, schedule, seed and mixed
precision (datakit's own ``train.amp`` choice for the device), alternating for ``--rounds``
rounds. An epoch is one pass over train plus one over val; datakit's also writes its
checkpoints and metrics.csv. The first epoch of every run is warm-up and left out; medians.

- ``bare loop``: the normalized tensors already on the GPU, shuffled by index, no augmentation.
- ``datakit, no augmentation``: ``augment: []``; ``data.on_device`` auto keeps the cache on the GPU.
- ``hand loop + workers``: a map-style Dataset applying the same albumentations pipeline per image,
  a DataLoader with ``--workers`` workers, pinned memory, non-blocking copies.
- ``datakit, augmented``: the shipped config as it is (auto: batched augmentation on the GPU).
- two references with ``data.on_device=false`` (the DataLoader path): without augmentation, and
  augmenting in ``--workers`` workers.

Goals: datakit within 1.1x of the bare loop without augmentation, and of the hand loop with
augmentation. Runs on the CPU too (``--device cpu``: a smoke run, not the measurement).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONFIG = REPO / "configs" / "digits-cnn.yaml"


def prepare(work: Path, config: Any) -> dict[str, Any]:
    """The digits manifest, and the exact uint8 images, normalization and labels datakit trains on."""
    import torch

    import datakit
    from datakit.data import Preprocess, channel_stats, decode_all, image_size, prepare_classification
    from datakit.manifest import load_manifest

    data = datakit.sample("digits", work / "digits", show_progress=False)
    datakit.ingest(data.image_folder, work / "digits.manifest", show_progress=False)
    splits = prepare_classification(load_manifest(work / "digits.manifest"), config.data, config.seed)
    height, width = image_size(config.data)
    pre = Preprocess(height, width, 1, config.data.resize)
    images = {name: decode_all([splits.root / p for p in f["path"]], pre) for name, f in splits.frames.items()
              if name in ("train", "val")}
    pre.mean, pre.std = channel_stats(images["train"])
    labels = {name: torch.tensor(splits.frames[name]["target"].to_numpy()) for name in images}
    return {"manifest": work / "digits.manifest", "pre": pre, "images": images, "labels": labels,
            "classes": len(splits.classes)}


class AugmentedDigits:
    """What one writes by hand: a map-style dataset that augments one image per ``__getitem__``."""

    def __init__(self, images: Any, labels: Any, pre: Any, transform: Any) -> None:
        self.images, self.labels, self.pre, self.transform = images, labels, pre, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image = self.transform(image=self.images[index])["image"]
        if image.ndim == 2:
            image = image[:, :, None]
        return self.pre.to_tensor(image[None])[0], self.labels[index]


def hand_loop(config: Any, prepared: dict[str, Any], device: Any, autocast: Callable[[], Any],
              train_batches: Callable[[], Any]) -> list[float]:
    """Shuffle (by ``train_batches``), forward, backward, step; then a validation pass; seconds per epoch."""
    import torch
    from torch import nn

    from datakit.models import build_model

    torch.manual_seed(config.seed)
    pre = prepared["pre"]
    model = build_model(config.model, pre.channels, prepared["classes"], (pre.height, pre.width)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.train.epochs)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.train.label_smoothing)
    x_val = pre.to_tensor(prepared["images"]["val"]).to(device)
    y_val = prepared["labels"]["val"].to(device)
    batch = config.train.batch_size
    times = []
    for _ in range(config.train.epochs):
        started = time.perf_counter()
        model.train()
        total, correct = 0.0, 0
        for x, y in train_batches():
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast():
                logits = model(x)
            loss = criterion(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
        scheduler.step()
        model.eval()
        val_loss, val_correct = 0.0, 0
        with torch.inference_mode():
            for start in range(0, len(y_val), batch):
                x, y = x_val[start:start + batch], y_val[start:start + batch]
                with autocast():
                    logits = model(x)
                val_loss += nn.functional.cross_entropy(logits.float(), y).item() * len(y)
                val_correct += int((logits.argmax(1) == y).sum())
        times.append(time.perf_counter() - started)
    return times


def bare_batches(prepared: dict[str, Any], device: Any, batch: int) -> Callable[[], Any]:
    import torch

    x = prepared["pre"].to_tensor(prepared["images"]["train"]).to(device)
    y = prepared["labels"]["train"].to(device)

    def batches() -> Any:
        for index in torch.randperm(len(y), device=device).split(batch):
            yield x[index], y[index]
    return batches


def worker_batches(prepared: dict[str, Any], config: Any, workers: int, pin: bool) -> Callable[[], Any]:
    import torch

    from datakit.online_augment import build_transform

    transform = build_transform(config.augment, seed=config.seed)
    dataset = AugmentedDigits(prepared["images"]["train"], prepared["labels"]["train"], prepared["pre"], transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.train.batch_size, shuffle=True,
                                         num_workers=workers, pin_memory=pin, persistent_workers=workers > 0)
    return lambda: loader


def datakit_epochs(manifest: Path, run_dir: Path, overrides: dict[str, Any]) -> tuple[list[float], list[str]]:
    import datakit

    if run_dir.exists():
        shutil.rmtree(run_dir)
    result = datakit.train(manifest, CONFIG, run_dir, show_progress=False, **overrides)
    return [row["seconds"] for row in result.history], result.notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--augment", default=None,
                        help="another augmentation for the augmented sides (a preset such as medium:fixed)")
    parser.add_argument("--on-device", choices=["auto", "true"], default="auto",
                        help="data.on_device of the datakit sides that are not DataLoader references (true: batch "
                             "what auto leaves to the workers, e.g. --augment heavy)")
    args = parser.parse_args()

    import torch

    from datakit import config as cfg
    from datakit.engine.device import autocast as make_autocast

    device = torch.device(args.device)
    base = {"epochs": args.epochs, "patience": None, "train.device": args.device,
            "data.on_device": True if args.on_device == "true" else "auto",
            **({"augment": args.augment} if args.augment else {})}
    config = cfg.resolve_config(CONFIG, base)
    autocast, _ = make_autocast(device, config.train.amp)
    work = Path(tempfile.mkdtemp(prefix="datakit-bench-gpu-"))
    sides: dict[str, Callable[[], list[float]]] = {}
    notes: dict[str, list[str]] = {}
    try:
        prepared = prepare(work, config)

        def run_datakit(name: str, **overrides: Any) -> Callable[[], list[float]]:
            def run() -> list[float]:
                seconds, notes[name] = datakit_epochs(prepared["manifest"], work / "run", {**base, **overrides})
                return seconds
            return run

        bare = bare_batches(prepared, device, config.train.batch_size)
        workers = worker_batches(prepared, config, args.workers, pin=device.type == "cuda")
        sides = {
            "bare loop, no augmentation": lambda: hand_loop(config, prepared, device, autocast, bare),
            "datakit, no augmentation": run_datakit("datakit, no augmentation", augment=[]),
            f"hand loop + {args.workers} workers, augmented": lambda: hand_loop(config, prepared, device, autocast,
                                                                                  workers),
            "datakit, augmented": run_datakit("datakit, augmented"),
            "datakit DataLoader, no augmentation": run_datakit("datakit DataLoader, no augmentation", augment=[],
                                                               **{"data.on_device": False, "data.workers": 0}),
            f"datakit DataLoader, {args.workers} workers, augmented": run_datakit(
                "datakit DataLoader, workers", **{"data.on_device": False, "data.workers": args.workers}),
        }
        times: dict[str, list[float]] = {name: [] for name in sides}
        for round_index in range(args.rounds):
            for name, side in sides.items():
                times[name] += side()[1:]
            print(f"round {round_index + 1}: " + ", ".join(
                f"{name} {statistics.median(t):.4f}" for name, t in times.items()), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median = {name: statistics.median(t) for name, t in times.items()}
    names = list(median)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"\n{where}; torch {torch.__version__}; {config.model.name} on 16 px digits, batch {config.train.batch_size}, "
          f"amp {config.train.amp}; {args.epochs} epochs x {args.rounds} rounds, first epoch of each run left out")
    print(f"{'side':<48} {'s/epoch':>8}")
    for name in names:
        print(f"{name:<48} {median[name]:8.4f}")
    off = median["datakit, no augmentation"] / median["bare loop, no augmentation"]
    on = median["datakit, augmented"] / median[names[2]]
    print(f"no augmentation: datakit / bare loop = {off:.3f} (goal <= 1.1: {'PASS' if off <= 1.1 else 'FAIL'})")
    print(f"augmented: datakit / hand loop + workers = {on:.3f} (goal <= 1.1: {'PASS' if on <= 1.1 else 'FAIL'})")
    for name, lines in notes.items():
        kept = [line for line in lines if "kept on" in line or "DataLoader" in line]
        print(f"{name}: {kept[0] if kept else 'DataLoader'}")


if __name__ == "__main__":
    main()
