"""Shortcuts: a property that alone separates the classes, which a CNN would learn instead of the content.

Measured, not guessed: for each property (brightness, size, format, grayscale...), a small
decision tree sees only that property and is cross-validated (stratified folds); its balanced
accuracy is compared with chance (1 / classes). A property is flagged when it closes at least
``FLAG_AT`` of the gap between chance and perfect, or when it gives one class away (one-vs-rest
AUC, or a category's share gap, of ``GIVES_AWAY_AT``), and explained in words from the class that
differs most from the rest.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from datakit.console import shown
from datakit.report import html
from datakit.report.base import ReportContext, Section
from datakit.report.variance import pixel_frame

FLAG_AT = 0.5  # (balanced accuracy - chance) / (1 - chance)
# ...or when it gives one class away: with many classes, "every circle is 96 px" closes only a
# fraction of the gap (50% against 25% chance for four classes), yet a CNN learns exactly that
GIVES_AWAY_AT = 0.95  # one-vs-rest AUC (either way) or, for a category, share of the class minus share of the rest
MAX_ROWS = 10_000  # a seeded sample: the balanced accuracy of one property is known to ~1% from it
MIN_PER_CLASS = 5
# property -> (words when the class is higher, words when lower, unit)
NUMERIC = {
    "brightness": ("much brighter", "much darker", "mean grey level"),
    "contrast": ("much higher in contrast", "much lower in contrast", "grey-level std"),
    "saturation": ("much more saturated", "much less saturated", "mean HSV saturation"),
    "sharpness": ("much sharper", "much blurrier", "Laplacian variance"),
    "entropy": ("much more detailed", "much less detailed", "grey entropy, bits"),
    "width": ("much wider", "much narrower", "px"),
    "height": ("much taller", "much shorter", "px"),
    "aspect": ("much wider in aspect", "much taller in aspect", "width/height"),
    "bytes_per_pixel": ("stored in much larger files", "stored in much smaller files", "bytes per pixel"),
}
CATEGORICAL = {"format": "file format", "grayscale": "grayscale"}


def _auc(values: np.ndarray, positive: np.ndarray) -> float:
    """One-vs-rest ROC AUC of ``values`` for ``positive`` (Mann-Whitney, ties averaged)."""
    ranks = pd.Series(values).rank(method="average").to_numpy()
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return 0.5
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _stratified_sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """About ``rows`` rows in the classes' proportions, never fewer than MIN_PER_CLASS of a class."""
    share = rows / len(frame)
    parts = [part.sample(n=min(len(part), max(MIN_PER_CLASS, round(len(part) * share))), random_state=seed)
             for _, part in frame.groupby("label", sort=True)]
    return pd.concat(parts).sort_index()


def _cv_score(x: np.ndarray, y: np.ndarray, seed: int) -> float:
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.tree import DecisionTreeClassifier

    folds = int(min(5, np.bincount(y).min()))
    tree = DecisionTreeClassifier(max_depth=4, min_samples_leaf=3, random_state=seed)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(tree, x, y, cv=cv, scoring="balanced_accuracy").mean())


def _explain_numeric(name: str, values: np.ndarray, labels: np.ndarray, classes: list[str]) -> tuple[str, str, float]:
    best, best_auc = classes[0], 0.5
    for c in classes:
        auc = _auc(values, labels == c)
        if abs(auc - 0.5) > abs(best_auc - 0.5):
            best, best_auc = c, auc
    higher, lower, unit = NUMERIC[name]
    inside, outside = np.median(values[labels == best]), np.median(values[labels != best])
    words = higher if best_auc > 0.5 else lower
    return best, (f"class '{best}' is {words} than the rest (median {name} {inside:.3g} vs {outside:.3g}, {unit}; "
                  f"one-vs-rest AUC {max(best_auc, 1 - best_auc):.2f})"), best_auc


def _explain_categorical(name: str, values: np.ndarray, labels: np.ndarray, classes: list[str]) -> tuple[str, str, float]:
    best, best_gap, best_value, shares = classes[0], -1.0, None, (0.0, 0.0)
    for c in classes:
        for v in np.unique(values):
            inside = float((values[labels == c] == v).mean())
            outside = float((values[labels != c] == v).mean()) if (labels != c).any() else 0.0
            if inside - outside > best_gap:
                best, best_gap, best_value, shares = c, inside - outside, v, (inside, outside)
    if name == "grayscale":
        what = "grayscale" if best_value in (True, "True", 1) else "in colour"
        return best, f"class '{best}' is {what} ({100 * shares[0]:.0f}% vs {100 * shares[1]:.0f}% of the rest)", best_gap
    return best, (f"class '{best}' is {100 * shares[0]:.0f}% {best_value} files "
                  f"({100 * shares[1]:.0f}% of the rest)"), best_gap


class Shortcuts(Section):
    name = "shortcuts"
    title = "Shortcuts"

    def applies(self, ctx: ReportContext) -> bool:
        return ctx.ok["label"].notna().any()

    def compute(self, ctx: ReportContext) -> dict[str, Any]:
        frame = pixel_frame(ctx)
        frame = frame[frame["label"].notna() & frame["error"].isna()]
        counts = frame["label"].value_counts()
        kept = counts[counts >= MIN_PER_CLASS].index
        frame = frame[frame["label"].isin(kept)]
        if len(frame) > MAX_ROWS:
            frame = _stratified_sample(frame, MAX_ROWS, ctx.seed)
        classes = sorted(str(c) for c in kept)
        result: dict[str, Any] = {"classes": classes, "images": int(len(frame)), "properties": [], "flagged": [],
                                  "all_properties": None, "skipped_classes": sorted(str(c) for c in counts.index if c not in kept)}
        if len(classes) < 2:
            result["note"] = f"needs at least two classes with {MIN_PER_CLASS}+ images"
            return result
        frame = frame.assign(bytes_per_pixel=frame["file_size"] / (frame["width"] * frame["height"]))
        labels = frame["label"].astype(str).to_numpy()
        y = pd.Categorical(labels, categories=classes).codes.astype(int)
        chance = 1.0 / len(classes)
        columns = []
        for name in [*NUMERIC, *CATEGORICAL]:
            raw = frame[name]
            if name in CATEGORICAL:
                values = raw.astype(str).to_numpy()
                x = pd.get_dummies(pd.Series(values)).to_numpy(dtype=float)
            else:
                values = raw.astype("float64").fillna(raw.astype("float64").median()).to_numpy()
                x = values[:, None]
            columns.append(x)
            if len(np.unique(values)) < 2:
                score = chance
            else:
                score = _cv_score(x, y, ctx.seed)
            strength = (score - chance) / (1 - chance)
            entry = {"property": name, "balanced_accuracy": score, "chance": chance, "strength": strength,
                     "flagged": False}
            if len(np.unique(values)) >= 2:
                explain = _explain_categorical if name in CATEGORICAL else _explain_numeric
                one_class, words, separation = explain(name, values, labels, classes)
                # AUC for numbers (0.5 = no separation), a share gap for categories (0 = none)
                gives_away = (abs(separation - 0.5) + 0.5 if name not in CATEGORICAL else separation) >= GIVES_AWAY_AT
                if strength >= FLAG_AT or gives_away:
                    entry.update(flagged=True, **{"class": one_class, "words": words})
                    result["flagged"].append(words)
            result["properties"].append(entry)
        result["properties"].sort(key=lambda e: -e["strength"])
        score = _cv_score(np.hstack(columns), y, ctx.seed)
        result["all_properties"] = {"balanced_accuracy": score, "chance": chance,
                                    "strength": (score - chance) / (1 - chance)}
        return result

    def metrics(self, data: dict[str, Any]) -> dict[str, float]:
        return {"shortcuts": len(data["flagged"])}

    def render(self, console: Console, data: dict[str, Any]) -> None:
        if not data["properties"]:
            console.print(f"[bold]Shortcuts[/]: not measured ({data.get('note', 'no labels')})")
            return
        table = Table(title="Shortcuts: one property alone, cross-validated (balanced accuracy)")
        table.add_column("property")
        table.add_column("accuracy", justify="right")
        table.add_column("chance", justify="right")
        table.add_column("flag")
        for e in data["properties"]:
            table.add_row(e["property"], f"{100 * e['balanced_accuracy']:.0f}%", f"{100 * e['chance']:.0f}%",
                          "[red]shortcut[/]" if e["flagged"] else "")
        console.print(table)
        allp = data["all_properties"]
        console.print(f"  all properties together: {100 * allp['balanced_accuracy']:.0f}% balanced accuracy "
                      f"(chance {100 * allp['chance']:.0f}%)", highlight=False)
        for line in data["flagged"]:
            console.print(f"  [red]![/] {shown(line)}", highlight=False)

    def html(self, data: dict[str, Any]) -> str:
        if not data["properties"]:
            return html.para(f"Not measured ({data.get('note', 'no labels')}).")
        rows = [(e["property"], f"{100 * e['balanced_accuracy']:.0f}%", f"{100 * e['chance']:.0f}%",
                 "shortcut" if e["flagged"] else "") for e in data["properties"]]
        out = html.table(["property", "accuracy", "chance", ""], rows,
                         "a decision tree on one property alone, cross-validated")
        allp = data["all_properties"]
        out += html.para(f"All properties together: {100 * allp['balanced_accuracy']:.0f}% balanced accuracy "
                         f"(chance {100 * allp['chance']:.0f}%).")
        out += html.bar_figure([e["property"] for e in data["properties"]],
                               {"balanced accuracy": [e["balanced_accuracy"] for e in data["properties"]],
                                "chance": [e["chance"] for e in data["properties"]]},
                               "accuracy of one property alone", "balanced accuracy")
        out += html.findings(data["flagged"], "No property alone separates the classes.")
        return out


SECTION = Shortcuts()
