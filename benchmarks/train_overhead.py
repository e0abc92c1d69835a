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
import contextlib
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpu_epoch import bare_batches, hand_loop, prepare  # noqa: E402 - the one hand-written loop, shared


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
        prepared = prepare(work, config)
        manifest, pre, labels = prepared["manifest"], prepared["pre"], prepared["labels"]
        cpu = torch.device("cpu")
        batches = bare_batches(prepared, cpu, config.train.batch_size)
        ours: list[float] = []
        theirs: list[float] = []
        for round_index in range(args.rounds):
            ours += datakit_loop(manifest, config, work / "run", args.progress)[1:]
            theirs += hand_loop(config, prepared, cpu, contextlib.nullcontext, batches)[1:]
            print(f"round {round_index + 1}: datakit {statistics.median(ours):.4f}s  "
                  f"hand loop {statistics.median(theirs):.4f}s (medians so far)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = statistics.median(ours) / statistics.median(theirs)
    print(f"model             {config.model.name} filters {config.model.conv.filters} x{config.model.conv.convs_per_block}, "
          f"{pre.height}x{pre.width}x{pre.channels}, batch {config.train.batch_size}, "
          f"{len(labels['train'])} train + {len(labels['val'])} val images")
    print(f"torch threads     {torch.get_num_threads()}; progress display {'on' if args.progress else 'off'}")
    print(f"epoch time        datakit median {statistics.median(ours):.4f}s, hand-written loop median "
          f"{statistics.median(theirs):.4f}s ({len(ours)} epochs each, warm-up epochs excluded)")
    print(f"ratio             {ratio:.3f} (target <= 1.1: {'PASS' if ratio <= 1.1 else 'FAIL'})")


if __name__ == "__main__":
    main()
