"""datakit.hashing: perceptual hash orientations, LSH candidates, confirmation, clusters."""

from __future__ import annotations

import numpy as np

from datakit import hashing
from tests.report_data import smooth_picture


def test_hash_variants_match_pixel_orientations():
    import cv2

    rng = np.random.default_rng(0)
    gray = cv2.cvtColor(smooth_picture(rng, 96), cv2.COLOR_RGB2GRAY)
    h = hashing.perceptual_hash(gray)
    assert abs(np.linalg.norm(h) - 1) < 1e-5 and h[0] == 0
    table = hashing.variants(h[None])[0]
    for k in range(8):
        moved = hashing.perceptual_hash(np.ascontiguousarray(hashing.orient_pixels(gray, k)))
        assert float(moved @ table[k]) > 0.999, hashing.VARIANT_NAMES[k]


def test_flat_image_has_no_hash():
    assert not hashing.perceptual_hash(np.full((40, 40), 77, np.uint8)).any()


def _synthetic(n: int, planted: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    d = hashing.HASH_SIDE ** 2
    base = rng.normal(size=(n, d)).astype(np.float32)
    base[:, 0] = 0
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    src = rng.choice(n, planted, replace=False)
    noise = rng.normal(size=(planted, d)).astype(np.float32) * 0.04
    noise[:, 0] = 0
    copies = base[src] + noise
    copies /= np.linalg.norm(copies, axis=1, keepdims=True)
    turn = rng.integers(0, 8, planted)
    copies = hashing.variants(copies)[np.arange(planted), turn]
    return np.vstack([base, copies]), {(int(s), n + i) for i, s in enumerate(src)}


def test_lsh_finds_planted_pairs_in_any_orientation_without_all_pairs():
    hashes, truth = _synthetic(3000, 150)
    candidates = hashing.candidate_pairs(hashes)
    n = len(hashes)
    assert len(candidates) < n * 20  # far from the n^2/2 = 4.6M pairs of a full comparison
    pairs, sims, which = hashing.near_duplicate_pairs(hashes)
    found = {tuple(p) for p in pairs.tolist()}
    assert len(found & truth) >= 0.95 * len(truth)
    assert found <= truth  # random unit vectors in 24 dimensions are never confirmed
    assert (sims >= hashing.NEAR_THRESHOLD).all()


def test_clusters_are_connected_components():
    cluster = hashing.clusters_from_pairs(6, np.array([[0, 1], [1, 2], [4, 5]]))
    assert cluster[0] == cluster[1] == cluster[2] != cluster[3]
    assert cluster[4] == cluster[5] != cluster[0]


def test_find_duplicates_exact_and_near():
    import pandas as pd

    hashes, truth = _synthetic(200, 5, seed=3)
    ids = [f"i{k}" for k in range(len(hashes))]
    content = pd.Series([f"h{k}" for k in range(len(hashes))], index=ids)
    content.iloc[10] = content.iloc[11]  # an exact copy
    hashes[10] = hashes[11]
    found = hashing.find_duplicates(content, hashes)
    assert found.duplicate_count == 6
    groups = {frozenset(g.tolist()) for g in found.groups()}
    assert frozenset({10, 11}) in groups
    assert {frozenset(p) for p in truth} <= groups
    keys = found.group_labels()
    assert keys["i10"] == keys["i11"] and keys["i12"] != keys["i10"]
