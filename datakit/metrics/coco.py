"""COCO bbox/segm average precision and recall, equal to pycocotools' COCOeval.

The protocol is COCOeval's, step for step: per image and category, detections sorted by score
(stable) and cut at the largest maxDets; ground truth with ``iscrowd`` set, or with an area
outside the range, is ignored (a detection matched to it counts neither way); greedy matching
at IoU thresholds .50:.05:.95 (a crowd region may match many detections, its IoU being the
intersection over the detection's area); precision interpolated (made monotone) and read at
101 recall points. Nothing loops per image in Python: box IoUs are computed for all same-group
pairs at once (the same float operations as pycocotools' ``bbIou``, so equal bit for bit), the
greedy matching runs for every (image, category) group at once, one detection rank per step,
over all area ranges and IoU thresholds together, and accumulation is vectorized over the
thresholds. The tests compare every array and statistic against pycocotools itself.

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


AREA_TEXT = {"all": "any area", "small": "small (area ≤ 32²)", "medium": "medium (32² ≤ area ≤ 96²)",
             "large": "large (area ≥ 96²)"}


def as_pycocotools(stats: Sequence[float | None]) -> np.ndarray:
    """The stats as COCOeval.stats holds them: -1 for n/a (for comparing with pycocotools)."""
    return np.asarray([-1.0 if s is None else s for s in stats], dtype=np.float64)


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
    12-number stats in COCOeval's order (None where pycocotools prints -1)."""
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
        "stats": stats, "max_dets": result.max_dets, "ap_max_dets": top,
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


def evaluate(gt: Instances, dt: Instances, image_ids: Sequence[int], category_ids: Sequence[int],
                   iou_type: str = "bbox", max_dets: Sequence[int] = DEFAULT_MAX_DETS) -> CocoResult:
    """COCOeval.evaluate() + accumulate() on arrays, vectorized with numpy.

    Matching runs for every (image, category) group at once, one detection rank at a time
    (the r-th best detection of every group in one step), for all area ranges and IoU thresholds
    together; accumulation is COCOeval's, per category, area range and maxDets, over T at once.
    """
    image_ids = sorted({int(i) for i in image_ids})
    category_ids = sorted({int(c) for c in category_ids})
    max_dets = sorted(int(m) for m in max_dets)
    thresholds = IOU_THRESHOLDS
    areas = np.asarray(list(AREA_RANGES.values()))                     # A x 2
    n_t, n_a, n_k, n_m = len(thresholds), len(areas), len(category_ids), len(max_dets)
    n_r = len(RECALL_THRESHOLDS)

    image_array, category_array = np.asarray(image_ids, dtype=np.int64), np.asarray(category_ids, dtype=np.int64)

    def position(values: np.ndarray, table: np.ndarray) -> np.ndarray:
        """Index of each value in the sorted table, -1 where it is not there."""
        if not len(table):
            return np.full(len(values), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(table, values), len(table) - 1)
        return np.where(table[at] == values, at, -1)

    def positions(inst: Instances) -> tuple[np.ndarray, np.ndarray]:
        return position(inst.image.astype(np.int64), image_array), position(inst.category.astype(np.int64), category_array)

    g_img, g_cat = positions(gt)
    d_img, d_cat = positions(dt)
    g_key = np.where((g_img >= 0) & (g_cat >= 0), g_img * n_k + g_cat, -1)
    d_key = np.where((d_img >= 0) & (d_cat >= 0), d_img * n_k + d_cat, -1)

    # ground truth grouped by (image, category) in file order (the order pycocotools keeps
    # within its ignore classes); ignore flag per area range: crowd, or area outside the range
    g_rows = np.flatnonzero(g_key >= 0)
    g_rows = g_rows[np.argsort(g_key[g_rows], kind="stable")]
    g_start, g_count = _runs(g_key[g_rows])
    g_area = gt.area[g_rows]
    g_crowd = gt.iscrowd[g_rows].astype(bool)
    g_ignore = g_crowd[None, :] | (g_area[None, :] < areas[:, :1]) | (g_area[None, :] > areas[:, 1:])  # A x G

    # detections by score within each group (stable: file order on ties), cut at the largest maxDets
    d_rows = np.flatnonzero(d_key >= 0)
    d_rows = d_rows[np.lexsort((d_rows, -dt.score[d_rows], d_key[d_rows]))]
    d_start, d_count = _runs(d_key[d_rows])
    rank = np.arange(len(d_rows)) - np.repeat(d_start, d_count)
    keep = rank < max_dets[-1]
    d_rows, rank = d_rows[keep], rank[keep]
    d_start, d_count = _runs(d_key[d_rows])
    n_d = len(d_rows)
    d_area = dt.area[d_rows]
    matched = np.zeros((n_a, n_t, n_d), dtype=bool)
    d_ignore = np.zeros((n_a, n_t, n_d), dtype=bool)

    group_keys = d_key[d_rows][d_start] if n_d else np.zeros(0, dtype=np.int64)
    both, d_at, g_at = np.intersect1d(group_keys, g_key[g_rows][g_start] if len(g_rows) else np.zeros(0, np.int64),
                                      return_indices=True)
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
        # buckets of similar ground-truth counts keep the padding small
        bucket_of = np.searchsorted(np.array([4, 16, 64, 256]), ng)
        for bucket in np.unique(bucket_of).tolist():
            members = np.flatnonzero(bucket_of == bucket)
            members = members[np.argsort(-nd[members], kind="stable")]  # active groups are a prefix
            _match_bucket(members, nd, ng, offsets, flat, d_start[d_at], g_start[g_at], g_ignore, g_crowd,
                          thresholds, matched, d_ignore)
    # unmatched detections outside the area range are ignored
    d_out = (d_area[None, :] < areas[:, :1]) | (d_area[None, :] > areas[:, 1:])  # A x D
    d_ignore |= ~matched & d_out[:, None, :]

    # accumulate: per category, area range and maxDets, COCOeval's arithmetic over T at once
    precision = -np.ones((n_t, n_r, n_k, n_a, n_m))
    recall = -np.ones((n_t, n_k, n_a, n_m))
    scores = -np.ones((n_t, n_r, n_k, n_a, n_m))
    d_cat_sorted = d_cat[d_rows]
    order = np.lexsort((rank, d_img[d_rows], -dt.score[d_rows], d_cat_sorted))  # per category: score, image, rank
    cat_start, cat_count = _runs(d_cat_sorted[order])
    cat_of_run = d_cat_sorted[order][cat_start] if n_d else np.zeros(0, dtype=np.int64)
    runs = {int(k): (int(s), int(c)) for k, s, c in zip(cat_of_run, cat_start, cat_count)}
    g_cat_sorted = g_cat[g_rows]
    npig = np.zeros((n_k, n_a), dtype=np.int64)
    for a in range(n_a):
        npig[:, a] = np.bincount(g_cat_sorted[~g_ignore[a]], minlength=n_k)
    has_gt = np.bincount(g_cat_sorted, minlength=n_k) > 0
    spacing = np.spacing(1)
    for k in range(n_k):
        s, c = runs.get(k, (0, 0))
        if c == 0 and not has_gt[k]:
            continue  # COCOeval: no evaluation record at all for this category
        sel = order[s:s + c]
        for m, max_det in enumerate(max_dets):
            chosen = sel[rank[sel] < max_det]
            nd_m = len(chosen)
            score_sorted = dt.score[d_rows[chosen]]
            for a in range(n_a):
                if npig[k, a] == 0:
                    continue
                hit = matched[a][:, chosen]
                ign = d_ignore[a][:, chosen]
                tp = np.cumsum(hit & ~ign, axis=1).astype(float)
                fp = np.cumsum(~hit & ~ign, axis=1).astype(float)
                if nd_m == 0:
                    recall[:, k, a, m] = 0
                    precision[:, :, k, a, m] = 0
                    scores[:, :, k, a, m] = 0
                    continue
                rc = tp / npig[k, a]
                pr = tp / (fp + tp + spacing)
                recall[:, k, a, m] = rc[:, -1]
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
                for t in range(n_t):
                    inds = np.searchsorted(rc[t], RECALL_THRESHOLDS, side="left")
                    inside = inds < nd_m
                    q = np.zeros(n_r)
                    ss = np.zeros(n_r)
                    q[inside] = pr[t, inds[inside]]
                    ss[inside] = score_sorted[inds[inside]]
                    precision[t, :, k, a, m] = q
                    scores[t, :, k, a, m] = ss
    return CocoResult(iou_type, image_ids, category_ids, max_dets, list(AREA_RANGES), precision, recall, scores)


def _match_bucket(members: np.ndarray, nd: np.ndarray, ng: np.ndarray, offsets: np.ndarray, flat: np.ndarray,
                  d_first: np.ndarray, g_first: np.ndarray, g_ignore: np.ndarray, g_crowd: np.ndarray,
                  thresholds: np.ndarray, matched: np.ndarray, d_ignore: np.ndarray) -> None:
    """COCOeval's greedy matching for a set of groups, one detection rank per step.

    For the r-th detection of every group still having one: among ground truth with IoU ≥ t
    that is not yet taken (crowd regions never are), the non-ignored first; the highest IoU
    wins, the later one on ties (pycocotools replaces on ``>=``).
    """
    width = int(ng[members].max())
    n_a, n_t = g_ignore.shape[0], len(thresholds)
    cols = np.arange(width)
    m_ng = ng[members]
    pad = cols[None, :] < m_ng[:, None]                                      # B x W
    g_index = np.minimum(g_first[members][:, None] + cols[None, :], g_ignore.shape[1] - 1)
    ignore = g_ignore[:, g_index] & pad[None]                                # A x B x W
    crowd = g_crowd[g_index] & pad                                           # B x W
    taken = np.zeros((n_a, n_t, len(members), width), dtype=bool)
    thr = thresholds[None, :, None, None]
    m_nd = nd[members]
    # a detection row with no IoU ≥ the lowest threshold matches nothing: skip it
    row_base = np.r_[0, np.cumsum(nd)[:-1]]
    pair_group = np.repeat(np.arange(len(nd)), nd * ng)
    row = row_base[pair_group] + (np.arange(len(flat)) - offsets[pair_group]) // ng[pair_group]
    has_cand = np.bincount(row[flat >= thresholds[0]], minlength=int(nd.sum())) > 0
    for r in range(int(m_nd.max())):
        n = int(np.count_nonzero(m_nd > r))                                  # members sorted by nd, descending
        sub = np.flatnonzero(has_cand[row_base[members[:n]] + r])            # positions among members
        if not len(sub):
            continue
        groups = members[sub]
        start = offsets[groups] + r * ng[groups]
        vals = np.where(pad[sub], flat[np.minimum(start[:, None] + cols[None, :], len(flat) - 1)], -1.0)  # n x W
        was_taken = taken[:, :, sub]
        ok = (vals[None, None] >= thr) & (~was_taken | crowd[None, None, sub]) & pad[None, None, sub]
        ign = ignore[:, None, sub]
        non = ok & ~ign
        has_non = non.any(-1)
        cand = np.where(has_non[..., None], non, ok & ign)
        found = cand.any(-1)                                                 # A x T x n
        best = np.where(cand, vals[None, None], -np.inf)
        j = width - 1 - np.argmax(best[..., ::-1], axis=-1)                  # the last of the maxima
        a_i, t_i, b_i = np.nonzero(found)
        was_taken[a_i, t_i, b_i, j[found]] = True
        taken[:, :, sub] = was_taken
        dets = d_first[groups] + r                                           # positions in the sorted detections
        matched[:, :, dets] = found
        d_ignore[:, :, dets] = found & np.take_along_axis(np.broadcast_to(ign, found.shape + (width,)),
                                                          j[..., None], -1)[..., 0]
