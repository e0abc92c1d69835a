"""Annotation-looking files that no format reader claimed: say so, and name the closest format.

When ``ingest`` reads a folder as plain images (no format detected), a ``*.txt`` beside every
image, ``*.xml`` files, COCO or LabelMe ``*.json`` files, or mask PNG folders mean the user
expected objects. Reading them as images without a word would give a manifest without objects;
instead each kind found becomes one reported line naming the closest format and what it lacks.
"""

from __future__ import annotations

import os
from pathlib import Path

from datakit.imageinfo import IMAGE_EXTENSIONS
from datakit.regular_files import open_regular_file

MASK_FOLDERS = {"masks", "mask", "segmentationclass", "segmentationobject", "segmentationclasspng",
                "segmentationobjectpng", "annotations", "labels", "semantic", "instance", "gt", "groundtruth"}
_MAX_FILES = 200_000  # stop looking after this many entries: a hint, not a second full scan


def _json_kind(path: Path) -> str | None:
    try:
        with open_regular_file(path) as fh:
            head = fh.read(65536).decode("utf-8", "ignore")
    except OSError:
        return None
    if '"shapes"' in head and '"imagePath"' in head:
        return "labelme"
    if '"images"' in head or '"annotations"' in head or '"categories"' in head:
        return "coco"
    return None


def unclaimed_annotations(src: Path) -> list[dict[str, str]]:
    """One entry (path, reason) per kind of annotation-looking file found under ``src``."""
    found: dict[str, list[str]] = {}
    seen = 0
    for folder, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel_folder = os.path.relpath(folder, src).replace(os.sep, "/")
        stems = {os.path.splitext(f)[0] for f in files if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS}
        for name in sorted(files):
            seen += 1
            stem, ext = os.path.splitext(name)
            ext = ext.lower()
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            if ext == ".txt" and (stem in stems or "labels" in rel_folder.lower().split("/")):
                found.setdefault("yolo", []).append(rel)
            elif ext == ".xml":
                found.setdefault("voc", []).append(rel)
            elif ext == ".json":
                kind = _json_kind(Path(folder) / name)
                if kind:
                    found.setdefault(kind, []).append(rel)
            elif ext == ".png" and os.path.basename(folder).lower() in MASK_FOLDERS:
                found.setdefault("masks", []).append(rel)
        if seen > _MAX_FILES:
            break
    needs = {
        "yolo": "YOLO labels (one .txt per image), but there is no data.yaml, obj.data, or obj.names beside "
                "images/ and labels/ to give the class names",
        "voc": "Pascal VOC annotations, but VOC needs JPEGImages/ beside Annotations/",
        "coco": "a COCO annotation file, but it is not where COCO is looked for (annotations/*.json or the folder "
                "itself) or its images were not found; pass the JSON file itself as SRC",
        "labelme": "LabelMe annotations, but their images were not found beside them",
        "masks": "mask PNGs, but the masks format needs images/ beside masks/semantic/ or masks/instance/",
    }
    hints = []
    for kind, paths in found.items():
        more = f" (and {len(paths) - 1} more)" if len(paths) > 1 else ""
        hints.append({"path": f"{paths[0]}{more}",
                      "reason": f"looks like {needs[kind]}; not read, so this manifest has no objects from it "
                                f"(closest format: {kind}; see docs/formats.md)"})
    return hints
