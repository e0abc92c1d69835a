"""Boxes and masks: objects per image, per-class counts by split, COCO sizes, aspect, bad boxes, mask coverage.

Sizes follow COCO: small < 32x32, medium < 96x96, large otherwise, by the annotation's ``area``
(the mask area when there is a mask, as COCOeval uses) or else the box area. A box is degenerate
when its width or height is not positive (or missing), out of the image when it extends past an
edge by more than ``EDGE_TOLERANCE`` pixels. Mask coverage is the summed mask area of an image's
objects over the image area (overlaps counted twice, capped at 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from datakit.console import shown
from datakit.manifest import SPLITS
from datakit.report import html
from datakit.report.base import ReportContext, Section, summary

SMALL, MEDIUM = 32 ** 2, 96 ** 2
EDGE_TOLERANCE = 0.5
MAX_LISTED = 20


class Objects(Section):
    name = "objects"
    title = "Boxes and masks"

    def applies(self, ctx: ReportContext) -> bool:
        images = ctx.manifest.images
        return len(ctx.manifest.annotations) > 0 or (
            "semantic_mask" in images.columns and bool(images["semantic_mask"].notna().any()))

    def compute(self, ctx: ReportContext) -> dict[str, Any]:
        from datakit.report.semantic import semantic_statistics

        data = self._objects(ctx) if len(ctx.manifest.annotations) else {"objects": 0, "images": int(len(ctx.ok))}
        data["semantic"] = semantic_statistics(ctx)
        return data

    @staticmethod
    def _objects(ctx: ReportContext) -> dict[str, Any]:
        ok = ctx.ok.set_index("id")
        ann = ctx.manifest.annotations
        ann = ann[ann["image_id"].isin(ok.index)].copy()
        ann["split"] = ann["image_id"].map(ok["split"]).astype("string").fillna("(none)")
        width = ann["image_id"].map(ok["width"]).astype("float64")
        height = ann["image_id"].map(ok["height"]).astype("float64")
        has_box = ann[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].notna().all(axis=1)
        w, h = ann["bbox_w"].astype(float), ann["bbox_h"].astype(float)
        area = ann["area"].astype(float).where(ann["area"].notna(), w * h)
        size = np.where(area < SMALL, "small", np.where(area < MEDIUM, "medium", "large"))
        size = pd.Series(size, index=ann.index).where(area.notna(), "unknown")
        degenerate = has_box & ((w <= 0) | (h <= 0))
        outside = has_box & ~degenerate & (
            (ann["bbox_x"] < -EDGE_TOLERANCE) | (ann["bbox_y"] < -EDGE_TOLERANCE)
            | (ann["bbox_x"] + w > width + EDGE_TOLERANCE) | (ann["bbox_y"] + h > height + EDGE_TOLERANCE))
        per_image = ann.groupby("image_id").size().reindex(ok.index, fill_value=0)
        classes = sorted(set(ann["category"].astype(str)) | set(ctx.manifest.category_names))
        splits = [s for s in SPLITS if (ann["split"] == s).any() or (ok["split"] == s).any()]
        splits += sorted(set(ann["split"]) - set(SPLITS) - {"(none)"})
        if (ann["split"] == "(none)").any():
            splits.append("(none)")
        per_class: dict[str, Any] = {}
        for c in classes:
            sel = ann["category"].astype(str) == c
            per_class[c] = {
                "objects": {s: int((sel & (ann["split"] == s)).sum()) for s in splits} | {"total": int(sel.sum())},
                "images": int(ann.loc[sel, "image_id"].nunique()),
                "sizes": {k: int((sel & (size == k)).sum()) for k in ("small", "medium", "large")},
                "aspect": summary((w / h)[sel & has_box & ~degenerate]),
                "area": summary(area[sel]),
            }
        has_mask = ann["segmentation_kind"].notna()
        coverage = None
        mask_fill = None
        if has_mask.any():
            mask_area = ann.loc[has_mask, "area"].astype(float)
            image_area = (width * height)[has_mask]
            per_image_cov = (mask_area / image_area).groupby(ann.loc[has_mask, "image_id"]).sum().clip(upper=1.0)
            coverage = summary(per_image_cov)
            box_area = (w * h)[has_mask & has_box]
            mask_fill = summary((mask_area[has_box[has_mask].to_numpy()] / box_area).replace(0, np.nan))
        missing = {s: [c for c in classes if per_class[c]["objects"].get(s, 0) == 0]
                   for s in splits if s != "(none)"}
        bad = ann[degenerate | outside]
        bad_list = [{"annotation": str(r.id), "image": str(ok.at[r.image_id, "path"]), "category": str(r.category),
                     "box": [r.bbox_x, r.bbox_y, r.bbox_w, r.bbox_h],
                     "problem": "degenerate" if degenerate[i] else "outside the image"}
                    for i, r in zip(bad.index, bad.itertuples())]
        hist = per_image.clip(upper=10).value_counts().sort_index()
        return {
            "objects": int(len(ann)),
            "images": int(len(ok)),
            "images_without_objects": int((per_image == 0).sum()),
            "objects_per_image": summary(per_image.astype(float)) | {"max": int(per_image.max()) if len(per_image) else 0},
            "objects_per_image_histogram": {("10+" if k == 10 else str(int(k))): int(v) for k, v in hist.items()},
            "splits": splits,
            "classes": per_class,
            "sizes": {k: int((size == k).sum()) for k in ("small", "medium", "large", "unknown") if (size == k).any() or k != "unknown"},
            "degenerate": int(degenerate.sum()),
            "outside": int(outside.sum()),
            "bad_boxes": bad_list,
            "masks": int(has_mask.sum()),
            "mask_coverage": coverage,
            "mask_fill_of_box": mask_fill,
            "missing_from_split": {s: v for s, v in missing.items() if v},
        }

    def metrics(self, data: dict[str, Any]) -> dict[str, float]:
        return {"degenerate_boxes": data.get("degenerate", 0) + data.get("outside", 0)}

    @staticmethod
    def findings(data: dict[str, Any]) -> list[str]:
        out = _semantic_findings(data.get("semantic"))
        if "classes" not in data:  # semantic masks only
            return out
        if data["degenerate"]:
            out.append(f"{data['degenerate']} degenerate box(es) (width or height not positive)")
        if data["outside"]:
            out.append(f"{data['outside']} box(es) extend outside their image")
        if data["images_without_objects"]:
            out.append(f"{data['images_without_objects']} image(s) without any object")
        for s, absent in data["missing_from_split"].items():
            out.append(f"classes with no object in '{s}': {', '.join(absent)}")
        return out

    def render(self, console: Console, data: dict[str, Any]) -> None:
        if "classes" not in data:
            _render_semantic(console, data["semantic"])
            for f in self.findings(data):
                console.print(f"  [yellow]![/] {shown(f)}", highlight=False)
            return
        if data.get("semantic"):
            _render_semantic(console, data["semantic"])
            console.print()
        table = Table(title=f"Boxes and masks: {data['objects']} objects in {data['images']} images")
        table.add_column("class")
        for s in data["splits"]:
            table.add_column(s, justify="right")
        table.add_column("images", justify="right")
        table.add_column("S/M/L", justify="right")
        table.add_column("aspect", justify="right")
        for c, d in data["classes"].items():
            sizes = "/".join(str(d["sizes"][k]) for k in ("small", "medium", "large"))
            aspect = "-" if d["aspect"] is None else f"{d['aspect']['median']:.2f}"
            table.add_row(shown(c), *[str(d["objects"].get(s, 0)) for s in data["splits"]], str(d["images"]), sizes, aspect)
        console.print(table)
        opi = data["objects_per_image"]
        line = f"  objects per image: median {opi['median']:.3g}, mean {opi['mean']:.3g}, max {opi['max']}"
        if data["mask_coverage"]:
            line += f" · mask coverage per image: median {100 * data['mask_coverage']['median']:.1f}%"
        console.print(line, highlight=False)
        for f in self.findings(data):
            console.print(f"  [yellow]![/] {shown(f)}", highlight=False)
        if data["bad_boxes"]:
            listing = Table(title=f"bad boxes ({len(data['bad_boxes'])})", title_style="bold red")
            for col in ("image", "category", "box", "problem"):
                listing.add_column(col, overflow="fold")
            for b in data["bad_boxes"][:MAX_LISTED]:
                listing.add_row(shown(b["image"]), shown(b["category"]), ", ".join(f"{v:g}" for v in b["box"]), shown(b["problem"]))
            console.print(listing)

    def html(self, data: dict[str, Any]) -> str:
        out = _semantic_html(data.get("semantic"))
        if "classes" not in data:
            return out + html.findings(self.findings(data), "Every mask is readable and every split holds every class.")
        rows = [(c, *[d["objects"].get(s, 0) for s in data["splits"]], d["images"],
                 *[d["sizes"][k] for k in ("small", "medium", "large")],
                 "-" if d["aspect"] is None else f"{d['aspect']['median']:.2f}") for c, d in data["classes"].items()]
        out += html.table(["class", *data["splits"], "images", "small", "medium", "large", "aspect"], rows,
                         "objects per class and split; COCO sizes; median box aspect (w/h)")
        hist = data["objects_per_image_histogram"]
        out += html.bar_figure(list(hist), {"images": list(hist.values())}, "objects per image", "images")
        cov = data["mask_coverage"]
        if cov:
            out += html.para(f"Mask coverage per image: median {100 * cov['median']:.1f}% "
                             f"(5-95%: {100 * cov['p5']:.1f}-{100 * cov['p95']:.1f}%).")
        out += html.findings(self.findings(data), "Every box is valid and every split holds every class.")
        if data["bad_boxes"]:
            out += html.table(["image", "category", "box", "problem"],
                              [(b["image"], b["category"], ", ".join(f"{v:g}" for v in b["box"]), b["problem"])
                               for b in data["bad_boxes"][:200]])
        return out


def _semantic_findings(sem: dict[str, Any] | None) -> list[str]:
    if not sem:
        return []
    out = []
    if sem["unreadable"]:
        out.append(f"{sem['unreadable']} semantic mask(s) could not be read: " + "; ".join(sem["unreadable_list"][:3]))
    if sem["unknown_values"]:
        values = ", ".join(f"{v} ({n} images)" for v, n in sem["unknown_values"].items())
        out.append(f"semantic masks hold values that are no category: {values}")
    if sem["images_without_foreground"]:
        out.append(f"{sem['images_without_foreground']} semantic mask(s) are all background")
    for s, absent in sem["missing_from_split"].items():
        out.append(f"classes absent from every semantic mask in '{s}': {', '.join(absent)}")
    return out


def _semantic_rows(sem: dict[str, Any]) -> list[tuple[str, int, str, int]]:
    return [(name, c["value"], f"{100 * c['pixel_share']:.2f}%", c["images"]) for name, c in sem["classes"].items()]


def _render_semantic(console: Console, sem: dict[str, Any] | None) -> None:
    if not sem:
        return
    table = Table(title=f"Semantic masks: {sem['masks']} read; share of labelled pixels per class")
    for col, justify in (("class", "left"), ("value", "right"), ("pixels", "right"), ("images", "right")):
        table.add_column(col, justify=justify)
    for row in _semantic_rows(sem):
        table.add_row(*[shown(v) for v in row])
    console.print(table)
    cov = sem["coverage"]
    if cov:
        console.print(f"  mask coverage per image (non-background pixels): median {100 * cov['median']:.1f}% "
                      f"(5-95%: {100 * cov['p5']:.1f}-{100 * cov['p95']:.1f}%) · ignore {100 * sem['ignore_share']:.2f}%",
                      highlight=False)


def _semantic_html(sem: dict[str, Any] | None) -> str:
    if not sem:
        return ""
    out = html.table(["class", "value", "pixels", "images"], _semantic_rows(sem),
                     f"semantic masks ({sem['masks']} read): share of labelled pixels per class")
    cov = sem["coverage"]
    if cov:
        out += html.para(f"Semantic mask coverage per image (non-background pixels): median {100 * cov['median']:.1f}% "
                         f"(5-95%: {100 * cov['p5']:.1f}-{100 * cov['p95']:.1f}%); ignore {100 * sem['ignore_share']:.2f}%.")
    return out


SECTION = Objects()
