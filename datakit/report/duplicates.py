"""Duplicates and leakage: exact and near-duplicate clusters, clusters that straddle splits, label conflicts.

Counts (the ``--fail-on`` metrics): ``duplicates`` = images that copy another (cluster size - 1,
summed); ``leakage`` = val/test images with an exact or near duplicate in train; ``conflicts`` =
clusters holding more than one label. See datakit/hashing.py for how near duplicates are found.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from datakit.console import shown
from datakit.hashing import describe_variant
from datakit.report import html
from datakit.report.base import ReportContext, Section

MAX_LISTED = 20
MAX_CLUSTERS_KEPT = 1000  # clusters listed in the JSON/HTML; the counts cover all


class Duplicates(Section):
    name = "duplicates"
    title = "Duplicates and leakage"

    def applies(self, ctx: ReportContext) -> bool:
        return len(ctx.ok) > 0

    def compute(self, ctx: ReportContext) -> dict[str, Any]:
        # counted with whole-array operations over the rows in clusters: no Python object per image,
        # which at 100k images and large clusters of look-alikes held gigabytes
        rows = ctx.pixel_rows()
        found = ctx.duplicates()
        members = np.flatnonzero(found.sizes[found.cluster] > 1)
        frame = pd.DataFrame({
            "cluster": found.cluster[members],
            "label": rows["label"].astype("string").to_numpy()[members],
            "split": rows["split"].astype("string").to_numpy()[members],
            "sha": rows["sha256"].astype("string").to_numpy()[members],
        }, index=members)
        groups = frame.groupby("cluster", sort=False)
        has_train = (frame["split"] == "train").fillna(False).groupby(frame["cluster"], sort=False).transform("any")
        leaked = has_train & frame["split"].isin(["val", "test"]).fillna(False)
        conflict_of = groups["label"].nunique() > 1
        exact_images = int(len(frame) - groups["sha"].nunique(dropna=False).sum())
        clusters = self._listed(rows, found, frame, leaked, conflict_of)
        leak_by_split = {str(k): int(v) for k, v in frame.loc[leaked, "split"].value_counts().items()}
        return {
            "images": int(len(rows)),
            "duplicates": found.duplicate_count,
            "exact_duplicates": exact_images,
            "near_duplicates": int(found.duplicate_count - exact_images),
            "clusters": int(conflict_of.size),
            "leakage": int(leaked.sum()),
            "leakage_by_split": leak_by_split,
            "conflicts": int(conflict_of.sum()),
            "has_splits": bool(rows["split"].notna().any()),
            "cluster_list": clusters,
        }

    @staticmethod
    def _listed(rows: pd.DataFrame, found: Any, frame: pd.DataFrame, leaked: pd.Series,
                conflict_of: pd.Series) -> list[dict[str, Any]]:
        """The largest ``MAX_CLUSTERS_KEPT`` clusters (ties: first row first), each with its members."""
        if frame.empty:
            return []
        first = frame.index.to_series().groupby(frame["cluster"], sort=False).min()
        order = pd.DataFrame({"size": found.sizes[first.index.to_numpy()], "first": first.to_numpy()},
                             index=first.index).sort_values(["size", "first"], ascending=[False, True])
        kept = order.index[:MAX_CLUSTERS_KEPT]
        near_rows = np.zeros(len(found.cluster), bool)
        near_rows[np.asarray(found.near_pairs, np.int64).ravel()] = True
        exact_rows = np.zeros(len(found.cluster), bool)
        exact_rows[np.asarray(found.exact_pairs, np.int64).ravel()] = True
        orientations: dict[int, set[str]] = {}
        if len(found.near_pairs):
            pair_cluster = found.cluster[np.asarray(found.near_pairs)[:, 0]]
            wanted = np.isin(pair_cluster, kept.to_numpy())
            for c, v in zip(pair_cluster[wanted].tolist(), np.asarray(found.near_variant)[wanted].tolist()):
                orientations.setdefault(int(c), set()).add(describe_variant(v))
        part = frame[frame["cluster"].isin(kept)].sort_index()
        paths = rows["path"].astype(str).to_numpy()
        out = []
        by_cluster = dict(tuple(part.groupby("cluster", sort=False)))
        for c in kept.tolist():
            g = by_cluster[c]
            idx = g.index.to_numpy()
            labels = [None if pd.isna(x) else str(x) for x in g["label"]]
            splits = [None if pd.isna(x) else str(x) for x in g["split"]]
            kinds = {k for k, on in (("exact", exact_rows[idx].any()), ("near", near_rows[idx].any())) if on}
            out.append({
                "size": len(idx), "kind": "+".join(sorted(kinds)),
                "paths": paths[idx].tolist(), "labels": labels, "splits": splits,
                "conflict": bool(conflict_of[c]), "leaks": paths[idx[leaked[idx].to_numpy()]].tolist(),
                "orientations": sorted(orientations.get(int(c), ())),
            })
        return out

    def metrics(self, data: dict[str, Any]) -> dict[str, float]:
        return {"duplicates": data["duplicates"], "leakage": data["leakage"], "conflicts": data["conflicts"]}

    @staticmethod
    def findings(data: dict[str, Any]) -> list[str]:
        out = []
        if data["duplicates"]:
            out.append(f"{data['duplicates']} duplicate image(s) in {data['clusters']} cluster(s): "
                       f"{data['exact_duplicates']} exact, {data['near_duplicates']} near")
        if data["leakage"]:
            by = ", ".join(f"{s} {n}" for s, n in sorted(data["leakage_by_split"].items()))
            out.append(f"leakage: {data['leakage']} val/test image(s) have a duplicate in train ({by}); "
                       "their scores measure memory, not generalization: re-split with `datakit split`")
        if data["conflicts"]:
            out.append(f"label conflicts: {data['conflicts']} cluster(s) hold the same picture under different labels")
        return out

    def render(self, console: Console, data: dict[str, Any]) -> None:
        console.print(f"[bold]Duplicates and leakage[/]: {data['duplicates']} duplicates "
                      f"({data['exact_duplicates']} exact, {data['near_duplicates']} near) in {data['clusters']} "
                      f"clusters · leakage {data['leakage'] if data['has_splits'] else '- (no splits)'} · "
                      f"label conflicts {data['conflicts']}", highlight=False)
        for line in self.findings(data):
            console.print(f"  [red]![/] {shown(line)}", highlight=False)
        if data["cluster_list"]:
            table = Table(title="duplicate clusters (largest first)")
            table.add_column("kind")
            table.add_column("images", overflow="fold")
            table.add_column("labels")
            table.add_column("splits")
            table.add_column("problem")
            for c in data["cluster_list"][:MAX_LISTED]:
                problem = ", ".join(p for p, on in (("conflict", c["conflict"]), ("leak", bool(c["leaks"]))) if on)
                table.add_row(c["kind"], shown("\n".join(c["paths"][:6]) + (" ..." if c["size"] > 6 else "")),
                              shown(_joined(c["labels"])), shown(_joined(c["splits"])), problem)
            if len(data["cluster_list"]) > MAX_LISTED:
                table.caption = f"... and {data['clusters'] - MAX_LISTED} more (--json lists {MAX_CLUSTERS_KEPT})"
            console.print(table)

    def html(self, data: dict[str, Any]) -> str:
        rows = [("duplicate images", data["duplicates"]), ("exact", data["exact_duplicates"]),
                ("near", data["near_duplicates"]), ("clusters", data["clusters"]),
                ("leakage (val/test images with a copy in train)", data["leakage"] if data["has_splits"] else "no splits"),
                ("label conflicts", data["conflicts"])]
        out = html.table(["", ""], rows)
        out += html.findings(self.findings(data), "No duplicates, no leakage, no label conflicts.")
        if data["cluster_list"]:
            out += html.table(
                ["kind", "images", "labels", "splits", "problem"],
                [(c["kind"], " | ".join(c["paths"][:8]) + (" ..." if c["size"] > 8 else ""),
                  _joined(c["labels"]), _joined(c["splits"]),
                  ", ".join(p for p, on in (("conflict", c["conflict"]), ("leak", bool(c["leaks"]))) if on))
                 for c in data["cluster_list"][:200]])
        return out


def _joined(values: list[str | None]) -> str:
    """A cluster's distinct labels or splits for a table cell; '-' when its images have none
    (object and unlabeled manifests), where str() would print Python's None."""
    return ", ".join(sorted({v for v in values if v is not None})) or "-"


SECTION = Duplicates()
