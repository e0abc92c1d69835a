"""Content hashes, perceptual hashes and duplicate clusters (used by balance-report and split).

- **Exact duplicates**: equal SHA-256 of the file bytes (the manifest's ``sha256`` column).
- **Near duplicates**: every image gets a perceptual hash, the low-frequency 5x5 block of the
  2-D DCT of its 32x32 grey thumbnail, without the DC term (so a brightness shift does not move
  it), weighted by frequency and scaled to unit length (nor does a contrast change). A horizontal flip, a vertical flip
  and a transpose act on DCT coefficients by sign changes and a transpose, so all eight
  flips/90-degree rotations of a hash are computed from the hash itself, without re-reading pixels.
- **No all-pairs comparison**: each hash is brought to a canonical orientation (the one of its
  eight variants whose first horizontal and vertical coefficients are positive and ordered; near
  ties keep every plausible variant), then indexed by LSH bands of random-hyperplane bits
  (SimHash): two hashes land in one bucket of some band with a probability that falls steeply
  with the angle between them. Bits per band grow with log2(images), so unrelated pairs sharing a
  bucket stay linear in the number of images, not its square; a huge bucket (many look-alikes)
  is compared only within a sliding window of a sorted order.
- **Confirmation**: every candidate pair is re-scored with the full hashes over all eight
  orientations (cosine similarity) and kept only above ``threshold``, then its 8x8 colour
  thumbnails, oriented alike, must agree (``colour_residual``); confirmed pairs are joined into
  clusters (connected components).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

HASH_SIDE = 5  # DCT coefficients per axis kept in the perceptual hash (low frequencies survive crops)
THUMB = 8  # colour thumbnail side used to confirm a candidate pair
THUMB_SIDE = 32  # grey thumbnail the DCT is taken of
NEAR_THRESHOLD = 0.95  # cosine similarity (best orientation) for a confirmed near duplicate
COLOUR_TOLERANCE = 0.4  # confirmation: colour-thumbnail residual relative to the picture's own variation
_TIE = 0.04  # canonical-orientation margin: variants this close to the boundary are indexed too
_CANDIDATE_RECALL = 0.98  # chance that a pair exactly at the threshold shares at least one band
_MAX_BUCKET = 48  # larger buckets are compared in a sliding window of this size
_SEED = 1729


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# perceptual hash


# photos have amplitude ~ 1/frequency: weighting by frequency lets every coefficient count, not
# just the first two (which alone make unrelated pictures with the same gradient look alike)
_FREQUENCY_WEIGHT = np.hypot(*np.meshgrid(np.arange(HASH_SIDE), np.arange(HASH_SIDE), indexing="ij")).astype(np.float32)


def perceptual_hash(gray: np.ndarray) -> np.ndarray:
    """The unit-length low-frequency DCT hash (HASH_SIDE**2 float32, DC = 0) of a grey image.

    All zeros for a flat image (nothing to compare).
    """
    import cv2

    thumb = cv2.resize(gray.astype(np.float32), (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA)
    coeffs = cv2.dct(thumb)[:HASH_SIDE, :HASH_SIDE].copy()
    coeffs[0, 0] = 0.0
    # the grey level varies by less than ~1 on average: a flat picture, whose direction is noise
    if float(np.linalg.norm(coeffs)) < 0.5 * THUMB_SIDE:
        return np.zeros(HASH_SIDE * HASH_SIDE, np.float32)
    coeffs *= _FREQUENCY_WEIGHT
    return (coeffs / np.linalg.norm(coeffs)).astype(np.float32).ravel()


def colour_thumbnail(image_bgr: np.ndarray) -> np.ndarray:
    """THUMB x THUMB x 3 uint8 thumbnail (area average), flattened: the confirmation signature."""
    import cv2

    return cv2.resize(image_bgr, (THUMB, THUMB), interpolation=cv2.INTER_AREA).reshape(-1)


def orient_pixels(image: np.ndarray, variant: int) -> np.ndarray:
    """The pixel operation whose perceptual hash is ``variants(hash)[variant]`` (for H x W [x C] arrays)."""
    flip = variant % 4
    if flip in (1, 3):
        image = image[:, ::-1]
    if flip in (2, 3):
        image = image[::-1]
    if variant >= 4:
        image = np.swapaxes(image, 0, 1)
    return image


def _variant_tables(side: int = HASH_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """(index, sign) arrays of shape (8, side*side): variant k of h is ``h[index[k]] * sign[k]``.

    Variants are the dihedral group: identity, hflip, vflip, rot180, transpose, and the
    transposes of the flips (the 90/270-degree rotations and the anti-transpose).
    """
    v, u = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    flat = v * side + u
    hsign = np.where(u % 2 == 1, -1.0, 1.0)  # horizontal flip negates odd horizontal frequencies
    vsign = np.where(v % 2 == 1, -1.0, 1.0)
    indices, signs = [], []
    for transpose in (False, True):
        for sign in (np.ones_like(hsign), hsign, vsign, hsign * vsign):
            idx = flat.T if transpose else flat
            sgn = sign.T if transpose else sign
            indices.append(idx.ravel())
            signs.append(sgn.ravel())
    return np.array(indices), np.array(signs, dtype=np.float32)


_INDEX, _SIGN = _variant_tables()
VARIANT_NAMES = ("identity", "hflip", "vflip", "rot180", "transpose", "rot90", "rot270", "anti-transpose")


def variants(hashes: np.ndarray, flips_only: bool = False) -> np.ndarray:
    """All orientations of each hash: (n, 8, d) (or (n, 2, d), identity and hflip, if ``flips_only``)."""
    count = 2 if flips_only else 8
    return hashes[:, _INDEX[:count]] * _SIGN[None, :count]


def _canonical(hashes: np.ndarray, flips_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """(row, variant) pairs to index: the canonical orientation of each hash, plus near ties."""
    var = variants(hashes, flips_only)
    a = var[:, :, 1]  # first horizontal frequency: left/right balance
    b = var[:, :, HASH_SIDE]  # first vertical frequency: top/bottom balance
    if flips_only:
        score = a
    else:
        score = np.minimum(np.minimum(a, b), a - b)
    keep = score >= -_TIE
    keep[score.max(axis=1) < -_TIE] = True  # never drop an image (cannot happen for unit vectors)
    rows, which = np.nonzero(keep)
    return rows, which


# ---------------------------------------------------------------------------------------------
# candidate pairs by LSH bands


def _bucket_pairs(keys: np.ndarray, rows: np.ndarray, order_value: np.ndarray) -> np.ndarray:
    """Pairs (i, j) of rows sharing a key; huge buckets only within a sliding window."""
    order = np.lexsort((order_value, keys))
    keys, rows = keys[order], rows[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    multi = sizes > 1
    starts, sizes = starts[multi], sizes[multi]
    if not len(starts):
        return np.empty((0, 2), np.int64)
    out = []
    # pair every member with the next `offset` members of its bucket, offset = 1 .. window
    window = min(int(sizes.max()) - 1, _MAX_BUCKET)
    bucket_end = np.repeat(starts + sizes, sizes)
    members = _ranges(starts, sizes)
    for offset in range(1, window + 1):
        partner = members + offset
        ok = partner < bucket_end
        if not ok.any():
            break
        out.append(np.stack([rows[members[ok]], rows[partner[ok]]], axis=1))
    return np.concatenate(out) if out else np.empty((0, 2), np.int64)


def _ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    total = int(sizes.sum())
    offsets = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.repeat(starts, sizes) + offsets


def band_plan(count: int, threshold: float = NEAR_THRESHOLD) -> tuple[int, int]:
    """(bands, bits per band) for ``count`` indexed hashes.

    In 25 dimensions the angles between unrelated hashes spread widely, so one more bit only
    removes about a third of the unrelated pairs sharing a bucket: 1.6 bits per doubling of
    ``count`` keeps them about constant per hash. The number of bands then gives a pair at
    cosine ``threshold`` a ``_CANDIDATE_RECALL`` chance to share at least one band.
    """
    bits = int(np.clip(round(1.6 * np.log2(max(count, 2)) - 3), 16, 32))
    same_bit = 1.0 - float(np.arccos(np.clip(threshold, -1.0, 1.0))) / np.pi
    per_band = same_bit ** bits
    bands = int(np.clip(np.ceil(np.log(1 - _CANDIDATE_RECALL) / np.log1p(-per_band)), 8, 128))
    return bands, bits


def band_candidates(hashes: np.ndarray, flips_only: bool = False, threshold: float = NEAR_THRESHOLD,
                    seed: int = _SEED) -> Iterator[np.ndarray]:
    """Candidate pairs (i < j, unique within the band) of one LSH band at a time.

    One band at a time so that a caller can confirm and drop them before the next band: memory
    stays at one band's candidates (at most ``_MAX_BUCKET`` per hash), never all bands' at once.
    """
    n, d = hashes.shape
    valid = np.flatnonzero(np.abs(hashes).sum(axis=1) > 0)
    if n < 2 or len(valid) < 2:
        return
    rows, which = _canonical(hashes[valid], flips_only)
    canon = hashes[valid[rows]][np.arange(len(rows))[:, None], _INDEX[which]] * _SIGN[which]
    rows = valid[rows]
    # hyperplanes through the mean, not the origin: canonical hashes share a direction (their
    # first coefficients are positive), which would bias every bit and crowd the buckets
    canon -= canon.mean(axis=0, keepdims=True)
    bands, band_bits = band_plan(len(canon), threshold)
    rng = np.random.default_rng(seed)
    weights = (1 << np.arange(band_bits, dtype=np.int64))
    order_value = canon @ rng.standard_normal(d).astype(np.float32)
    for _ in range(bands):
        planes = rng.standard_normal((d, band_bits)).astype(np.float32)
        keys = ((canon @ planes) > 0).astype(np.int64) @ weights
        pairs = _bucket_pairs(keys, rows, order_value)
        pairs = np.sort(pairs[pairs[:, 0] != pairs[:, 1]], axis=1)
        codes = np.unique(pairs[:, 0] * n + pairs[:, 1])
        yield np.stack([codes // n, codes % n], axis=1)


def candidate_pairs(hashes: np.ndarray, flips_only: bool = False, threshold: float = NEAR_THRESHOLD,
                    seed: int = _SEED) -> np.ndarray:
    """Unique pairs (i < j) of rows whose canonical hashes share at least one LSH band key."""
    n = len(hashes)
    codes = [p[:, 0] * n + p[:, 1] for p in band_candidates(hashes, flips_only, threshold, seed)]
    if not codes:
        return np.empty((0, 2), np.int64)
    codes = np.unique(np.concatenate(codes))
    return np.stack([codes // n, codes % n], axis=1)


def pair_similarity(hashes: np.ndarray, pairs: np.ndarray, flips_only: bool = False,
                    chunk: int = 50_000) -> tuple[np.ndarray, np.ndarray]:
    """(best cosine similarity over orientations, index of that orientation) for each pair."""
    best = np.empty(len(pairs), np.float32)
    which = np.empty(len(pairs), np.int8)
    for start in range(0, len(pairs), chunk):
        part = pairs[start:start + chunk]
        a = hashes[part[:, 0]]
        b = variants(hashes[part[:, 1]], flips_only)
        sims = np.einsum("nd,nkd->nk", a, b)
        which[start:start + chunk] = sims.argmax(axis=1)
        best[start:start + chunk] = sims.max(axis=1)
    return best, which


def colour_residual(thumbs: np.ndarray, pairs: np.ndarray, which: np.ndarray) -> np.ndarray:
    """How far the colour thumbnails of each pair differ once oriented alike and brightness-aligned.

    Both are centred on their mean grey level, so a brightness shift cancels while a change of
    colour does not (two different pictures with the same layout seldom share their colours); the
    RMS difference is divided by the pictures' RMS variation: 0 is identical, about 1 unrelated.
    """
    a = thumbs[pairs[:, 0]].reshape(-1, THUMB, THUMB, 3).astype(np.float32)
    b = thumbs[pairs[:, 1]].reshape(-1, THUMB, THUMB, 3).astype(np.float32)
    oriented = np.empty_like(b)
    for k in range(8):
        sel = which == k
        if sel.any():
            oriented[sel] = _orient_batch(b[sel], k)
    a -= a.mean(axis=(1, 2, 3), keepdims=True)
    oriented -= oriented.mean(axis=(1, 2, 3), keepdims=True)
    diff = np.sqrt(((a - oriented) ** 2).mean(axis=(1, 2, 3)))
    scale = np.sqrt((a ** 2).mean(axis=(1, 2, 3))) + np.sqrt((oriented ** 2).mean(axis=(1, 2, 3)))
    return diff / np.maximum(scale / 2, 4.0)


def _orient_batch(batch: np.ndarray, variant: int) -> np.ndarray:
    """orient_pixels over a batch (N, H, W, C)."""
    flip = variant % 4
    if flip in (1, 3):
        batch = batch[:, :, ::-1]
    if flip in (2, 3):
        batch = batch[:, ::-1]
    if variant >= 4:
        batch = np.swapaxes(batch, 1, 2)
    return batch


def near_duplicate_pairs(hashes: np.ndarray, thumbs: np.ndarray | None = None, threshold: float = NEAR_THRESHOLD,
                         tolerance: float = COLOUR_TOLERANCE, flips_only: bool = False, chunk: int = 50_000
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Confirmed pairs (i < j), their similarity and the orientation that matched.

    A candidate is confirmed when its perceptual hashes agree (cosine >= ``threshold`` in the
    best orientation) and, given ``thumbs``, its colour thumbnails agree in that orientation.
    Candidates are confirmed band by band and ``chunk`` pairs at a time, so memory holds one
    band's candidates and the confirmed pairs, never every candidate of every band.
    """
    n = len(hashes)
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    seen = np.empty(0, np.int64)  # codes already confirmed: not scored again in a later band
    for band in band_candidates(hashes, flips_only, threshold):
        codes = band[:, 0] * n + band[:, 1]
        if len(seen):
            band = band[~np.isin(codes, seen, assume_unique=True)]
        new = []
        for start in range(0, len(band), chunk):
            pairs = band[start:start + chunk]
            sims, which = pair_similarity(hashes, pairs, flips_only)
            keep = sims >= threshold
            pairs, sims, which = pairs[keep], sims[keep], which[keep]
            if thumbs is not None and len(pairs):
                keep = colour_residual(thumbs, pairs, which) <= tolerance
                pairs, sims, which = pairs[keep], sims[keep], which[keep]
            if len(pairs):
                found.append((pairs, sims, which))
                new.append(pairs[:, 0] * n + pairs[:, 1])
        if new:
            seen = np.union1d(seen, np.concatenate(new))
    if not found:
        return np.empty((0, 2), np.int64), np.empty(0, np.float32), np.empty(0, np.int8)
    pairs = np.concatenate([f[0] for f in found])
    sims = np.concatenate([f[1] for f in found])
    which = np.concatenate([f[2] for f in found])
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    return pairs[order], sims[order], which[order]


# ---------------------------------------------------------------------------------------------
# clusters


def clusters_from_pairs(n: int, pairs: np.ndarray) -> np.ndarray:
    """A cluster id per row (connected components); rows with no pair get their own id."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not len(pairs):
        return np.arange(n)
    graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


@dataclass
class DuplicateClusters:
    """Duplicate structure of a set of images (rows in the order given)."""

    ids: list[str]
    cluster: np.ndarray  # per row; rows that duplicate nothing are alone in their cluster
    exact_pairs: np.ndarray  # (k, 2) row pairs with equal content hash (consecutive members)
    near_pairs: np.ndarray  # (m, 2) confirmed near-duplicate row pairs
    near_similarity: np.ndarray
    near_variant: np.ndarray
    sizes: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.sizes = np.bincount(self.cluster, minlength=int(self.cluster.max()) + 1 if len(self.cluster) else 0)

    @property
    def duplicate_count(self) -> int:
        """Images that are a copy of another: sum over clusters of (size - 1)."""
        return int((self.sizes[self.sizes > 1] - 1).sum())

    def groups(self) -> list[np.ndarray]:
        """Row indices of every cluster with more than one member, largest first."""
        order = np.argsort(self.cluster, kind="stable")
        sorted_ids = self.cluster[order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
        parts = np.split(order, starts[1:])
        multi = [p for p in parts if len(p) > 1]
        return sorted(multi, key=lambda p: (-len(p), int(p.min())))

    def group_labels(self) -> pd.Series:
        """Cluster id per image id: the group key a splitter needs so clusters never straddle splits."""
        return pd.Series([f"dup{c}" for c in self.cluster], index=self.ids, dtype="string")


def find_duplicates(content_hashes: pd.Series, stats: pd.DataFrame | np.ndarray, threshold: float = NEAR_THRESHOLD,
                    flips_only: bool = False, show_progress: bool = False,
                    cache: Path | None = None) -> DuplicateClusters:
    """Exact (equal content hash) and near (perceptual hash) duplicate clusters.

    ``content_hashes`` is indexed by image id; ``stats`` holds the perceptual hashes in the same
    row order: an (n, d) array or a frame with columns ``ph0 .. ph{d-1}``. ``cache`` (a file)
    keeps the confirmed near pairs keyed by every content hash in order and the search settings,
    so a second run over the same files skips the search (the hashes are a function of content).
    """
    ids = [str(i) for i in content_hashes.index]
    n = len(ids)
    hashes = phash_matrix(stats)
    thumbs = thumb_matrix(stats)
    codes = pd.factorize(content_hashes.fillna(pd.Series([f"row{i}" for i in range(n)], index=content_hashes.index)))[0]
    order = np.argsort(codes, kind="stable")
    same = codes[order][1:] == codes[order][:-1]
    exact = np.stack([order[:-1][same], order[1:][same]], axis=1) if n > 1 else np.empty((0, 2), np.int64)
    # one representative per content hash goes through the near-duplicate search
    reps = np.flatnonzero(np.r_[True, ~same]) if n else np.empty(0, np.int64)
    rep_rows = order[reps] if n else reps
    key = None
    if cache is not None and content_hashes.notna().all():
        key = _near_key(content_hashes.to_numpy()[rep_rows], threshold, flips_only, thumbs is not None)
    found = _read_near(cache, key) if key is not None else None
    if found is None:
        found = near_duplicate_pairs(hashes[rep_rows], None if thumbs is None else thumbs[rep_rows],
                                     threshold, flips_only=flips_only)
        if key is not None:
            _write_near(cache, key, found)
    near, sims, which = found
    near = rep_rows[near] if len(near) else near.reshape(0, 2)
    all_pairs = np.concatenate([exact.reshape(-1, 2), near.reshape(-1, 2)]).astype(np.int64)
    cluster = clusters_from_pairs(n, all_pairs)
    return DuplicateClusters(ids, cluster, exact, near, sims, which)


NEAR_CACHE_VERSION = 1


def _near_key(content: np.ndarray, threshold: float, flips_only: bool, colour: bool) -> str:
    digest = hashlib.sha256()
    digest.update(repr((NEAR_CACHE_VERSION, HASH_SIDE, THUMB, threshold, COLOUR_TOLERANCE, flips_only, colour,
                        _MAX_BUCKET, _CANDIDATE_RECALL, _SEED)).encode())
    for value in content.tolist():
        digest.update(str(value).encode("utf-8") + b"\n")
    return digest.hexdigest()


def _read_near(path: Path | None, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    if path is None or not Path(path).exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            return data["pairs"].astype(np.int64).reshape(-1, 2), data["sims"], data["which"]
    except Exception:  # noqa: BLE001 - a damaged cache is only a cache: search again
        return None


def _write_near(path: Path | None, key: str, found: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    if path is None:
        return
    from datakit.atomic import write_atomic

    pairs, sims, which = found

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, key=np.array(key), pairs=pairs, sims=sims, which=which)

    try:
        write_atomic(path, write)
    except OSError:
        pass  # optional, like the statistics cache


def phash_matrix(stats: pd.DataFrame | np.ndarray) -> np.ndarray:
    if isinstance(stats, np.ndarray):
        return stats.astype(np.float32)
    columns = [f"ph{i}" for i in range(HASH_SIDE * HASH_SIDE)]
    return stats[columns].to_numpy(np.float32)


THUMB_COLUMNS = tuple(f"th{i}" for i in range(THUMB * THUMB * 3))


def thumb_matrix(stats: pd.DataFrame | np.ndarray) -> np.ndarray | None:
    if isinstance(stats, np.ndarray) or not set(THUMB_COLUMNS) <= set(stats.columns):
        return None
    return stats[list(THUMB_COLUMNS)].to_numpy(np.uint8)  # 192 bytes per image; pairs are cast in chunks


def describe_variant(index: int) -> str:
    return VARIANT_NAMES[int(index)]


