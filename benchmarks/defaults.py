"""Defaults benchmark: `datakit train MANIFEST -o RUN` with no config, against a tuned sweep, per data set.

    python benchmarks/defaults.py [--sets shapes64,digits8,...] [--trials 12] [--seeds 5]
                                  [--sides default,tuned,shipped]
                                  [--quick] [--output DIR]

For each data set: the held-out test accuracy with nothing set (the data-aware defaults), the test
accuracy of the best of a fixed budget of sweep trials (``--trials``, default 12, the project's own
``datakit.sweep`` over SPACE below, ranked on validation accuracy), the test accuracy of the
project's shipped tuned config for that kind of data where there is one (SHIPPED), and the seconds
each took. The gap is to the better of the sweep and the shipped config.
Nothing is downloaded: the sets are generated, or built from images that scikit-learn and
scikit-image ship inside their packages.

- generated sets (shapes, imbalanced shapes, colour, 20 per class) hold out a test split of
  ``TEST_IMAGES`` (1,000) images, so a 1-point difference is above the noise;
- small real sets (digits, the two-class photo crops) are scored on 5 split seeds (70/15/15) and
  averaged (``--seeds``); the sweep runs on split 0, and its best config (chosen on validation)
  is trained and tested on the other splits, so both columns average the same 5 splits.

Goals (issue 13): defaults within 1 percentage point of tuned on every set, >= 0.97 on the 10-class
digits, each default run under 2 minutes on 2 CPU cores for sets under 2,000 images. ``--quick``
shrinks every set, the seeds and the trials and sets 3 epochs, to prove the script runs; its
numbers mean nothing.
Run the full benchmark on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from measure import cpu_seconds  # noqa: E402

TEST_IMAGES = 1000
# the project's own tuned configs for these kinds of data: the "tuned" column is the better of
# the sweep and this config, trained on the same splits
SHIPPED = {"shapes64": "configs/shapes-classify.yaml", "imbalanced": "configs/shapes-classify.yaml",
           "digits8": "configs/digits-cnn.yaml", "digits32": "configs/digits-cnn.yaml"}
# the tuned side: a fixed search the benchmark gives every set (keys not searched are derived as usual);
# without the sweep's trial of the defaults, so the tuned result is found independently of what it is compared with
SPACE: dict[str, Any] = {
    "sampler": "tpe", "metric": "val_accuracy", "seed": 0, "pruner": "none", "baseline": False,
    "params": {
        "optim.lr": {"type": "float", "low": 3e-4, "high": 1e-2, "log": True},
        "train.batch_size": [16, 32, 64],
        "model.conv.filters": {"choices": [[16, 32, 64], [32, 64, 128], [16, 32, 64, 128]]},
        "augment": {"choices": [[], "light:fixed", "light", "medium:fixed", "medium"]},
        "train.label_smoothing": [0.0, 0.1],
    },
}


# ---------------------------------------------------------------------------------------------
# data sets: each writes class folders under ``folder`` and says how to score it


def _write(folder: Path, label: str, index: int, image: np.ndarray) -> None:
    import cv2

    path = folder / label / f"{label}_{index:05d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image if image.ndim == 2 else image[:, :, ::-1])


def shapes(folder: Path, train_images: int, size: int = 64, imbalance: float = 1.0, seed: int = 0) -> Path:
    import datakit

    return datakit.sample("shapes", folder / "raw", count=train_images + TEST_IMAGES, size=size,
                          imbalance=imbalance, seed=seed, show_progress=False).image_folder


def digits(folder: Path, size: int) -> Path:
    import datakit

    return datakit.sample("digits", folder / "raw", size=size, show_progress=False).image_folder


def photo_crops(folder: Path, per_class: int = 100, side: int = 64, seed: int = 0) -> Path:
    """A real two-class set: random crops (scale and position vary) of scikit-learn's two sample
    photos, a Chinese temple (china.jpg) and a flower (flower.jpg), resized to ``side``."""
    import cv2
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    photos = load_sample_images()
    for name, photo in zip(("temple", "flower"), photos.images):
        h, w = photo.shape[:2]
        for i in range(per_class):
            crop = int(rng.integers(min(h, w) // 5, min(h, w) // 2))
            y, x = int(rng.integers(0, h - crop)), int(rng.integers(0, w - crop))
            image = cv2.resize(np.ascontiguousarray(photo[y:y + crop, x:x + crop]), (side, side),
                               interpolation=cv2.INTER_AREA)
            _write(folder / "images", name, i, image)
    return folder / "images"


def colours(folder: Path, per_class: int, side: int = 32, seed: int = 0) -> Path:
    """RGB images where only the colour tells the class: a blob of red, green or blue, all of the
    same luminance, on noise of that luminance too (grayscale sees three identical classes)."""
    import cv2

    rng = np.random.default_rng(seed)
    hues = {"red": (200, 60, 60), "green": (50, 128, 50), "blue": (90, 90, 255)}
    luminance = {k: 0.299 * r + 0.587 * g + 0.114 * b for k, (r, g, b) in hues.items()}
    target = min(luminance.values())
    for label, rgb in hues.items():
        colour = np.array(rgb, dtype=np.float64) * target / luminance[label]
        for i in range(per_class):
            image = rng.normal(target, 25, (side, side, 1)).repeat(3, axis=2)
            cx, cy = rng.integers(side // 4, 3 * side // 4, 2)
            radius = int(rng.integers(side // 8, side // 4))
            mask = np.zeros((side, side), np.uint8)
            cv2.circle(mask, (int(cx), int(cy)), radius, 1, -1)
            image[mask == 1] = colour + rng.normal(0, 8, (int(mask.sum()), 3))
            _write(folder / "images", label, i, np.clip(image, 0, 255).astype(np.uint8))
    return folder / "images"


# name -> (builder, kind: "generated" (1,000 test images) | "real" (split seeds), overrides for the default run)
def data_sets(quick: bool) -> dict[str, tuple[Callable[[Path], Path], str, dict[str, Any]]]:
    scale = 0.25 if quick else 1.0
    n = lambda count: max(40, int(count * scale))  # noqa: E731
    return {
        "shapes64": (lambda f: shapes(f, n(1600)), "generated", {}),
        "shapes64-resnet18": (lambda f: shapes(f, n(1600)), "generated", {"model.name": "resnet18"}),
        "digits8": (lambda f: digits(f, 8), "real", {}),
        "digits32": (lambda f: digits(f, 32), "real", {}),
        "photos2": (lambda f: photo_crops(f, per_class=int(100 * max(scale, 0.5))), "real", {}),
        "imbalanced": (lambda f: shapes(f, n(1600), imbalance=0.1, seed=3), "generated", {}),
        "colour": (lambda f: colours(f, per_class=n(600) // 3 + TEST_IMAGES // 3 + 1), "generated", {}),
        "few20": (lambda f: shapes(f, 80, seed=5), "generated", {}),
    }


# ---------------------------------------------------------------------------------------------
# running


def _splits(manifest: Path, kind: str, seed: int) -> None:
    """A fresh split by ``seed``: every earlier split is cleared first, since ``datakit.split`` keeps
    the split an image already has (stable when images are added) and would keep split 0 for all."""
    import pandas as pd

    import datakit
    from datakit.manifest import load_manifest, save_manifest

    unsplit = load_manifest(manifest)
    unsplit.images = unsplit.images.assign(split=pd.Series(pd.NA, index=unsplit.images.index, dtype="string"))
    save_manifest(unsplit, manifest)
    if kind == "real":
        datakit.split(manifest, ratios=[0.7, 0.15, 0.15], seed=seed)
        return
    count = len(load_manifest(manifest).images)
    test = min(TEST_IMAGES / count, 0.95)  # at least TEST_IMAGES held out where the set allows
    rest = 1 - test
    datakit.split(manifest, ratios=[rest * 0.8, rest * 0.2, test], seed=seed)


def _timed(work: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), cpu_seconds()
    out = work()
    return out, time.perf_counter() - wall, cpu_seconds() - cpu


def _load_results(path: Path) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Rows already measured (set, side, seed) -> row: a re-run with the same --output goes on
    where the last one stopped instead of measuring again."""
    import json

    done: dict[tuple[str, str, int], dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                done[(row["set"], row["side"], row["seed"])] = row
    return done


def _append(path: Path, row: dict[str, Any]) -> None:
    import json

    with path.open("a", encoding="utf-8") as f:  # one line per measurement, flushed: a crash loses one run
        f.write(json.dumps(row) + "\n")


def prepare_set(name: str, build: Callable[[Path], Path], work: Path) -> Path:
    import datakit

    folder = work / name
    manifest = folder / "manifest"
    if not (folder / "built").is_file():
        images_folder = build(folder)
        datakit.ingest(images_folder, manifest, show_progress=False)
        (folder / "built").write_text("ok")
    return manifest


def measure(name: str, side: str, seed: int, kind: str, overrides: dict[str, Any], manifest: Path,
            trials: int, tuned_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """One measurement on split ``seed``: the default run ("default"), the tuned sweep ("tuned"), or
    with ``tuned_params`` (the sweep's best parameters from split 0) one run of that tuned config."""
    import datakit
    import shutil

    folder = manifest.parent
    _splits(manifest, kind, seed)
    out = folder / f"{side}-{seed}"
    shutil.rmtree(out, ignore_errors=True)  # a half-done run of an interrupted benchmark starts again
    if side in ("default", "shipped") or tuned_params is not None:
        settings = {**overrides, **(tuned_params or {})}
        config = REPO / SHIPPED[name] if side == "shipped" else None
        result, wall, cpu = _timed(lambda: datakit.train(manifest, config, output=out, show_progress=False,
                                                         **settings))
        row = {"set": name, "side": side, "seed": seed, "accuracy": result.test_accuracy, "wall_s": wall,
               "cpu_s": cpu, "epochs": result.epochs_run, "warnings": [w["kind"] for w in result.warnings],
               "derived": {d["key"]: d["value"] for d in result.derived}}
        row["warnings"] = [w["kind"] + (f" (gone from epoch {w['gone_from']})" if w.get("gone_from") else "")
                           for w in result.warnings]
        return row if tuned_params is None else {**row, "params": tuned_params, "params_from": "split 0's sweep"}
    swept, wall, cpu = _timed(lambda: datakit.sweep(manifest, SPACE, out, trials=trials, show_progress=False,
                                                    **overrides))
    best = swept.best or {}
    return {"set": name, "side": side, "seed": seed, "accuracy": best.get("test_accuracy"), "wall_s": wall,
            "cpu_s": cpu, "trials": trials, "params": best.get("params"),
            "val_accuracy": best.get("val_accuracy"), "epochs": best.get("epochs")}


def summarize(name: str, rows: list[dict[str, Any]], manifest: Path) -> dict[str, Any]:
    from datakit.manifest import load_manifest

    images = load_manifest(manifest).images

    def mean(side: str, key: str) -> float | None:
        values = [r[key] for r in rows if r["side"] == side and r.get(key) is not None]
        return statistics.fmean(values) if values else None

    return {"set": name, "images": len(images), "classes": images["label"].nunique(),
            "test": int((images["split"] == "test").sum()),
            "seeds": f"{sum(r['side'] == 'default' for r in rows)}/{sum(r['side'] == 'tuned' for r in rows)}",
            "default": mean("default", "accuracy"), "sweep": mean("tuned", "accuracy"),
            "shipped": mean("shipped", "accuracy"),
            "tuned": max((v for v in (mean("tuned", "accuracy"), mean("shipped", "accuracy")) if v is not None),
                         default=None),
            "default_s": mean("default", "wall_s"), "default_cpu": mean("default", "cpu_s"),
            "tuned_s": next((r["wall_s"] for r in rows if r["side"] == "tuned" and r["seed"] == 0), None),
            "tuned_params": next((r.get("params") for r in rows if r["side"] == "tuned" and r["seed"] == 0), None),
            "epochs": mean("default", "epochs"),
            "warnings": sorted({k for r in rows if r["side"] == "default" for k in r.get("warnings", [])})}


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def table(summaries: list[dict[str, Any]], trials: int) -> str:
    lines = [f"| set | images | classes | test images | seeds (default/sweep) | default acc | sweep acc ({trials} trials) "
             f"| shipped config acc | gap to the best (pp) | default wall s | default CPU s | epochs | sweep wall s "
             f"| not learning (default) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in summaries:
        gap = None if r["default"] is None or r["tuned"] is None else 100 * (r["tuned"] - r["default"])
        lines.append(f"| {r['set']} | {r['images']} | {r['classes']} | {r['test']} | {r['seeds']} | "
                     f"{_fmt(r['default'], '.4f')} | {_fmt(r['sweep'], '.4f')} | {_fmt(r['shipped'], '.4f')} | "
                     f"{_fmt(gap, '+.1f')} | {_fmt(r['default_s'], '.0f')} | {_fmt(r['default_cpu'], '.0f')} | "
                     f"{_fmt(r['epochs'], '.0f')} | {_fmt(r['tuned_s'], '.0f')} | {', '.join(r['warnings']) or '-'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=None, help="comma-separated subset of the data sets")
    parser.add_argument("--trials", type=int, default=12, help="sweep trials for the tuned result")
    parser.add_argument("--seeds", type=int, default=5, help="split seeds for the small real sets")
    parser.add_argument("--sides", default="default,tuned,shipped",
                        help="what to measure: default (no config), tuned (the sweep), shipped (the project's "
                             "tuned config for that kind of data, where SHIPPED has one); every set's defaults "
                             "are measured before any sweep starts")
    parser.add_argument("--quick", action="store_true", help="small sets, 1 seed, 2 trials: proves it runs")
    parser.add_argument("--output", type=Path, default=None,
                        help="work folder; results.jsonl there keeps every measurement, and a re-run with the "
                             "same folder skips what it holds")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.seeds = min(args.trials, 2), 1
    sets = data_sets(args.quick)
    if args.quick:  # 3 epochs everywhere: proves every step runs, measures nothing
        sets = {k: (b, kind, {**o, "train.epochs": 3}) for k, (b, kind, o) in sets.items()}
    chosen = args.sets.split(",") if args.sets else list(sets)
    unknown = [s for s in chosen if s not in sets]
    if unknown:
        parser.error(f"unknown set(s) {unknown}; known: {', '.join(sets)}")
    sides = [s for s in ("default", "tuned", "shipped") if s in args.sides.split(",")]
    work = args.output or Path(tempfile.mkdtemp(prefix="datakit-bench-defaults-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "results.jsonl"
    done = _load_results(log)
    print(f"work folder {work}; measurements in {log}", flush=True)
    manifests = {name: prepare_set(name, sets[name][0], work) for name in chosen}
    for side in sides:
        for name in chosen:
            _, kind, overrides = sets[name]
            for seed in range(args.seeds if kind == "real" else 1):
                if (name, side, seed) in done or (side == "shipped" and name not in SHIPPED):
                    continue
                # the tuned side sweeps on split 0 only; the other splits train the config it found
                tuned_params = done[(name, "tuned", 0)].get("params") if side == "tuned" and seed else None
                if side == "tuned" and seed and not tuned_params:
                    continue  # split 0's sweep found nothing to carry over
                row = measure(name, side, seed, kind, overrides, manifests[name], args.trials, tuned_params)
                row["load_average"] = os.getloadavg()[0]
                _append(log, row)
                done[(name, side, seed)] = row
                print(f"{name} {side} seed {seed}: accuracy {_fmt(row['accuracy'], '.4f')}, "
                      f"{row['wall_s']:.0f} s wall, {row['cpu_s']:.0f} s CPU", flush=True)
    summaries = [summarize(name, [r for k, r in done.items() if k[0] == name], manifests[name]) for name in chosen]
    print(table(summaries, args.trials))
    for summary in summaries:
        if summary["tuned_params"]:
            print(f"{summary['set']}: tuned config {summary['tuned_params']}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end; work folder {work}")


if __name__ == "__main__":
    main()
