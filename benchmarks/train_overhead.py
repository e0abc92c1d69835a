"""Trainer overhead: datakit's epoch time vs a hand-written PyTorch loop, same model, same tensors.

    python benchmarks/train_overhead.py [--epochs 6] [--rounds 3] [--threads 2]

Both train the digits CNN of configs/digits-cnn.yaml (without augmentation, which a loop over
pre-loaded tensors cannot do) on the same normalized train/val tensors with the same optimizer,
schedule, batch size and seed, in this one process, alternating datakit and the hand loop for
``--rounds`` rounds so that load from other processes hits both alike. An epoch is one pass over
train plus one over val; datakit's also includes writing its checkpoints and metrics.csv. The
first epoch of every run is warm-up and left out. Target (issue #3): ratio <= 1.1.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def prepare(work: Path, config):  # noqa: ANN001, ANN201 - benchmark helper
    """Digits manifest plus the exact normalized tensors datakit trains on."""
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
    tensors = {name: (pre.to_tensor(images[name]), torch.tensor(splits.frames[name]["target"].to_numpy()))
               for name in images}
    return work / "digits.manifest", pre, tensors, len(splits.classes)


def hand_loop(config, pre, tensors, classes: int) -> list[float]:  # noqa: ANN001 - benchmark helper
    """What one would write by hand: shuffle, forward, backward, step; then a validation pass."""
    import torch
    from torch import nn

    from datakit.models import build_model

    torch.manual_seed(config.seed)
    model = build_model(config.model, pre.channels, classes, (pre.height, pre.width))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.train.epochs)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.train.label_smoothing)
    (x_train, y_train), (x_val, y_val) = tensors["train"], tensors["val"]
    batch = config.train.batch_size
    times = []
    for _ in range(config.train.epochs):
        started = time.perf_counter()
        model.train()
        total, correct = 0.0, 0
        for index in torch.randperm(len(y_train)).split(batch):
            x, y = x_train[index], y_train[index]
            logits = model(x)
            loss = criterion(logits, y)
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
                logits = model(x)
                val_loss += nn.functional.cross_entropy(logits, y).item() * len(y)
                val_correct += int((logits.argmax(1) == y).sum())
        times.append(time.perf_counter() - started)
    return times


def datakit_loop(manifest: Path, config, run_dir: Path, show_progress: bool) -> list[float]:  # noqa: ANN001
    import datakit

    if run_dir.exists():
        shutil.rmtree(run_dir)
    result = datakit.train(manifest, config, run_dir, show_progress=show_progress)
    return [row["seconds"] for row in result.history]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--progress", action="store_true", help="datakit with its live progress display on")
    args = parser.parse_args()

    import torch

    from datakit import config as cfg

    torch.set_num_threads(args.threads)
    config = cfg.resolve_config(REPO / "configs" / "digits-cnn.yaml", {
        "augment": [], "epochs": args.epochs, "patience": None, "train.threads": args.threads,
        "data.cache": True, "data.workers": 0})
    work = Path(tempfile.mkdtemp(prefix="datakit-bench-overhead-"))
    try:
        manifest, pre, tensors, classes = prepare(work, config)
        ours: list[float] = []
        theirs: list[float] = []
        for round_index in range(args.rounds):
            ours += datakit_loop(manifest, config, work / "run", args.progress)[1:]
            theirs += hand_loop(config, pre, tensors, classes)[1:]
            print(f"round {round_index + 1}: datakit {statistics.median(ours):.4f}s  "
                  f"hand loop {statistics.median(theirs):.4f}s (medians so far)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = statistics.median(ours) / statistics.median(theirs)
    print(f"model             {config.model.name} filters {config.model.conv.filters} x{config.model.conv.convs_per_block}, "
          f"{pre.height}x{pre.width}x{pre.channels}, batch {config.train.batch_size}, "
          f"{len(tensors['train'][1])} train + {len(tensors['val'][1])} val images")
    print(f"torch threads     {torch.get_num_threads()}; progress display {'on' if args.progress else 'off'}")
    print(f"epoch time        datakit median {statistics.median(ours):.4f}s, hand-written loop median "
          f"{statistics.median(theirs):.4f}s ({len(ours)} epochs each, warm-up epochs excluded)")
    print(f"ratio             {ratio:.3f} (target <= 1.1: {'PASS' if ratio <= 1.1 else 'FAIL'})")


if __name__ == "__main__":
    main()
