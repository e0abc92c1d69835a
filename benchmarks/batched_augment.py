"""The batched augmentation of a preset against albumentations one image at a time, on this machine.

    python benchmarks/batched_augment.py [--device cpu] [--batch 64] [--rounds 10] [--threads 2]

For each preset (light, medium, heavy) and two image kinds (16 px grey, 64 px RGB): milliseconds per
batch for ``datakit.augmentation.batched`` (parameters drawn on the CPU, applied to the whole batch on
``--device``) and for the albumentations pipeline it translates, applied image by image on the CPU
(what one DataLoader worker does), and the number of torch operations that compute or copy per batch
(each is a kernel launch on a GPU, where launches rather than arithmetic set the cost of small images).
On a GPU the batched time is synchronized; the albumentations time is always one CPU core's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# torch operations that only describe memory (no kernel on a GPU)
METADATA_OPS = {"aten::view", "aten::as_strided", "aten::empty", "aten::empty_strided", "aten::resize_",
                "aten::as_strided_", "aten::unsqueeze", "aten::expand", "aten::permute", "aten::select",
                "aten::slice", "aten::reshape", "aten::unbind", "aten::t", "aten::transpose", "aten::alias",
                "aten::lift_fresh", "aten::detach", "aten::_reshape_alias"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the batched side on the CPU")
    args = parser.parse_args()

    import numpy as np
    import torch
    from torch.profiler import ProfilerActivity, profile

    from datakit.augmentation.batched import batched_equivalent
    from datakit.online_augment import build_transform

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    def synced() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    print(f"{args.batch} images per batch, {args.rounds} rounds; batched on {device}, albumentations on one CPU core")
    print(f"{'preset':8} {'images':14} {'batched ms':>11} {'albumentations ms':>18} {'ratio':>6} {'torch ops':>10}")
    for preset in ("light", "medium", "heavy"):
        for side, channels in ((16, 1), (64, 3)):
            pipeline = build_transform(preset, seed=0)
            augment, why = batched_equivalent(pipeline)
            if augment is None:
                print(f"{preset:8} no batched equivalent: {why}")
                continue
            images = np.random.default_rng(0).integers(0, 256, (args.batch, side, side, channels), dtype=np.uint8)
            batch = torch.as_tensor(images).permute(0, 3, 1, 2).float().to(device)
            rng = np.random.default_rng(0)
            augment(batch, rng)  # warm-up: kernels, tables, the OpenCV probe
            start = synced()
            for _ in range(args.rounds):
                augment(batch, rng)
            batched = (synced() - start) / args.rounds
            start = time.perf_counter()
            for _ in range(max(1, args.rounds // 3)):
                for image in images:
                    pipeline(image=image)
            per_image = (time.perf_counter() - start) / max(1, args.rounds // 3)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                augment(batch, rng)
            ops = sum(1 for e in prof.events() if e.name.startswith("aten::") and not e.cpu_children
                      and e.name not in METADATA_OPS)
            kind = f"{side} px {'grey' if channels == 1 else 'RGB'}"
            print(f"{preset:8} {kind:14} {batched * 1000:11.1f} {per_image * 1000:18.1f} "
                  f"{batched / per_image:6.2f} {ops:10d}")


if __name__ == "__main__":
    main()
