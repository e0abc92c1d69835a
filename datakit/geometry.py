"""Boxes, polygons, RLE and masks, and the conversions between them (pycocotools does RLE).

The one internal convention, used by the manifest and everything between import and export:

- a box is ``(x, y, w, h)`` in absolute pixels, COCO style: ``(x, y)`` is the top-left corner of
  the top-left covered pixel, so a box covering pixel columns 0..9 has ``x = 0, w = 10``;
- a polygon is a flat list ``[x1, y1, x2, y2, ...]`` in the same continuous coordinates, and an
  object's polygon segmentation is a list of such parts;
- RLE is COCO's compressed form ``{"size": [h, w], "counts": "<ascii>"}`` (column-major runs);
- a mask is a ``uint8`` array of shape ``(h, w)``, non-zero inside the object.

Formats convert to this at their edges (VOC's 1-based inclusive corners, YOLO's normalized
centres) and nowhere else.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from datakit.errors import DatakitError
from datakit.regular_files import read_regular_file

Box = tuple[float, float, float, float]
Polygons = list[list[float]]
Rle = dict[str, Any]

# the class-map value for pixels that are unknown: not trained on, not scored (VOC's convention)
IGNORE = 255
# a polygon needs at least three points to enclose any area
MIN_POLYGON_POINTS = 3
# pycocotools rasterizes a polygon by walking each edge pixel by pixel: one vertex at 5e9 made it
# allocate until the process was killed. Images stay under ~179 megapixels, so no real polygon
# reaches this far; slightly outside the image (a few pixels) is common and fine.
MAX_POLYGON_COORDINATE = 1_000_000
_NUMBER_TYPES = {int, float}


def is_finite_number(value: Any) -> bool:
    """An int or float that is finite, bools excluded: what a JSON coordinate, area or score must be
    (Python's json reads NaN and Infinity, which no annotation tool means)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------------------------------------
# boxes


def xyxy_to_xywh(x1: float, y1: float, x2: float, y2: float) -> Box:
    return (x1, y1, x2 - x1, y2 - y1)


def xywh_to_xyxy(box: Sequence[float]) -> tuple[float, float, float, float]:
    x, y, w, h = box
    return (x, y, x + w, y + h)


def box_to_polygon(box: Sequence[float]) -> list[float]:
    """The four corners, clockwise from the top-left, as one flat polygon part."""
    x1, y1, x2, y2 = xywh_to_xyxy(box)
    return [x1, y1, x2, y1, x2, y2, x1, y2]


def polygons_box(polygons: Polygons) -> Box:
    xs = [v for part in polygons for v in part[0::2]]
    ys = [v for part in polygons for v in part[1::2]]
    return xyxy_to_xywh(min(xs), min(ys), max(xs), max(ys))


def clip_box(box: Sequence[float], width: float, height: float) -> Box:
    x1, y1, x2, y2 = xywh_to_xyxy(box)
    x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
    y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
    return xyxy_to_xywh(x1, y1, x2, y2)


def box_problem(box: Sequence[float], width: float | None, height: float | None) -> str | None:
    """Why a box is invalid ('zero or negative size', 'outside the image'), or None."""
    x, y, w, h = box
    if not all(math.isfinite(v) for v in box):
        return "has a coordinate that is not a finite number"
    if w <= 0 or h <= 0:
        return "has zero or negative size"
    if width is not None and height is not None and (x < 0 or y < 0 or x + w > width or y + h > height):
        return f"extends outside the {width}x{height} image"
    return None


# ---------------------------------------------------------------------------------------------
# polygons


def polygon_problem(part: Sequence[Any]) -> str | None:
    # set(map(type)) runs in C: this check is on every polygon of a 100k-object COCO file
    if not isinstance(part, (list, tuple)) or not set(map(type, part)) <= _NUMBER_TYPES:
        return "is not a list of numbers"
    if not math.isfinite(sum(part)):  # NaN and Infinity propagate through the sum, in C
        return "has a coordinate that is not finite (NaN or infinity)"
    if part and max(max(part), -min(part)) > MAX_POLYGON_COORDINATE:
        return (f"has a coordinate beyond {MAX_POLYGON_COORDINATE:,} pixels ({max(part, key=abs):g}): not a position "
                "in any image datakit reads")
    if len(part) % 2:
        return f"has an odd number of coordinates ({len(part)})"
    if len(part) < 2 * MIN_POLYGON_POINTS:
        return f"has {len(part) // 2} point(s); a polygon needs at least {MIN_POLYGON_POINTS}"
    return None


def polygons_to_rle(polygons: Polygons, height: int, width: int) -> Rle:
    """Rasterize all parts of one object into one compressed RLE (pycocotools' rule)."""
    return _text_counts(mask_utils.merge(mask_utils.frPyObjects([list(map(float, p)) for p in polygons], height, width)))


def polygons_area(polygons: Polygons, height: int | None, width: int | None) -> float:
    """Pixels of an object's polygon parts as pycocotools rasterizes them, within the image when its
    size is known (else within the polygons' own extent)."""
    if not (isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0):
        flat = [v for p in polygons for v in p]
        width, height = int(math.ceil(max(flat[0::2]))) + 1, int(math.ceil(max(flat[1::2]))) + 1
    return rle_area(polygons_to_rle(polygons, height, width))


def mask_to_polygons(mask: np.ndarray) -> tuple[Polygons, str | None]:
    """Outer contours of a mask as polygon parts, and what the polygons lose (holes, tiny parts).

    Polygons cannot carry holes (the second value says how many were dropped, so an export can
    report it instead of changing the data silently) and trace the outline through the centres
    of the boundary pixels, so they cover up to half a pixel less than the mask on each side.
    """
    import cv2  # imported here: format detection imports this module and should stay light

    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    polygons: Polygons = []
    holes = 0
    for i, contour in enumerate(contours):
        if hierarchy is not None and hierarchy[0][i][3] != -1:
            holes += 1
            continue
        points = contour.reshape(-1, 2).astype(np.float64)
        if len(points) < MIN_POLYGON_POINTS:
            # a one- or two-pixel sliver: its pixels' outer rectangle, so the part is not lost
            x1, y1 = points.min(axis=0)
            x2, y2 = points.max(axis=0) + 1
            polygons.append([float(v) for v in box_to_polygon((x1, y1, x2 - x1, y2 - y1))])
            continue
        # contour points are pixel indices; +0.5 puts them on pixel centres in box coordinates
        polygons.append([round(float(v), 3) for v in (points + 0.5).reshape(-1)])
    return polygons, f"{holes} hole(s) dropped" if holes else None


# ---------------------------------------------------------------------------------------------
# RLE and masks


def _text_counts(rle: Rle) -> Rle:
    counts = rle["counts"]
    return {"size": [int(rle["size"][0]), int(rle["size"][1])],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def _byte_counts(rle: Rle) -> Rle:
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def rle_problem(rle: Any, height: int | None, width: int | None) -> str | None:
    """Why an RLE (compressed or uncompressed) cannot be used for an image of this size, or None."""
    if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
        return "RLE must be an object with 'size' and 'counts'"
    size = rle["size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v >= 0 for v in size)):
        return f"RLE size {size!r} is not [height, width]"
    if height is not None and width is not None and (size[0] != height or size[1] != width):
        return f"RLE size [{size[0]}, {size[1]}] disagrees with the {width}x{height} image (size is [height, width])"
    counts = rle["counts"]
    if isinstance(counts, list):
        if not set(map(type, counts)) <= {int} or (counts and min(counts) < 0):
            return "uncompressed RLE counts must be non-negative integers"
        if sum(counts) != size[0] * size[1]:
            return f"uncompressed RLE counts sum to {sum(counts)}, not height*width = {size[0] * size[1]}"
    elif not isinstance(counts, str):
        return "RLE counts must be a list of integers or a compressed string"
    else:
        total = compressed_counts_total(counts)
        if total is None:
            return "compressed RLE counts are not valid (a character out of range, a cut-off run or a negative run)"
        if total != size[0] * size[1]:
            return f"compressed RLE counts cover {total} pixels, not height*width = {size[0] * size[1]}"
    return None


def compressed_counts_total(counts: str) -> int | None:
    """The pixels a compressed RLE string covers (the sum of its runs), or None when it cannot be
    decoded: pycocotools itself reads a bad string into garbage areas and fails later, on decode.

    Each run is 5-bit groups in characters from '0' (0x20 marks "more groups follow", 0x10 the sign
    of the last group); from the third run on, a run is stored as the difference to the run two
    before (pycocotools' rleFrString)."""
    runs: list[int] = []
    value = shift = 0
    for char in counts:
        code = ord(char) - 48
        if not 0 <= code < 64:
            return None
        value |= (code & 0x1F) << shift
        shift += 5
        if code & 0x20:
            continue
        if code & 0x10:
            value -= 1 << shift
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            return None
        runs.append(value)
        value = shift = 0
    return None if shift else sum(runs)


def compress_rle(rle: Rle) -> Rle:
    """Compressed RLE with text counts, from either form (uncompressed counts are a list)."""
    if isinstance(rle["counts"], list):
        h, w = rle["size"]
        return _text_counts(mask_utils.frPyObjects(rle, h, w))
    return _text_counts(rle)


def rle_to_mask(rle: Rle) -> np.ndarray:
    return mask_utils.decode(_byte_counts(rle))


def mask_to_rle(mask: np.ndarray) -> Rle:
    return _text_counts(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))))


def rle_area(rle: Rle) -> float:
    return float(mask_utils.area(_byte_counts(rle)))


def rle_areas(rles: list[Any]) -> np.ndarray:
    """Areas of many pycocotools RLEs (bytes counts), as float64.

    In chunks: pycocotools' ``area`` sizes a uint8 array by the number of RLEs, which overflows
    under numpy 2 from 256 RLEs on ("Python integer 256 out of bounds for uint8")."""
    parts = [np.asarray(mask_utils.area(list(rles[i:i + 255])), dtype=np.float64) for i in range(0, len(rles), 255)]
    return np.concatenate(parts) if parts else np.zeros(0)


def rle_box(rle: Rle) -> Box:
    x, y, w, h = mask_utils.toBbox(_byte_counts(rle))
    return (float(x), float(y), float(w), float(h))


def mask_box(mask: np.ndarray) -> Box:
    return rle_box(mask_to_rle(mask))


# ---------------------------------------------------------------------------------------------
# label PNGs (semantic class maps, instance id maps)


@lru_cache(maxsize=1)
def voc_colormap() -> np.ndarray:
    """Pascal VOC's 256-colour palette (index -> RGB), built by its bit-interleaving rule."""
    colours = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        c, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours[index] = (r, g, b)
    return colours


def read_label_png(path: str | Path, palette: np.ndarray | None = None) -> np.ndarray:
    """Pixel values of a class or instance map: palette indices, grey values or 16-bit ids.

    An RGB map (colour-coded, as some VOC tools write) is turned back into indices through
    ``palette`` (VOC's colour map by default); a colour not in the palette is an error naming the
    file and the first pixel that has it.
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(read_regular_file(path))) as image:
            image.load()
            mode = image.mode
            if mode in ("P", "L", "1"):
                return np.array(image if mode != "1" else image.convert("L"))
            if mode.startswith("I"):
                return np.array(image).astype(np.int32 if mode == "I" else np.uint16)
            rgb = np.array(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatakitError(f"{path}: cannot read mask PNG ({getattr(exc, 'strerror', None) or exc})") from None
    colours = voc_colormap() if palette is None else np.asarray(palette, dtype=np.uint8)
    keys = (colours[:, 0].astype(np.int64) << 16) | (colours[:, 1].astype(np.int64) << 8) | colours[:, 2]
    pixel_keys = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    lookup = {int(k): i for i, k in reversed(list(enumerate(keys.tolist())))}
    unique, inverse = np.unique(pixel_keys, return_inverse=True)
    indices = np.empty(len(unique), dtype=np.uint8)
    for n, key in enumerate(unique.tolist()):
        if key not in lookup:
            row, col = (int(v[0]) for v in np.nonzero(pixel_keys == key))
            colour = (key >> 16, (key >> 8) & 255, key & 255)
            raise DatakitError(f"{path}: pixel (row {row}, column {col}) has colour {colour}, which is not in the palette")
        indices[n] = lookup[key]
    return indices[inverse.reshape(pixel_keys.shape)]


def write_label_png(path: str | Path, values: np.ndarray, palette: np.ndarray | None = None,
                    sixteen_bit: bool = False) -> None:
    """Write a class or instance map: a palette PNG when ``palette`` is given, else grey (16-bit
    when asked or when a value exceeds 255, 8-bit otherwise)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if palette is not None:
        if values.max(initial=0) > 255:
            raise DatakitError(f"{path}: value {int(values.max())} does not fit a palette PNG (0..255)")
        image = Image.fromarray(values.astype(np.uint8), mode="P")
        image.putpalette(np.asarray(palette, dtype=np.uint8).reshape(-1).tolist())
    elif sixteen_bit or values.max(initial=0) > 255:
        if values.max(initial=0) > 65535:
            raise DatakitError(f"{path}: value {int(values.max())} does not fit a 16-bit PNG")
        image = Image.fromarray(values.astype(np.uint16))
    else:
        image = Image.fromarray(values.astype(np.uint8), mode="L")
    image.save(path, format="PNG")


# ---------------------------------------------------------------------------------------------
# any stored segmentation -> RLE or mask


def segmentation_rle(kind: str, segmentation: Any, height: int, width: int, root: Path | None = None) -> Rle:
    """Compressed RLE of one manifest segmentation (polygon, rle or mask_file)."""
    if kind == "polygon":
        return polygons_to_rle(segmentation, height, width)
    if kind == "rle":
        return compress_rle(segmentation)
    if kind == "mask_file":
        return mask_to_rle(mask_file_mask(segmentation, root))
    raise DatakitError(f"unknown segmentation kind {kind!r}")


def segmentation_mask(kind: str, segmentation: Any, height: int, width: int, root: Path | None = None) -> np.ndarray:
    if kind == "mask_file":
        return mask_file_mask(segmentation, root)
    return rle_to_mask(segmentation_rle(kind, segmentation, height, width))


def mask_file_mask(segmentation: dict[str, Any], root: Path | None) -> np.ndarray:
    from datakit.manifest import check_relative_path

    relative = segmentation["path"]
    problem = check_relative_path(relative)
    if problem:
        raise DatakitError(f"mask file {relative!r} {problem}; refused")
    path = Path(relative) if root is None else root / relative
    return (read_label_png_cached(str(path)) == int(segmentation["value"])).astype(np.uint8)


@lru_cache(maxsize=8)
def _cached(path: str, mtime_ns: int) -> np.ndarray:
    values = read_label_png(path)
    values.setflags(write=False)
    return values


def read_label_png_cached(path: str) -> np.ndarray:
    """read_label_png for the many objects of one instance map, keyed by file and mtime."""
    try:
        mtime = Path(path).stat().st_mtime_ns
    except OSError:
        raise DatakitError(f"{path}: mask file does not exist") from None
    return _cached(path, mtime)
