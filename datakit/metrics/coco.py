"""COCO bbox/segm average precision and recall, equal to pycocotools' COCOeval.

The protocol is COCOeval's, step for step: per image and category, detections sorted by score
(stable) and cut at the largest maxDets; ground truth with ``iscrowd`` set, or with an area
outside the range, is ignored (a detection matched to it counts neither way); greedy matching
at IoU thresholds .50:.05:.95 (a crowd region may match many detections, its IoU being the
intersection over the detection's area); precision interpolated (made monotone) and read at
101 recall points. The matching and accumulation run in faster-coco-eval's C++ core (which
reimplements COCOeval exactly); datakit feeds it arrays instead of COCO objects and computes
box IoUs vectorized (the same float operations as pycocotools' ``bbIou``). The tests compare
every array and statistic against pycocotools itself.

The summary differs from ``COCOeval.summarize`` in two documented ways: every AP statistic and
every area-range AR is read at the *largest* maxDets (pycocotools reads AP@[.5:.95] at a
hard-coded 100, which gives -1 when 100 is not in maxDets), AR is reported at every maxDets
given, and a value with no ground truth is ``None`` with a reason instead of -1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES = {"all": (0.0, 1e5 ** 2), "small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2),
               "large": (96.0 ** 2, 1e5 ** 2)}
DEFAULT_MAX_DETS = (1, 10, 100)


@dataclass
class Instances:
    """Ground truth or detections as parallel arrays (one row per object).

    ``image`` and ``category`` are the COCO integer ids; ``ids`` are positive annotation ids;
    ``boxes`` are x, y, w, h; ``rles`` the compressed RLE dicts (segm only).
    """

    image: np.ndarray
    category: np.ndarray
    boxes: np.ndarray
    area: np.ndarray
    ids: np.ndarray
    iscrowd: np.ndarray | None = None
    score: np.ndarray | None = None
    rles: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.image)

    def take(self, index: np.ndarray) -> "Instances":
        return Instances(
            self.image[index], self.category[index], self.boxes[index], self.area[index], self.ids[index],
            None if self.iscrowd is None else self.iscrowd[index], None if self.score is None else self.score[index],
            None if self.rles is None else [self.rles[i] for i in index],
        )


@dataclass
class CocoResult:
    """COCOeval.eval's arrays: precision [T,R,K,A,M], recall [T,K,A,M], scores [T,R,K,A,M]."""

    iou_type: str
    image_ids: list[int]
    category_ids: list[int]
    max_dets: list[int]
    area_labels: list[str]
    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray
    iou_thresholds: np.ndarray = field(default_factory=lambda: IOU_THRESHOLDS.copy())
    recall_thresholds: np.ndarray = field(default_factory=lambda: RECALL_THRESHOLDS.copy())


def _runs(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of each run of equal values in a sorted array."""
    if len(sorted_keys) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    return starts, np.diff(np.r_[starts, len(sorted_keys)])


def box_iou_pairs(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU of detection box i with ground-truth box i (x y w h), for every row i.

    The same double operations as pycocotools' ``bbIou`` so that results are bit-identical: a
    detection exactly on an IoU threshold matches in both. For crowd ground truth the union is
    the detection's area.
    """
    w = np.minimum(dt[:, 0] + dt[:, 2], gt[:, 0] + gt[:, 2]) - np.maximum(dt[:, 0], gt[:, 0])
    h = np.minimum(dt[:, 1] + dt[:, 3], gt[:, 1] + gt[:, 3]) - np.maximum(dt[:, 1], gt[:, 1])
    inter = w * h
    da = dt[:, 2] * dt[:, 3]
    union = np.where(crowd.astype(bool), da, da + gt[:, 2] * gt[:, 3] - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where((w > 0) & (h > 0), iou, 0.0)


def mask_iou(dt: Instances, gt: Instances, d_rows: np.ndarray, g_rows: np.ndarray) -> np.ndarray:
    """pycocotools' RLE IoU of detections (rows) and ground truth (columns); crowd as for boxes."""
    from pycocotools import mask as mask_utils

    return mask_utils.iou([dt.rles[i] for i in d_rows], [gt.rles[i] for i in g_rows],
                          [int(c) for c in gt.iscrowd[g_rows]])


def box_iou(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU of every detection box (rows) with every ground-truth box (columns), x y w h.

    The same double operations as pycocotools' ``bbIou`` so that results are bit-identical: a
    detection exactly on an IoU threshold matches in both. For crowd ground truth the union is
    the detection's area.
    """
    dx, dy, dw, dh = (dt[:, i:i + 1] for i in range(4))
    gx, gy, gw, gh = (gt[None, :, i] for i in range(4))
    w = np.minimum(dx + dw, gx + gw) - np.maximum(dx, gx)
    h = np.minimum(dy + dh, gy + gh) - np.maximum(dy, gy)
    inter = w * h
    da = dw * dh
    union = np.where(crowd[None, :].astype(bool), da, da + gw * gh - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where((w > 0) & (h > 0), iou, 0.0)


def evaluate(gt: Instances, dt: Instances, image_ids: Sequence[int], category_ids: Sequence[int],
             iou_type: str = "bbox", max_dets: Sequence[int] = DEFAULT_MAX_DETS) -> CocoResult:
    """COCOeval.evaluate() + accumulate() on arrays; ``image_ids``/``category_ids`` are the
    evaluated sets (p.imgIds, p.catIds): usually every image and category of the ground truth."""
    import faster_coco_eval.faster_eval_api_cpp as _C
    from faster_coco_eval.core.cocoeval import Params

    image_ids = sorted({int(i) for i in image_ids})
    category_ids = sorted({int(c) for c in category_ids})
    max_dets = sorted(int(m) for m in max_dets)
    params = Params(iouType="bbox" if iou_type == "bbox" else "segm")
    params.imgIds, params.catIds, params.maxDets = image_ids, category_ids, max_dets
    params.useCats = 1

    n_cats = len(category_ids)
    img_index = {i: n for n, i in enumerate(image_ids)}
    cat_index = {c: k for k, c in enumerate(category_ids)}

    def keys(inst: Instances) -> np.ndarray:
        """image position * K + category position, -1 for objects outside the evaluated sets."""
        img = np.fromiter((img_index.get(i, -1) for i in inst.image.tolist()), np.int64, len(inst))
        cat = np.fromiter((cat_index.get(c, -1) for c in inst.category.tolist()), np.int64, len(inst))
        return np.where((img >= 0) & (cat >= 0), img * n_cats + cat, -1)

    g_key, d_key = keys(gt), keys(dt)
    # ground truth grouped by (image, category) in file order; detections by score within each
    # group (stable: results-file order on ties, as computeIoU's mergesort), cut at maxDets
    g_rows = np.flatnonzero(g_key >= 0)
    g_rows = g_rows[np.argsort(g_key[g_rows], kind="stable")]
    d_rows = np.flatnonzero(d_key >= 0)
    d_rows = d_rows[np.lexsort((d_rows, -dt.score[d_rows], d_key[d_rows]))]
    g_start, g_count = _runs(g_key[g_rows])
    d_start, d_count = _runs(d_key[d_rows])
    rank = np.arange(len(d_rows)) - np.repeat(d_start, d_count)
    d_rows = d_rows[rank < max_dets[-1]]
    d_start, d_count = _runs(d_key[d_rows])

    gt_dataset, dt_dataset = _C.Dataset(), _C.Dataset()
    g_img, g_cat = gt.image.tolist(), gt.category.tolist()
    g_ids, g_area, g_crowd = gt.ids.tolist(), gt.area.tolist(), gt.iscrowd.tolist()
    for r in g_rows.tolist():
        gt_dataset.append_ref(g_img[r], g_cat[r], {"id": g_ids[r], "area": g_area[r], "iscrowd": g_crowd[r],
                                                   "ignore": g_crowd[r]})
    # every detection goes in, in file order: the C++ core sorts (stably) and cuts at maxDets itself
    d_img, d_cat = dt.image.tolist(), dt.category.tolist()
    d_ids, d_area, d_score = dt.ids.tolist(), dt.area.tolist(), dt.score.tolist()
    for r in np.flatnonzero(d_key >= 0).tolist():
        dt_dataset.append_ref(d_img[r], d_cat[r], {"id": d_ids[r], "area": d_area[r], "score": d_score[r]})

    ious: list[list[Any]] = [[[] for _ in range(n_cats)] for _ in image_ids]
    both, d_at, g_at = np.intersect1d(d_key[d_rows][d_start], g_key[g_rows][g_start], return_indices=True)
    if len(both):
        nd, ng = d_count[d_at], g_count[g_at]
        sizes = nd * ng
        offsets = np.r_[0, np.cumsum(sizes)[:-1]]
        group = np.repeat(np.arange(len(both)), sizes)
        local = np.arange(int(sizes.sum())) - offsets[group]
        d_pair = d_rows[d_start[d_at][group] + local // ng[group]]
        g_pair = g_rows[g_start[g_at][group] + local % ng[group]]
        if iou_type == "bbox":
            flat = box_iou_pairs(dt.boxes[d_pair], gt.boxes[g_pair], gt.iscrowd[g_pair])
        else:
            flat = np.concatenate([np.asarray(mask_iou(dt, gt, d_pair[o:o + s:g], g_pair[o:o + g])).ravel()
                                   for o, s, g in zip(offsets.tolist(), sizes.tolist(), ng.tolist())])
        values = flat.tolist()
        for key, o, rows, cols in zip(both.tolist(), offsets.tolist(), nd.tolist(), ng.tolist()):
            ious[key // n_cats][key % n_cats] = [values[o + i * cols:o + (i + 1) * cols] for i in range(rows)]
    out = _C.COCOevalEvaluateAccumulate(params, ious, gt_dataset, dt_dataset, [float(i) for i in image_ids],
                                        [float(c) for c in category_ids], True)
    return CocoResult(iou_type, image_ids, category_ids, max_dets, list(params.areaRngLbl),
                      np.asarray(out["precision"]), np.asarray(out["recall"]), np.asarray(out["scores"]))


AREA_TEXT = {"all": "any area", "small": "small (area ≤ 32²)", "medium": "medium (32² ≤ area ≤ 96²)",
             "large": "large (area ≥ 96²)"}


def _mean(values: np.ndarray) -> float | None:
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else None


def stat(result: CocoResult, ap: bool, iou: float | None = None, area: str = "all",
         max_det: int | None = None) -> float | None:
    """One COCOeval summary number (``_summarize``), None where pycocotools gives -1."""
    a = result.area_labels.index(area)
    m = result.max_dets.index(max_det if max_det is not None else result.max_dets[-1])
    values = result.precision if ap else result.recall
    if iou is not None:
        t = int(np.flatnonzero(np.isclose(result.iou_thresholds, iou))[0])
        values = values[t:t + 1]
    return _mean(values[:, :, :, a, m] if ap else values[:, :, a, m])


def summarize(result: CocoResult, names: dict[int, str], gt_counts: dict[int, int], dt_counts: dict[int, int],
              prefix: str = "") -> dict[str, Any]:
    """Named metrics (None with a reason where nothing is defined), per-class AP and the
    12-number stats in COCOeval's layout (with -1 where pycocotools prints -1)."""
    top = result.max_dets[-1]
    metrics: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    no_gt = "no ground-truth objects (other than crowd regions) in the evaluated images"

    def put(name: str, value: float | None, area: str = "all") -> None:
        metrics[prefix + name] = value
        if value is None:
            reasons[prefix + name] = no_gt if area == "all" else f"no ground-truth object is {AREA_TEXT[area]}"

    put("map", stat(result, True))
    put("map50", stat(result, True, 0.5))
    put("map75", stat(result, True, 0.75))
    for area in ("small", "medium", "large"):
        put(f"map_{area}", stat(result, True, area=area), area)
    for m in result.max_dets:
        put(f"ar{m}", stat(result, False, max_det=m))
    for area in ("small", "medium", "large"):
        put(f"ar_{area}", stat(result, False, area=area), area)
    per_class: dict[str, dict[str, Any]] = {}
    for k, cid in enumerate(result.category_ids):
        p = result.precision[:, :, k, 0, -1]
        entry: dict[str, Any] = {
            "category_id": cid, "ground_truth": gt_counts.get(cid, 0), "detections": dt_counts.get(cid, 0),
            "ap": _mean(p), "ap50": _mean(p[0]), "ap75": _mean(p[5]),
            "ar": _mean(result.recall[:, k, 0, -1]),
        }
        if entry["ap"] is None:
            entry["note"] = "n/a: no ground truth of this class (other than crowd regions) in the evaluated images"
        per_class[names.get(cid, str(cid))] = entry
    stats = [stat(result, True), stat(result, True, 0.5), stat(result, True, 0.75),
             *(stat(result, True, area=a) for a in ("small", "medium", "large")),
             *(stat(result, False, max_det=m) for m in result.max_dets[:3]),
             *(stat(result, False, area=a) for a in ("small", "medium", "large"))]
    return {
        "metrics": metrics, "na": reasons, "per_class": per_class,
        "stats": [-1.0 if s is None else s for s in stats], "max_dets": result.max_dets, "ap_max_dets": top,
    }


def protocol(result: CocoResult, box_area: bool) -> dict[str, Any]:
    """What was computed, in words a reader can check against another tool."""
    top = result.max_dets[-1]
    text = {
        "iou_type": result.iou_type,
        "iou_thresholds": [round(float(t), 2) for t in result.iou_thresholds],
        "recall_points": len(result.recall_thresholds),
        "area_ranges": {k: [v[0], v[1]] for k, v in AREA_RANGES.items()},
        "max_dets": result.max_dets,
        "crowd": "iscrowd ground truth is ignored: detections matching it count neither as true nor false "
                 "positives; a crowd region may match many detections; IoU with it is intersection / detection area",
        "area_source": "ground truth: the manifest's area column (as exported to COCO); detections: "
                       + ("box width x height (pycocotools' loadRes does this whenever results carry boxes, "
                          "for masks too)" if box_area else "mask area (the results carry no boxes)"),
        "ap_at": f"every AP and area-range AR at maxDets={top} (the largest given); AR at each maxDets",
        "differs_from_pycocotools_summary": (
            "none for maxDets 1,10,100" if result.max_dets == [1, 10, 100] else
            f"pycocotools' summarize() reads AP@[.5:.95] at a hard-coded maxDets=100 (-1 when 100 is not given) and "
            f"AP50/AP75/area APs/area ARs at maxDets[2]; datakit reads them all at {top}"),
        "matching": "per image and category, detections by score (stable, file order on ties), greedy, "
                    "to the unmatched ground truth of highest IoU; precision interpolated at 101 recall points",
        "reference": "pycocotools COCOeval (numbers checked equal in datakit's test suite)",
    }
    return text
