"""Class balance: counts and shares per class and split, imbalance, entropy, and what to do about it."""

from __future__ import annotations

import math
import shlex
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from datakit.console import shown
from datakit.manifest import SPLITS
from datakit.report import html
from datakit.report.base import ReportContext, Section

MIN_COUNT = 10  # a class with fewer images than this is too small to learn or to measure
MIN_SPLIT_PER_CLASS = 5  # a val/test split with fewer images per class than this measures little


def _label_table(ctx: ReportContext) -> tuple[pd.DataFrame, str]:
    """(frame with columns label, split; one row per counted unit), unit name ('images' or 'objects')."""
    ok = ctx.ok
    if ok["label"].notna().any():
        frame = ok[ok["label"].notna()][["label", "split"]]
        return frame, "images"
    ann = ctx.manifest.annotations
    if len(ann):
        splits = ok.set_index("id")["split"]
        frame = pd.DataFrame({"label": ann["category"].astype("string"),
                              "split": ann["image_id"].map(splits)})
        frame = frame[ann["image_id"].isin(splits.index).to_numpy()]
        return frame, "objects"
    return pd.DataFrame({"label": pd.Series([], dtype="string"), "split": pd.Series([], dtype="string")}), "images"


def _sibling_output(path: str) -> str:
    stripped = path.rstrip("/") or path
    return f"{stripped}-balanced"


def _augment_split(ctx: ReportContext) -> str:
    """The split a recommended `datakit augment` should balance: augment refuses `--split train`
    on a manifest without splits, and there every image is training material anyway."""
    return "train" if ctx.images["split"].notna().any() else "all"


class Balance(Section):
    name = "balance"
    title = "Class balance"

    def compute(self, ctx: ReportContext) -> dict[str, Any]:
        frame, unit = _label_table(ctx)
        classes = sorted(set(frame["label"].astype(str)) | set(ctx.manifest.category_names)) if len(frame) else []
        splits = [s for s in SPLITS if (frame["split"] == s).any()]
        extra = sorted(set(frame["split"].dropna().astype(str)) - set(SPLITS))
        splits += extra
        split_col = frame["split"].fillna("(none)").astype(str)
        if split_col.eq("(none)").any() and splits:
            splits.append("(none)")
        counts: dict[str, dict[str, int]] = {}
        for c in classes:
            in_class = frame["label"].astype(str) == c
            row = {s: int((in_class & (split_col == s)).sum()) for s in splits}
            row["total"] = int(in_class.sum())
            counts[c] = row
        basis = "train" if "train" in splits else "all"
        basis_counts = {c: counts[c]["train" if basis == "train" else "total"] for c in classes}
        total = sum(basis_counts.values())
        present = {c: n for c, n in basis_counts.items() if n > 0}
        missing = [c for c, n in basis_counts.items() if n == 0]
        if len(classes) >= 2 and present:
            imbalance = math.inf if missing else max(present.values()) / min(present.values())
        else:
            imbalance = 1.0 if present else None
        shares = {c: (n / total if total else 0.0) for c, n in basis_counts.items()}
        if len(classes) >= 2 and total:
            entropy = -sum(p * math.log(p) for p in shares.values() if p > 0) / math.log(len(classes))
        else:
            entropy = None
        under_min = [c for c, n in basis_counts.items() if n < MIN_COUNT]
        small_splits, missing_from_split = [], {}
        for s in splits:
            if s in ("(none)",):
                continue
            n = int((split_col == s).sum())
            if s != "train" and classes and n < max(20, MIN_SPLIT_PER_CLASS * len(classes)):
                step = 100.0 / n if n else 100.0
                small_splits.append({"split": s, unit: n, "why": (
                    f"{n} {unit} for {len(classes)} classes: one {unit[:-1]} moves accuracy by {step:.1f} points; "
                    f"want at least {max(20, MIN_SPLIT_PER_CLASS * len(classes))}")})
            absent = [c for c in classes if counts[c].get(s, 0) == 0]
            if absent:
                missing_from_split[s] = absent
        return {
            "unit": unit,
            "classes": classes,
            "splits": splits,
            "counts": counts,
            "basis": basis,
            "basis_counts": basis_counts,
            "shares": shares,
            "imbalance": None if imbalance is None or math.isinf(imbalance) else imbalance,
            "imbalance_infinite": bool(imbalance is not None and math.isinf(imbalance)),
            "missing": missing,
            "entropy": entropy,
            "min_count": MIN_COUNT,
            "under_min": under_min,
            "small_splits": small_splits,
            "missing_from_split": missing_from_split,
            "recommendation": self._recommend(ctx, basis_counts, unit),
        }

    @staticmethod
    def _recommend(ctx: ReportContext, counts: dict[str, int], unit: str) -> dict[str, Any] | None:
        present = {c: n for c, n in counts.items() if n > 0}
        if len(present) < 2 or max(present.values()) == min(present.values()):
            return None
        target = max(present.values())
        add = {c: target - n for c, n in present.items() if n < target}
        total, k = sum(present.values()), len(present)
        weights = {c: round(total / (k * n), 4) for c, n in present.items()}
        manifest = str(ctx.manifest_path)
        command = (f"datakit augment {shlex.quote(manifest)} -o {shlex.quote(_sibling_output(manifest))} "
                   f"--balance --split {_augment_split(ctx)}")
        worst = min(present, key=present.get)
        text = (f"augment the minority classes up to {target} {unit} each ({sum(add.values())} new {unit}; "
                f"'{worst}' needs {add[worst]} more): {command}; or train with class weights "
                f"(total / (classes x count)): " + ", ".join(f"{c} {w:g}" for c, w in weights.items()))
        return {"target": target, "add": add, "command": command, "class_weights": weights, "text": text}

    def metrics(self, data: dict[str, Any]) -> dict[str, float]:
        if data["imbalance_infinite"]:
            return {"imbalance": math.inf}
        return {"imbalance": data["imbalance"] if data["imbalance"] is not None else 1.0}

    @staticmethod
    def findings(data: dict[str, Any]) -> list[str]:
        out = []
        unit = data["unit"]
        if data["imbalance_infinite"]:
            out.append(f"classes with no {unit} in {data['basis']}: {', '.join(data['missing'])}")
        elif data["imbalance"] is not None and data["imbalance"] > 1.5:
            out.append(f"imbalance {data['imbalance']:.2f}: the largest class has {data['imbalance']:.2f}x "
                       f"the {unit} of the smallest ({data['basis']})")
        if data["under_min"]:
            out.append(f"classes under {data['min_count']} {unit} ({data['basis']}): {', '.join(data['under_min'])}")
        for s in data["small_splits"]:
            out.append(f"split '{s['split']}' is too small to measure much: {s['why']}")
        for s, absent in data["missing_from_split"].items():
            out.append(f"classes that never appear in '{s}': {', '.join(absent)}")
        return out

    def render(self, console: Console, data: dict[str, Any]) -> None:
        if not data["classes"]:
            console.print("[bold]Class balance[/]: no labels or objects to count")
            return
        table = Table(title=f"Class balance ({data['unit']}; shares over {data['basis']})")
        table.add_column("class")
        for s in data["splits"]:
            table.add_column(s, justify="right")
        table.add_column("total", justify="right")
        table.add_column("share", justify="right")
        for c in data["classes"]:
            row = data["counts"][c]
            table.add_row(shown(c), *[str(row.get(s, 0)) for s in data["splits"]], str(row["total"]),
                          f"{100 * data['shares'][c]:.1f}%")
        ratio = "inf" if data["imbalance_infinite"] else (f"{data['imbalance']:.2f}" if data["imbalance"] else "-")
        entropy = f"{data['entropy']:.3f}" if data["entropy"] is not None else "-"
        console.print(table)
        console.print(f"  imbalance (largest/smallest) {ratio} · normalized entropy {entropy} (1 = balanced)",
                      highlight=False)
        for line in self.findings(data):
            console.print(f"  [yellow]![/] {shown(line)}", highlight=False)
        rec = data["recommendation"]
        if rec:
            console.print(f"  [bold]recommendation:[/] {shown(rec['text'])}", highlight=False, soft_wrap=True)

    def html(self, data: dict[str, Any]) -> str:
        if not data["classes"]:
            return html.para("No labels or objects to count.")
        headers = ["class", *data["splits"], "total", "share"]
        rows = [(c, *[data["counts"][c].get(s, 0) for s in data["splits"]], data["counts"][c]["total"],
                 f"{100 * data['shares'][c]:.1f}%") for c in data["classes"]]
        ratio = "inf" if data["imbalance_infinite"] else (f"{data['imbalance']:.2f}" if data["imbalance"] else "-")
        entropy = f"{data['entropy']:.3f}" if data["entropy"] is not None else "-"
        out = html.table(headers, rows)
        out += html.para(f"Imbalance (largest/smallest, {data['basis']}): {ratio}; normalized entropy {entropy} (1 = balanced).")
        series = {s: [data["counts"][c].get(s, 0) for c in data["classes"]] for s in data["splits"]} or {
            "all": [data["counts"][c]["total"] for c in data["classes"]]}
        out += html.bar_figure(data["classes"], series, f"{data['unit']} per class and split", data["unit"])
        out += html.findings(self.findings(data), "Classes are balanced and every split holds every class.")
        rec = data["recommendation"]
        if rec:
            out += f"<p><b>Recommendation:</b> augment up to {rec['target']} {esc_unit(data)} per class:</p>"
            out += f"<p><code>{html.esc(rec['command'])}</code></p>"
            out += html.table(["class", "add", "class weight"],
                              [(c, rec["add"].get(c, 0), rec["class_weights"][c]) for c in rec["class_weights"]])
        return out


def esc_unit(data: dict[str, Any]) -> str:
    return html.esc(data["unit"])


SECTION = Balance()
