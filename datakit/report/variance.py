"""Variance: per-class distributions of size and pixel statistics, image issues, low-variance classes.

Image issues follow CleanVision's list (dark, light, blurry, low information, odd aspect, odd
size; plus grayscale in a colour set and files OpenCV cannot decode), with fixed, documented
thresholds on statistics measured on the image scaled to fit 256 px (see report/pixels.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from datakit.console import shown
from datakit.hashing import phash_matrix
from datakit.report import html
from datakit.report.base import ReportContext, Section, summary

PROPERTIES = ("width", "height", "aspect", "brightness", "contrast", "saturation", "sharpness", "entropy")
# thresholds: grey levels are 0..255, sharpness is the variance of the Laplacian, entropy in bits
DARK_BELOW = 40.0
LIGHT_ABOVE = 215.0
BLURRY_BELOW = 25.0  # only for images with some contrast; flat ones are "low information"
LOW_INFORMATION_BELOW = 2.5
ODD_ASPECT_BELOW = 0.4  # min(w/h, h/w)
ODD_SIZE_FACTOR = 4.0  # side sqrt(w*h) this many times smaller or larger than the median side
LOW_VARIANCE_DIVERSITY = 0.15  # 1 - |mean unit perceptual hash|: 0 when every image is the same picture
ISSUES = ("dark", "light", "blurry", "low_information", "odd_aspect", "odd_size", "grayscale", "undecodable")
MAX_LISTED = 20
MAX_ISSUES_KEPT = 1000  # images listed in the JSON/HTML; the counts cover all


def pixel_frame(ctx: ReportContext) -> pd.DataFrame:
    """Pixel rows joined with their statistics: label, split, width, height, aspect, format, stats."""
    rows = ctx.pixel_rows()
    stats = ctx.stats()
    frame = pd.DataFrame({
        "id": rows["id"].astype(str), "path": rows["path"].astype(str),
        "label": rows["label"].astype("string"), "split": rows["split"].astype("string"),
        "width": rows["width"].astype("float64"), "height": rows["height"].astype("float64"),
        "format": rows["format"].astype("string"), "file_size": rows["file_size"].astype("float64"),
    }, index=rows.index)
    frame["aspect"] = frame["width"] / frame["height"]
    for column in ("brightness", "contrast", "saturation", "sharpness", "entropy", "colour_spread", "grayscale", "error"):
        frame[column] = stats[column]
    return frame


def image_issues(frame: pd.DataFrame) -> pd.DataFrame:
    """One boolean column per issue, aligned with ``frame``."""
    contrast = frame["contrast"].astype("float64")
    side = np.sqrt(frame["width"] * frame["height"])
    median_side = float(np.nanmedian(side)) if len(side) else 0.0
    low_info = frame["entropy"] < LOW_INFORMATION_BELOW
    grayscale = frame["grayscale"].fillna(False).astype(bool)
    mostly_colour = (~grayscale).mean() >= 0.5 if len(frame) else False
    issues = pd.DataFrame({
        "dark": frame["brightness"] < DARK_BELOW,
        "light": frame["brightness"] > LIGHT_ABOVE,
        "blurry": (frame["sharpness"] < BLURRY_BELOW) & (contrast >= 10) & ~low_info,
        "low_information": low_info,
        "odd_aspect": np.minimum(frame["aspect"], 1 / frame["aspect"]) < ODD_ASPECT_BELOW,
        "odd_size": (side * ODD_SIZE_FACTOR < median_side) | (side > median_side * ODD_SIZE_FACTOR),
        # a grey picture is an issue only in a set that is mostly colour
        "grayscale": grayscale & bool(mostly_colour),
        "undecodable": frame["error"].notna(),
    }, index=frame.index)
    return issues.fillna(False).astype(bool)


def _diversity(hashes: np.ndarray) -> float | None:
    usable = hashes[np.abs(hashes).sum(axis=1) > 0]
    if len(usable) < 2:
        return None
    return float(1.0 - np.linalg.norm(usable.mean(axis=0)))


class Variance(Section):
    name = "variance"
    title = "Variance and image issues"

    def applies(self, ctx: ReportContext) -> bool:
        return len(ctx.ok) > 0

    def compute(self, ctx: ReportContext) -> dict[str, Any]:
        frame = pixel_frame(ctx)
        issues = image_issues(frame)
        hashes = phash_matrix(ctx.stats())
        labels = frame["label"].fillna("(none)").astype(str)
        classes: dict[str, Any] = {}
        for label in sorted(labels.unique()):
            mask = (labels == label).to_numpy()
            part = frame[mask]
            classes[label] = {
                "images": int(mask.sum()),
                "grayscale_share": float(part["grayscale"].fillna(False).astype(bool).mean()),
                "diversity": _diversity(hashes[mask]),
                **{p: summary(part[p]) for p in PROPERTIES},
            }
        diversities = [c["diversity"] for c in classes.values() if c["diversity"] is not None]
        low_variance = []
        for label, c in classes.items():
            d = c["diversity"]
            if d is None or c["images"] < 5:
                continue
            others = [x for x in diversities if x is not d]
            reference = float(np.median(others)) if others else d
            if d < LOW_VARIANCE_DIVERSITY or (len(classes) > 1 and d < 0.5 * reference):
                low_variance.append({"class": label, "diversity": d, "median_of_others": reference})
        flagged = issues.any(axis=1)
        shown = flagged.to_numpy().nonzero()[0][:MAX_ISSUES_KEPT]  # the counts cover all of them
        flags = issues.to_numpy()[shown]
        listed = [{"path": path, "label": None if pd.isna(label) else str(label),
                   "issues": [name for name, on in zip(ISSUES, row) if on]}
                  for path, label, row in zip(frame["path"].to_numpy()[shown], frame["label"].to_numpy()[shown],
                                              flags.tolist())]
        return {
            "images": int(len(frame)),
            "classes": classes,
            "issue_counts": {name: int(issues[name].sum()) for name in ISSUES},
            "images_with_issues": int(flagged.sum()),
            "issue_images": listed,
            "low_variance": low_variance,
            "thresholds": {"dark_below": DARK_BELOW, "light_above": LIGHT_ABOVE, "blurry_below": BLURRY_BELOW,
                           "low_information_below": LOW_INFORMATION_BELOW, "odd_aspect_below": ODD_ASPECT_BELOW,
                           "odd_size_factor": ODD_SIZE_FACTOR, "low_variance_diversity": LOW_VARIANCE_DIVERSITY},
            "decoded": int(ctx.stats().attrs.get("decoded", 0)),
            "cache": ctx.stats().attrs.get("cache"),
        }

    def metrics(self, data: dict[str, Any]) -> dict[str, float]:
        return {"issues": data["images_with_issues"]}

    @staticmethod
    def findings(data: dict[str, Any]) -> list[str]:
        out = [f"{n} image(s) {name.replace('_', ' ')}" for name, n in data["issue_counts"].items() if n]
        for low in data["low_variance"]:
            out.append(f"class '{low['class']}' has little variance: diversity {low['diversity']:.2f} "
                       f"(other classes {low['median_of_others']:.2f}); its images look alike")
        return out

    def render(self, console: Console, data: dict[str, Any]) -> None:
        table = Table(title="Variance per class (medians; --json and --html give 5-95% ranges)")
        table.add_column("class")
        table.add_column("n", justify="right")
        for p in ("width", "height", "bright", "contrast", "satur.", "sharp"):
            table.add_column(p, justify="right")
        table.add_column("grey", justify="right")
        table.add_column("diversity", justify="right")
        for label, c in data["classes"].items():
            cells = [_median(c[p]) for p in ("width", "height", "brightness", "contrast", "saturation", "sharpness")]
            diversity = "-" if c["diversity"] is None else f"{c['diversity']:.2f}"
            table.add_row(shown(label), str(c["images"]), *cells, f"{100 * c['grayscale_share']:.0f}%", diversity)
        console.print(table)
        counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in data["issue_counts"].items())
        console.print(f"  image issues: {counts}", highlight=False)
        for line in self.findings(data)[len([n for n in data["issue_counts"].values() if n]):]:
            console.print(f"  [yellow]![/] {shown(line)}", highlight=False)
        rows = data["issue_images"]
        if rows:
            listing = Table(title=f"images with issues ({data['images_with_issues']})", title_style="bold yellow")
            listing.add_column("path", overflow="fold")
            listing.add_column("label")
            listing.add_column("issues")
            for row in rows[:MAX_LISTED]:
                listing.add_row(shown(row["path"]), shown(row["label"] or ""), ", ".join(row["issues"]))
            if len(rows) > MAX_LISTED:
                listing.caption = (f"... and {data['images_with_issues'] - MAX_LISTED} more "
                                   f"(--json lists {min(data['images_with_issues'], MAX_ISSUES_KEPT)})")
            console.print(listing)

    def html(self, data: dict[str, Any]) -> str:
        props = ("width", "height", "brightness", "contrast", "saturation", "sharpness")
        rows = [(label, c["images"], *[_range(c[p]) for p in props], f"{100 * c['grayscale_share']:.0f}%",
                 "-" if c["diversity"] is None else f"{c['diversity']:.2f}") for label, c in data["classes"].items()]
        out = html.table(["class", "n", *props, "grey", "diversity"], rows, "median [p5-p95] per class")
        out += _box_figure(data)
        out += html.table(["issue", "images"], [(k.replace("_", " "), v) for k, v in data["issue_counts"].items()])
        out += html.findings(self.findings(data), "No image issues and every class varies.")
        if data["issue_images"]:
            out += html.table(["path", "label", "issues"],
                              [(r["path"], r["label"] or "", ", ".join(r["issues"])) for r in data["issue_images"][:200]])
        return out


def _median(q: dict[str, float] | None) -> str:
    return "-" if q is None else f"{q['median']:.3g}"


def _range(q: dict[str, float] | None) -> str:
    if q is None:
        return "-"
    return f"{q['median']:.3g} [{q['p5']:.3g}-{q['p95']:.3g}]"


def _box_figure(data: dict[str, Any]) -> str:
    """Median and 5-95% range of brightness, contrast and sharpness per class."""
    classes = list(data["classes"])
    if not classes:
        return ""
    fig = html.new_figure(7.0, 2.6)
    for k, prop in enumerate(("brightness", "contrast", "sharpness")):
        ax = fig.add_subplot(1, 3, k + 1)
        for i, label in enumerate(classes):
            q = data["classes"][label][prop]
            if q is None:
                continue
            ax.plot([q["p5"], q["p95"]], [i, i], color="#5b8def", linewidth=3)
            ax.plot([q["median"]], [i], "o", color="#1d2330", markersize=4)
        ax.set_yticks(range(len(classes)), classes if k == 0 else [""] * len(classes), fontsize=7)
        ax.set_title(prop, fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
        if prop == "sharpness":
            ax.set_xscale("symlog")
    fig.tight_layout()
    return html.figure(fig, "brightness, contrast and sharpness per class: median and 5-95% range")


SECTION = Variance()
