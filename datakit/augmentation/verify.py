"""`datakit augment --verify OUT`: regenerate every derived image from its lineage, compare bytes.

For each derived row: the parent must still be in the manifest with the recorded content hash,
the pipeline must be in the header, and rendering the parent with the recorded seed must give
exactly the bytes on disk (and the semantic mask PNG, when there is one). A difference is
reported as a *version mismatch* when the albumentations/OpenCV/NumPy versions recorded with the
pipeline differ from the running ones (the images may be fine; the library changed), and as
*corrupt* when they are the same (the file changed). The same render's objects (count, category,
box, RLE mask) must match the image's recorded annotations, else *objects differ* (the table was
edited).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from datakit.augmentation import render as rendering
from datakit.errors import DatakitError
from datakit.regular_files import read_regular_file


@dataclass
class VerifyResult:
    manifest: Path
    checked: int
    ok: int
    corrupt: list[dict[str, str]] = field(default_factory=list)
    version_mismatch: list[dict[str, str]] = field(default_factory=list)
    missing: list[dict[str, str]] = field(default_factory=list)
    parent_changed: list[dict[str, str]] = field(default_factory=list)
    objects_differ: list[dict[str, str]] = field(default_factory=list)
    """Images whose recorded annotations are not those the regeneration gives (edited tables)."""
    versions: dict[str, Any] = field(default_factory=dict)
    """{"recorded": {pipeline hash: versions}, "running": versions}."""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not (self.corrupt or self.version_mismatch or self.missing or self.parent_changed
                    or self.objects_differ)

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["manifest"] = str(self.manifest)
        data["passed"] = self.passed
        return data


_VERIFY: dict[str, Any] = {}


def _init(pipelines: dict[str, Any]) -> None:
    # no SIGINT change here: with one worker this runs in the caller's process, where ignoring
    # Ctrl-C would outlive the call (pool workers ignore it through offline._pool_init)
    import cv2

    from datakit.augmentation.specs import from_header

    cv2.setNumThreads(1)
    _VERIFY.clear()
    # a pipeline recorded without "seeding" was made when every transform shared one seed
    _VERIFY.update({h: (from_header(entry), entry.get("encoding") or rendering.ENCODING, entry.get("seeding", "shared"))
                    for h, entry in pipelines.items()})


# a box read back from a table may differ from the regenerated one by float rounding, no more
BOX_TOLERANCE_PX = 1e-3
BOX_TOLERANCE_REL = 1e-6


@dataclass
class Recorded:
    """One annotation of a derived image as its manifest holds it."""

    id: str
    label: int
    box: tuple[float, float, float, float]
    segmentation: Any
    """Parsed RLE, or None."""


def _box_close(a: Any, b: Any) -> bool:
    return all(abs(x - y) <= max(BOX_TOLERANCE_PX, BOX_TOLERANCE_REL * abs(y)) for x, y in zip(a, b))


def objects_difference(done: rendering.Rendered, recorded: list[Recorded]) -> str | None:
    """What differs between the regenerated objects and the recorded ones, or None."""
    from datakit.augmentation.offline import _summary

    made = _summary(done, 0, 0)
    if len(made["kept"]) != len(recorded):
        return f"{len(recorded)} objects recorded, {len(made['kept'])} regenerated"
    for position, obj in enumerate(recorded):
        if int(made["labels"][position]) != obj.label:
            return f"{obj.id}: category differs"
        if not _box_close(obj.box, made["boxes"][position]):
            box = ", ".join(f"{v:g}" for v in made["boxes"][position])
            return f"{obj.id}: box {', '.join(f'{v:g}' for v in obj.box)} recorded, {box} regenerated"
        segmentation = made["segmentations"][position] if made["segmentations"] else None
        if (json.loads(segmentation) if segmentation else None) != obj.segmentation:
            return f"{obj.id}: instance mask differs"
    return None


def _check(task: tuple[rendering.Job, str, str, str | None, list[Recorded]]) -> tuple[str, str]:
    """(outcome, detail) for one derived image: ok, differs, objects_differ, parent_changed or missing."""
    job, pipeline_hash, path, mask_path, recorded = task
    if not Path(path).is_file():
        return "missing", "file does not exist"
    compose, encoding, seeding = _VERIFY[pipeline_hash]
    try:
        done = rendering.render(compose, job, encoding, seeding=seeding)
    except rendering.ParentChanged:
        return "parent_changed", "changed since it was augmented"
    on_disk = read_regular_file(path)
    if on_disk != done.image:
        return "differs", (f"regenerated image differs (sha256 {hashlib.sha256(on_disk).hexdigest()[:12]} on disk, "
                           f"{done.sha256[:12]} regenerated)")
    if mask_path is not None:
        if not Path(mask_path).is_file():
            return "missing", "semantic mask file does not exist"
        if read_regular_file(mask_path) != done.semantic_mask:
            return "differs", "regenerated semantic mask differs"
    # the same render's objects: editing annotations.parquet must not pass as verified
    difference = objects_difference(done, recorded)
    if difference is not None:
        return "objects_differ", f"objects differ: {difference}"
    return "ok", ""


def _recorded_objects(manifest: Any, objects: dict[str, pd.DataFrame]) -> dict[str, list[Recorded]]:
    """Each derived image's annotations in the order the writer numbered them (``<image id>:<n>``)."""
    ids = manifest.category_ids()
    recorded: dict[str, list[Recorded]] = {}
    for image_id, group in objects.items():
        rows = sorted(group.itertuples(index=False), key=lambda a: _position(str(a.id)))
        recorded[image_id] = [
            Recorded(id=str(a.id), label=ids.get(str(a.category), -1),
                     box=(float(a.bbox_x), float(a.bbox_y), float(a.bbox_w), float(a.bbox_h)),
                     segmentation=json.loads(a.segmentation) if a.segmentation_kind == "rle" and pd.notna(a.segmentation)
                     else None)
            for a in rows]
    return recorded


def _position(annotation_id: str) -> tuple[int, str]:
    number = annotation_id.rpartition(":")[2]
    return (int(number), "") if number.isdigit() else (-1, annotation_id)


def verify(output: str | os.PathLike[str], workers: int = 1, show_progress: bool = True) -> VerifyResult:
    from datakit.augmentation.offline import _jobs_for, _objects_by_image, _versions, run_jobs
    from datakit.console import progress_bar
    from datakit.manifest import load_manifest

    started = time.perf_counter()
    manifest = load_manifest(output)
    images = manifest.images
    derived = images[images["parent_id"].notna()]
    if derived.empty:
        raise DatakitError(f"{manifest.location}: no derived images to verify (no row has a parent_id)")
    running = _versions()
    from datakit.augmentation.targets import SEEDINGS

    for pipeline_hash, entry in manifest.pipelines.items():
        if entry.get("seeding", "shared") not in SEEDINGS:
            raise DatakitError(f"{manifest.location}: pipeline {pipeline_hash[:12]} was seeded by a rule this datakit "
                               f"does not know ({entry['seeding']!r}; known: {', '.join(SEEDINGS)}): a newer "
                               "datakit made it")
    recorded = {h: {k: e.get(k) for k in running} for h, e in manifest.pipelines.items()}
    result = VerifyResult(manifest=manifest.location, checked=len(derived), ok=0,
                          versions={"recorded": recorded, "running": running})
    parents = images.set_index("id", drop=False)
    objects = _objects_by_image(manifest)
    root = manifest.root()
    recorded_objects = _recorded_objects(manifest, objects)
    tasks = []
    for _, row in derived.iterrows():
        ident, parent_id = str(row["id"]), str(row["parent_id"])
        if parent_id not in parents.index:
            result.parent_changed.append({"id": ident, "path": row["path"], "reason": f"parent {parent_id} is not in the manifest"})
            continue
        parent = parents.loc[parent_id]
        parent_file = root / parent["path"]
        if not parent_file.is_file():
            result.parent_changed.append({"id": ident, "path": row["path"], "reason": f"parent file {parent['path']} is missing"})
            continue
        pipeline_hash = str(row["pipeline"]) if pd.notna(row["pipeline"]) else None
        if pipeline_hash not in manifest.pipelines:
            raise DatakitError(f"{manifest.location}: image {ident}: pipeline {pipeline_hash} is not in the header's "
                               "'pipelines'; the lineage is incomplete")
        if pd.isna(row["seed"]):
            raise DatakitError(f"{manifest.location}: image {ident}: no seed recorded; cannot regenerate it")
        (job, _, _, _, _), = _jobs_for([(parent, 0)], manifest, objects, pipeline_hash, 0, 0)
        job.seed = int(row["seed"])
        job.out_format = str(row["format"])
        # the render hashes the parent bytes it decodes and stops at a parent that is not the recorded one
        job.parent_sha256 = str(row["parent_sha256"]) if pd.notna(row["parent_sha256"]) else None
        # the objects that went in are the parent's, as recorded at augmentation time
        mask_path = str(root / row["semantic_mask"]) if pd.notna(row["semantic_mask"]) else None
        check = (job, pipeline_hash, str(root / row["path"]), mask_path, recorded_objects.get(ident, []))
        tasks.append((check, ident, str(row["path"]), pipeline_hash))
    with progress_bar("Verifying", len(tasks), show_progress) as advance:
        outcomes = run_jobs([t[0] for t in tasks], _check, (manifest.pipelines,), workers, advance,
                            init=_init)
    for (job, ident, path, pipeline_hash), (outcome, detail) in zip(tasks, outcomes):
        if outcome == "ok":
            result.ok += 1
        elif outcome == "parent_changed":
            parent_path = os.path.relpath(job[0].parent_path, root)
            result.parent_changed.append({"id": ident, "path": path, "reason": f"parent file {parent_path} {detail}"})
        elif outcome == "missing":
            result.missing.append({"id": ident, "path": path, "reason": detail})
        elif outcome == "objects_differ":
            result.objects_differ.append({"id": ident, "path": path, "reason": detail})
        elif recorded.get(pipeline_hash) != running:
            changed = {k: f"{recorded[pipeline_hash].get(k)} -> {v}" for k, v in running.items()
                       if recorded[pipeline_hash].get(k) != v}
            result.version_mismatch.append({"id": ident, "path": path,
                                            "reason": f"{detail}; made with other library versions ({json.dumps(changed)})"})
        else:
            result.corrupt.append({"id": ident, "path": path, "reason": detail})
    result.seconds = round(time.perf_counter() - started, 3)
    return result
