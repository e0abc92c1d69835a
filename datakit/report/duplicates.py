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
        rows = ctx.pixel_rows()
        found = ctx.duplicates()
        paths = rows["path"].astype(str).to_numpy()
        labels = rows["label"].astype("string").to_numpy(dtype=object, na_value=None)
        splits = rows["split"].astype("string").to_numpy(dtype=object, na_value=None)
        orientations: dict[int, set[str]] = {}
        for (i, _), v in zip(found.near_pairs.tolist(), found.near_variant.tolist()):
            orientations.setdefault(int(found.cluster[i]), set()).add(describe_variant(v))
        near_rows = set(np.asarray(found.near_pairs).ravel().tolist())
        exact_rows = set(np.asarray(found.exact_pairs).ravel().tolist())
        clusters, leaked, conflicts = [], [], 0
        exact_images = 0
        for group in found.groups():
            members = sorted(group.tolist())
            member_labels = sorted({labels[i] for i in members if labels[i] is not None})
            member_splits = [splits[i] for i in members]
            has_train = "train" in member_splits
            leaks = [paths[i] for i in members if has_train and splits[i] in ("val", "test")]
            leaked.extend((paths[i], splits[i]) for i in members if has_train and splits[i] in ("val", "test"))
            conflict = len(member_labels) > 1
            conflicts += conflict
            kinds = set()
            if any(i in exact_rows for i in members):
                kinds.add("exact")
            if any(i in near_rows for i in members):
                kinds.add("near")
            exact_images += len(members) - len({rows["sha256"].iloc[i] for i in members})
            matches = sorted(orientations.get(int(found.cluster[members[0]]), ()))
            clusters.append({
                "size": len(members), "kind": "+".join(sorted(kinds)),
                "paths": [paths[i] for i in members], "labels": [labels[i] for i in members],
                "splits": member_splits, "conflict": conflict, "leaks": leaks,
                "orientations": matches,
            })
        leak_by_split: dict[str, int] = {}
        for _, split in leaked:
            leak_by_split[split] = leak_by_split.get(split, 0) + 1
        return {
            "images": int(len(rows)),
            "duplicates": found.duplicate_count,
            "exact_duplicates": int(exact_images),
            "near_duplicates": int(found.duplicate_count - exact_images),
            "clusters": len(clusters),
            "leakage": len(leaked),
            "leakage_by_split": leak_by_split,
            "conflicts": int(conflicts),
            "has_splits": bool(pd.Series(splits).notna().any()),
            "cluster_list": clusters[:MAX_CLUSTERS_KEPT],
        }

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
            console.print(f"  [red]![/] {line}", highlight=False)
        if data["cluster_list"]:
            table = Table(title="duplicate clusters (largest first)")
            table.add_column("kind")
            table.add_column("images", overflow="fold")
            table.add_column("labels")
            table.add_column("splits")
            table.add_column("problem")
            for c in data["cluster_list"][:MAX_LISTED]:
                problem = ", ".join(p for p, on in (("conflict", c["conflict"]), ("leak", bool(c["leaks"]))) if on)
                table.add_row(c["kind"], "\n".join(c["paths"][:6]) + (" ..." if c["size"] > 6 else ""),
                              ", ".join(sorted({str(x) for x in c["labels"]})),
                              ", ".join(sorted({str(x) for x in c["splits"]})), problem)
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
                  ", ".join(sorted({str(x) for x in c["labels"]})), ", ".join(sorted({str(x) for x in c["splits"]})),
                  ", ".join(p for p, on in (("conflict", c["conflict"]), ("leak", bool(c["leaks"]))) if on))
                 for c in data["cluster_list"][:200]])
        return out


SECTION = Duplicates()
