"""`datakit augment MANIFEST -o OUT`: new image files and a manifest with full lineage.

The output is a complete, self-contained data set: ``OUT/manifest.json`` and its tables, the
parent images under ``OUT/images/`` (hard links where the file system allows, else copies, so the
source is never touched) and the derived images under ``OUT/images/augmented/``. Validation and
test images are carried unchanged; only the chosen split is augmented.

Every derived image row records its parent (id and content hash), the pipeline (hash; the
serialized form is stored once in the header under ``pipelines``), the seed that regenerates it,
albumentations' applied parameters, and the fate of each parent object (kept, clipped, dropped
with the reason). ``datakit augment --verify OUT`` (verify.py) regenerates every derived image
from this and compares bytes.

Determinism: each derived image gets its own seed, derived from (run seed, parent id, copy
number), and its own output path, so the files do not depend on ``--workers``; results are
gathered in job order, so the manifest does not either.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import numbers
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pandas as pd

from datakit.atomic import write_json
from datakit.augmentation import render as rendering
from datakit.augmentation.balancing import Row
from datakit.augmentation.specs import Pipeline
from datakit.augmentation.targets import SEEDING
from datakit.errors import DatakitError
from datakit.manifest import Manifest
from datakit.manifest_header import check_output_outside
from datakit.parallel import forking_workers, worker_signals

IMAGES_DIR = "images"
DERIVED_DIR = "augmented"
SPLIT_CHOICES = ("train", "val", "test", "all")
# more copies of one image than this is a typo, not a plan (100000 planned 1 GB of jobs in memory)
MAX_COPIES = 1000


@dataclass
class AugmentResult:
    output: Path
    pipeline: str
    """Hash of the pipeline (key of its serialized form in the header)."""
    source: str
    task: str
    split: str
    sources: int
    derived: int
    carried: int
    mode: str
    """copies, balance or target."""
    before: dict[str, int]
    after: dict[str, int]
    target: int | None
    overshoot: dict[str, int]
    shortfall: dict[str, int]
    objects: dict[str, int]
    """Count of parent objects per fate in derived images: kept, clipped, dropped."""
    dropped_reasons: dict[str, int]
    counted: str
    """images (classification) or objects (object tasks): what before/after count."""
    notes: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    """Source images not augmented: {id, path, reason} (a file changed since ingest)."""
    seconds: float = 0.0
    preview: Any = None

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["output"] = str(self.output)
        data["preview"] = self.preview.as_dict() if self.preview is not None else None
        return data


# ---------------------------------------------------------------------------------------------
# seeds, ids, paths: functions of the job alone


def derived_seed(seed: int, parent_id: str, copy: int) -> int:
    digest = hashlib.sha256(f"{seed}|{parent_id}|{copy}".encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little")


def derived_id(parent_id: str, pipeline_hash: str, seed: int, copy: int) -> str:
    return hashlib.sha256(f"{parent_id}|{pipeline_hash}|{seed}|{copy}".encode("utf-8")).hexdigest()[:16]


def derived_path(parent_path: str, ident: str, extension: str) -> str:
    # plain string work: PurePosixPath cost ~50 us an image in the parent, which the workers wait on
    folder, _, name = parent_path.replace("\\", "/").rpartition("/")
    dot = name.rfind(".")
    stem = name[:dot] if 0 < dot < len(name) - 1 else name  # PurePosixPath.stem's rule
    return f"{DERIVED_DIR}/{folder + '/' if folder else ''}{stem}__{ident[:10]}{extension}"


# ---------------------------------------------------------------------------------------------
# workers


_WORKER: dict[str, Any] = {}


def _init_worker(serialized: dict[str, Any], encoding: dict[str, int], root: str) -> None:
    import cv2

    from datakit.augmentation.specs import from_header

    # parallelism comes from processes, not OpenCV threads
    cv2.setNumThreads(1)
    _WORKER.update(compose=from_header({"pipeline": serialized}), encoding=encoding, root=root)


def _make(task: tuple[rendering.Job, str, str | None]) -> dict[str, Any]:
    """Render one derived image, write its files (folders exist: the parent made them) and return a
    small row; the pixels never travel back to the parent."""
    job, out_path, mask_path = task
    try:
        done = rendering.render(_WORKER["compose"], job, _WORKER["encoding"])
    except rendering.ParentChanged:
        # one edited file must not stop the run, nor get a derived image whose lineage lies
        return {"skipped": rendering.ParentChanged.REASON, "labels": []}
    root = _WORKER["root"]
    size, mtime_ns = _write(os.path.join(root, out_path), done.image)
    if mask_path is not None and done.semantic_mask is not None:
        _write(os.path.join(root, mask_path), done.semantic_mask)
    return _summary(done, size, mtime_ns)


def _write(path: str, data: bytes) -> tuple[int, int]:
    """Write ``data`` to a new file; (size, mtime_ns) from the open file, without a second lookup."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        stat = os.fstat(fd)
    finally:
        os.close(fd)
    return stat.st_size, stat.st_mtime_ns


def _summary(done: rendering.Rendered, size: int, mtime_ns: int) -> dict[str, Any]:
    row = {
        "sha256": done.sha256, "file_size": size, "mtime_ns": mtime_ns,
        "width": done.width, "height": done.height, "channels": done.channels,
        "boxes": [], "kept": [], "labels": [], "segmentations": [], "areas": [], "objects": done.objects,
        # JSON made here, in the worker, so the parent does not serialize every image's parameters
        "applied": json.dumps(done.applied) if done.applied is not None else None,
        "parent_sha256": done.parent_sha256,
    }
    if not len(done.kept):
        return row  # an image without objects (classification): nothing more to say
    from datakit.geometry import mask_to_rle

    segmentations = []
    if done.masks is not None:
        for mask, has in zip(done.masks, done.has_segmentation):
            segmentations.append(json.dumps(mask_to_rle(mask)) if has else None)
    areas = ([float(m.sum()) for m in done.masks] if done.masks is not None
             else [float(b[2] * b[3]) for b in done.boxes])
    row.update(boxes=done.boxes.tolist(), kept=done.kept.tolist(), labels=done.labels.tolist(),
               segmentations=segmentations, areas=areas)
    return row


def _pool_init(init: Callable[..., None], *args: Any) -> None:
    # Ctrl-C and SIGTERM are the parent's to handle: it terminates the pool (datakit.parallel)
    worker_signals()
    init(*args)


def run_jobs(tasks: Sequence[Any], worker: Callable[[Any], Any], initargs: tuple, workers: int,
             on_done: Callable[[], None] | None = None, init: Callable[..., None] | None = None,
             meanwhile: Callable[[], None] | None = None) -> list[Any]:
    """``worker`` over ``tasks`` in a process pool (or here for one worker); results in task order.

    ``meanwhile`` is the caller's own work, done while the workers run (here, before the tasks).
    """
    import cv2

    init = init or _init_worker
    if not tasks:
        if meanwhile:
            meanwhile()
        return []
    if workers <= 1:
        previous = cv2.getNumThreads()
        try:
            if meanwhile:
                meanwhile()
            init(*initargs)
            results = []
            for task in tasks:
                results.append(worker(task))
                if on_done:
                    on_done()
            return results
        finally:
            cv2.setNumThreads(previous)
    ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    chunksize = max(1, min(16, len(tasks) // (workers * 8) or 1))
    with forking_workers():
        pool = ctx.Pool(workers, initializer=_pool_init, initargs=(init, *initargs))
    try:
        results = []
        running = pool.imap(worker, tasks, chunksize=chunksize)
        if meanwhile:
            meanwhile()
        for result in running:
            results.append(result)
            if on_done:
                on_done()
        pool.close()
        pool.join()
        return results
    except BaseException:
        # also when the interrupt comes during the join above (see datakit.parallel)
        pool.terminate()
        pool.join()
        raise


# ---------------------------------------------------------------------------------------------
# planning


def choose_task(manifest: Manifest, task: str | None) -> str:
    from datakit.augmentation.presets import PRESET_TASKS

    from datakit.tasks import canonical_task

    if task is not None:
        # the short names train and predict take (segment, instance, detect, classify) too
        name = canonical_task(task)
        if name not in PRESET_TASKS:
            raise DatakitError(f"augment has no presets for task {task!r}; known: {', '.join(PRESET_TASKS)}")
        return name
    for preferred in ("instance_segmentation", "detection", "semantic_segmentation", "classification"):
        if preferred in manifest.tasks:
            return preferred
    return "classification"


def select_sources(manifest: Manifest, split: str) -> pd.DataFrame:
    if split not in SPLIT_CHOICES:
        raise DatakitError(f"unknown split {split!r}; choose one of: {', '.join(SPLIT_CHOICES)}")
    if split != "all" and manifest.images["split"].isna().all():
        raise DatakitError(f"the manifest has no splits, so there is no '{split}' split to augment: run "
                           "`datakit split` first, or pass --split all to augment every image")
    usable = split_images(manifest, split)
    usable = usable[usable["parent_id"].isna()]  # originals: derived images are not augmented again
    if usable.empty:
        raise DatakitError(f"no usable images in split '{split}' to augment")
    return usable.sort_values("id", kind="stable")


def split_images(manifest: Manifest, split: str) -> pd.DataFrame:
    """Every usable image of the split, derived ones included: what a class already has. Balancing
    an augmented manifest counted its originals only, so it printed 'after' counts the files did not
    have and unbalanced a balanced set."""
    images = manifest.images
    usable = images[images["status"] == "ok"]
    return usable if split == "all" else usable[usable["split"] == split]


class Planner:
    """Hands out (parent row, copy number) pairs; copy numbers count up per parent across rounds,
    after the copies the manifest already holds (the same number again made the same path)."""

    def __init__(self, manifest: Manifest | None = None) -> None:
        self.copies: Counter[str] = Counter()
        if manifest is not None and "parent_id" in manifest.images.columns:
            self.copies.update(manifest.images["parent_id"].dropna().astype(str).tolist())

    def take(self, parent_id: str) -> int:
        copy = self.copies[parent_id]
        self.copies[parent_id] += 1
        return copy


def _objects_by_image(manifest: Manifest) -> dict[str, pd.DataFrame]:
    ann = manifest.annotations
    if ann.empty:
        return {}
    return {str(k): g for k, g in ann.groupby("image_id", sort=False)}


# ---------------------------------------------------------------------------------------------
# the writer


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _carry_files(manifest: Manifest, out_root: Path) -> None:
    """The source's images and mask files under OUT/images, at their relative paths."""
    root = manifest.root()
    paths = set(manifest.images["path"].dropna().tolist()) | set(manifest.images["semantic_mask"].dropna().tolist())
    ann = manifest.annotations
    for text in ann.loc[ann["segmentation_kind"] == "mask_file", "segmentation"].dropna().tolist():
        try:
            paths.add(json.loads(text)["path"])
        except (ValueError, KeyError, TypeError):
            continue
    for relative in sorted(paths):
        src = root / relative
        if src.is_file():
            _link_or_copy(src, out_root / relative)


def _versions() -> dict[str, str]:
    import albumentations
    import cv2
    import numpy

    return {"albumentations": albumentations.__version__, "opencv": cv2.__version__, "numpy": numpy.__version__}


def _jobs_for(rows: Iterable[tuple[Row, int]], manifest: Manifest, objects: dict[str, pd.DataFrame],
              pipeline_hash: str, seed: int, start: int) -> list[tuple[rendering.Job, str, str | None, str, int]]:
    root = manifest.root()
    ids = manifest.category_ids()
    out = []
    for offset, (row, copy) in enumerate(rows):
        parent_id = str(row["id"])
        fmt, extension = rendering.FORMATS.get(str(row["format"]).upper(), ("PNG", ".png"))
        job_seed = derived_seed(seed, parent_id, copy)
        ident = derived_id(parent_id, pipeline_hash, seed, copy)
        objs = []
        group = objects.get(parent_id)
        if group is not None:
            for a in group.itertuples(index=False):
                if pd.isna(a.bbox_x) or pd.isna(a.bbox_w):
                    continue
                segmentation = None
                if pd.notna(a.segmentation_kind) and pd.notna(a.segmentation):
                    segmentation = json.loads(a.segmentation)
                objs.append(rendering.Obj(id=str(a.id), label=ids[str(a.category)],
                                          box=(float(a.bbox_x), float(a.bbox_y), float(a.bbox_w), float(a.bbox_h)),
                                          kind=a.segmentation_kind if segmentation is not None else None,
                                          segmentation=segmentation))
        semantic = str(root / row["semantic_mask"]) if pd.notna(row["semantic_mask"]) else None
        channels = int(row["channels"]) if pd.notna(row["channels"]) else 3
        job = rendering.Job(index=start + offset, parent_id=parent_id, parent_path=str(root / row["path"]),
                            channels=1 if channels == 1 else 3, seed=job_seed, out_format=fmt, objects=objs,
                            semantic_mask=semantic, mask_root=str(root),
                            parent_sha256=str(row["sha256"]) if pd.notna(row["sha256"]) else None)
        path = derived_path(str(row["path"]), ident, extension)
        mask_path = derived_path(str(row["semantic_mask"]), ident, ".png") if semantic else None
        out.append((job, path, mask_path, ident, copy))
    return out


def augment_manifest(
    manifest_path: str | os.PathLike[str] | Manifest,
    output: str | os.PathLike[str],
    pipeline: Pipeline,
    task: str,
    copies: int | None = None,
    split: str = "train",
    balance: bool = False,
    target: int | None = None,
    seed: int = 0,
    workers: int = 1,
    show_progress: bool = True,
    table_format: str = "parquet",
) -> AugmentResult:
    from datakit.manifest import load_manifest

    started = time.perf_counter()
    for name, value in (("--copies", copies), ("--target", target), ("--seed", seed), ("--workers", workers)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
            raise DatakitError(f"{name} must be a whole number, got {value!r}")
    if not isinstance(balance, bool):
        raise DatakitError(f"--balance must be true or false, got {balance!r}")
    if copies is not None and (balance or target is not None):
        raise DatakitError("--copies and --balance/--target do not go together: balancing decides how many copies "
                           "each class needs")
    if copies is not None and copies < 1:
        raise DatakitError(f"--copies must be at least 1, got {copies}")
    if copies is not None and copies > MAX_COPIES:
        raise DatakitError(f"--copies {copies} is more than {MAX_COPIES} derived images per source image; "
                           "use --target N to reach a count per class")
    if target is not None and target < 1:
        raise DatakitError(f"--target must be at least 1, got {target}")
    if workers < 1:
        raise DatakitError(f"--workers must be at least 1, got {workers}")
    manifest = manifest_path if isinstance(manifest_path, Manifest) else load_manifest(manifest_path)
    out = Path(output)
    check_output_outside(out, {"input manifest's folder": manifest.location, "input's image folder": manifest.root()})
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatakitError(f"{out}: exists and is not an empty folder; choose a new output folder")
    sources = select_sources(manifest, split)
    created = not out.exists()
    try:
        return _augment(manifest, out, sources, pipeline, task, copies, split, balance, target, seed, workers,
                        show_progress, table_format, started)
    except BaseException:
        # OUT was new or empty: remove what this run wrote, so a failed run leaves nothing half-made
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for child in out.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise


def _augment(manifest: Manifest, out: Path, sources: pd.DataFrame, pipeline: Pipeline, task: str,
             copies: int | None, split: str, balance: bool, target: int | None, seed: int, workers: int,
             show_progress: bool, table_format: str, started: float) -> AugmentResult:
    from datakit.augmentation import balancing
    from datakit.console import progress_bar
    from datakit.manifest import save_manifest

    objects = _objects_by_image(manifest)
    serialized = pipeline.serialized()
    pipeline_hash = pipeline.hash()
    out_root = out / IMAGES_DIR
    out_root.mkdir(parents=True, exist_ok=True)
    encoding = dict(rendering.ENCODING)
    initargs = (serialized, encoding, str(out_root))
    counted = "images" if task == "classification" else "objects"
    planner = Planner(manifest)
    notes: list[str] = []
    all_jobs: list[tuple[rendering.Job, str, str | None, str, int]] = []
    results: list[dict[str, Any]] = []

    carried: list[bool] = []

    def carry() -> None:
        # the parent's one long job, done while the workers render (once, whatever the rounds)
        if not carried:
            _carry_files(manifest, out_root)
            carried.append(True)

    def run(rows: list[tuple[Row, int]], label: str) -> list[dict[str, Any]]:
        jobs = _jobs_for(rows, manifest, objects, pipeline_hash, seed, len(all_jobs))
        all_jobs.extend(jobs)
        # every output folder made once here, not checked per image in the workers
        for folder in sorted({os.path.dirname(p) for _, path, mask, _, _ in jobs for p in (path, mask) if p}):
            (out_root / folder).mkdir(parents=True, exist_ok=True)
        with progress_bar(label, len(jobs), show_progress) as advance:
            done = run_jobs([(j, p, m) for j, p, m, _, _ in jobs], _make, initargs, workers, advance,
                            meanwhile=carry)
        results.extend(done)
        return done

    if balance or target is not None:
        mode = "target" if target is not None else "balance"
        counts_fn = (balancing.image_counts if counted == "images" else balancing.object_counts)
        before = counts_fn(split_images(manifest, split), manifest)
        goal = target if target is not None else max(before.values(), default=0)
        if counted == "images":
            plan = balancing.plan_images(sources, before, goal, planner)
            done = run(plan, "Augmenting")
            after = dict(before)
            for (row, _), made in zip(plan, done):
                if "skipped" not in made:
                    after[str(row["label"])] += 1
            notes += [f"class '{name}' has no image in the augmented split ({split}) to derive from: it stays at 0, "
                      f"{goal} short of the target (give it images there, or augment another split)"
                      for name, n in sorted(before.items()) if n == 0 and goal > 0]
        else:
            after = dict(before)
            for round_number in range(1, balancing.MAX_ROUNDS + 1):
                plan = balancing.plan_objects(sources, objects, after, goal, planner, manifest)
                if not plan:
                    break
                done = run(plan, f"Augmenting (round {round_number})")
                gained = balancing.kept_counts(done, manifest)
                for name, n in gained.items():
                    after[name] = after.get(name, 0) + n
            notes += balancing.object_notes(after, goal)
        for name, n in before.items():
            if n > goal:
                notes.append(f"class '{name}' already has {n} {counted} > target {goal}; left as it is "
                             "(augment never removes images)")
    else:
        mode = "copies"
        copies = copies or 1
        plan = [(row, planner.take(str(row["id"]))) for row in sources.to_dict("records") for _ in range(copies)]
        in_split = split_images(manifest, split)
        before = (balancing.image_counts(in_split, manifest, require=False) if counted == "images"
                  else balancing.object_counts(in_split, manifest, require=False))
        run(plan, "Augmenting")
        after = dict(before)
        if counted == "images":
            for (row, _), done in zip(plan, results):
                if pd.notna(row["label"]) and "skipped" not in done:
                    after[str(row["label"])] = after.get(str(row["label"]), 0) + 1
        else:
            for name, n in balancing.kept_counts(results, manifest).items():
                after[name] = after.get(name, 0) + n
        goal = None

    skipped = _skipped_parents(all_jobs, results, manifest)
    if skipped and len(skipped) == len({job.parent_id for job, *_ in all_jobs}):
        raise DatakitError(f"augment: every source image ({len(skipped)}) {rendering.ParentChanged.REASON} "
                           f"(e.g. {skipped[0]['path']}): nothing was augmented")
    rows, annotations, fates, reasons = _derived_tables(all_jobs, results, manifest, objects, pipeline, pipeline_hash)
    paths_taken = set(manifest.images["path"].dropna().tolist())
    clash = [r["path"] for r in rows if r["path"] in paths_taken]
    if clash:
        raise DatakitError(f"derived image path {clash[0]!r} is already in the manifest; augment into a new folder "
                           "from the original manifest")
    carry()
    images = pd.concat([manifest.images, pd.DataFrame(rows)], ignore_index=True) if rows else manifest.images.copy()
    ann = (pd.concat([manifest.annotations, pd.DataFrame(annotations)], ignore_index=True) if annotations
           else manifest.annotations.copy())
    pipelines = dict(manifest.pipelines)
    pipelines[pipeline_hash] = {"pipeline": serialized, "source": pipeline.source, "encoding": encoding,
                                "seeding": SEEDING, **_versions()}
    overshoot = {k: after[k] - goal for k in after if goal is not None and before.get(k, 0) <= goal and after[k] > goal}
    shortfall = {k: goal - after[k] for k in after if goal is not None and after[k] < goal}
    config = {"pipeline": pipeline_hash, "source": pipeline.source, "task": task, "split": split, "seed": seed,
              "copies": copies, "balance": balance, "target": target, "workers": workers,
              "from": str(manifest.location)}
    extra = dict(manifest.extra)
    extra.setdefault("augment_runs", [])
    extra["augment_runs"] = [*extra["augment_runs"], config]
    result_manifest = Manifest(images=images, annotations=ann, categories=manifest.categories, tasks=manifest.tasks,
                               image_root=IMAGES_DIR, source={**manifest.source, "augmented_from": str(manifest.location)},
                               extra=extra, pipelines=pipelines)
    save_manifest(result_manifest, out, table_format=table_format)
    write_json(out / "augment.json", config)
    return AugmentResult(
        output=out, pipeline=pipeline_hash, source=pipeline.source, task=task, split=split,
        sources=len(sources), derived=len(rows), carried=len(manifest.images), mode=mode,
        before=dict(sorted(before.items())), after=dict(sorted(after.items())), target=goal,
        overshoot=overshoot, shortfall=shortfall, objects=fates, dropped_reasons=reasons, counted=counted,
        notes=notes, skipped=skipped, seconds=round(time.perf_counter() - started, 3),
    )


def _skipped_parents(jobs: list[tuple[rendering.Job, str, str | None, str, int]], results: list[dict[str, Any]],
                     manifest: Manifest) -> list[dict[str, str]]:
    """Each source image whose jobs were skipped, once, with the reason."""
    paths = dict(zip(manifest.images["id"].astype(str), manifest.images["path"].astype(str)))
    skipped: dict[str, dict[str, str]] = {}
    for (job, *_), done in zip(jobs, results):
        if "skipped" in done and job.parent_id not in skipped:
            skipped[job.parent_id] = {"id": job.parent_id, "path": paths[job.parent_id], "reason": done["skipped"]}
    return list(skipped.values())


def _derived_tables(jobs: list[tuple[rendering.Job, str, str | None, str, int]], results: list[dict[str, Any]],
                    manifest: Manifest, objects: dict[str, pd.DataFrame], pipeline: Pipeline,
                    pipeline_hash: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, int], dict[str, int]]:
    # one lookup table, not a DataFrame .loc per derived image (that alone cost ~1 ms an image)
    parents = manifest.images.set_index("id")[["label", "split"]].to_dict("index")
    names = {int(c["id"]): c["name"] for c in manifest.categories}
    rows: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    fates: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for (job, path, mask_path, ident, _copy), done in zip(jobs, results):
        if "skipped" in done:
            continue
        parent = parents[job.parent_id]
        group = objects.get(job.parent_id)
        parent_objects = [o for o in job.objects]
        parent_rows = {str(a.id): a for a in group.itertuples(index=False)} if group is not None else {}
        fate_list = []
        for obj, fate in zip(parent_objects, done["objects"]):
            fates[fate["status"]] += 1
            if fate["status"] == "dropped":
                reasons[fate["reason"]] += 1
            entry = {"annotation": obj.id, "category": names.get(obj.label), "status": fate["status"]}
            if "reason" in fate:
                entry["reason"] = fate["reason"]
            if "output" in fate:
                entry["id"] = f"{ident}:{fate['output']}"
            fate_list.append(entry)
        for position, (index, box) in enumerate(zip(done["kept"], done["boxes"])):
            obj = parent_objects[index]
            source = parent_rows[obj.id]
            segmentation = done["segmentations"][position] if done["segmentations"] else None
            annotations.append({
                "id": f"{ident}:{position}", "image_id": ident, "category": names[obj.label],
                "bbox_x": box[0], "bbox_y": box[1], "bbox_w": box[2], "bbox_h": box[3],
                "area": done["areas"][position], "iscrowd": source.iscrowd,
                "segmentation_kind": "rle" if segmentation else None, "segmentation": segmentation,
                "attributes": source.attributes,
            })
        rows.append({
            "id": ident, "path": path, "sha256": done["sha256"], "file_size": done["file_size"],
            "mtime_ns": done["mtime_ns"], "format": job.out_format, "width": done["width"], "height": done["height"],
            "orientation": pd.NA, "channels": done["channels"], "mode": "L" if done["channels"] == 1 else "RGB",
            "bit_depth": 8, "label": parent["label"], "split": parent["split"], "status": "ok", "reason": pd.NA,
            "parent_id": job.parent_id, "transform": pipeline.source, "semantic_mask": mask_path,
            "source_id": pd.NA, "parent_sha256": done["parent_sha256"], "pipeline": pipeline_hash, "seed": job.seed,
            "applied": done["applied"],
            "objects": json.dumps(fate_list),
        })
    return rows, annotations, dict(fates), dict(reasons)
