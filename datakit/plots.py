"""PNG figures for runs and evaluations, drawn with matplotlib's Agg canvas.

No pyplot: a library must not switch the backend or leave figures open in the caller's session.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

if TYPE_CHECKING:
    import pandas as pd


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def training_curves(history: Sequence[dict[str, float]], path: Path, title: str = "",
                    metrics: Sequence[str] = ("accuracy",)) -> Path:
    """Loss and each of the task's metrics per epoch, train vs val: a gap that widens is overfitting."""
    epochs = [row["epoch"] for row in history]
    panels = ["loss", *(m for m in metrics if f"val_{m}" in history[0])]
    fig = Figure(figsize=(5 * len(panels), 4))
    for i, metric in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.plot(epochs, [row[f"train_{metric}"] for row in history], "o-", label="train", markersize=3)
        ax.plot(epochs, [row[f"val_{metric}"] for row in history], "o-", label="val", markersize=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def confusion_matrix(matrix: np.ndarray, classes: Sequence[str], path: Path, title: str = "") -> Path:
    """Counts with rows = true class, columns = predicted class; colour by row-normalized rate."""
    size = max(4.0, 0.5 * len(classes) + 2)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.add_subplot(1, 1, 1)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_xticks(range(len(classes)), labels=list(classes), rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), labels=list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(classes) <= 30:
        for r in range(len(classes)):
            for c in range(len(classes)):
                ax.text(c, r, str(int(matrix[r, c])), ha="center", va="center", fontsize=8,
                        color="white" if rates[r, c] > 0.5 else "black")
    ax.set_title(title or "confusion matrix")
    return _save(fig, path)


def image_grid(images: Sequence[np.ndarray], captions: Sequence[str], path: Path, title: str = "") -> Path:
    """uint8 HxWxC images with a caption each, in a near-square grid."""
    count = max(1, len(images))
    cols = min(6, count)
    rows = math.ceil(count / cols)
    # at least three columns wide, so the figure title fits above a grid of one or two images
    fig = Figure(figsize=(2.0 * max(cols, 3), 2.2 * rows + 0.6), layout="constrained")
    for i, (image, caption) in enumerate(zip(images, captions)):
        ax = fig.add_subplot(rows, cols, i + 1)
        if image.shape[-1] == 1:
            ax.imshow(image[:, :, 0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(image)
        ax.set_title(caption, fontsize=7)
        ax.axis("off")
    if not images:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def sweep_plot(table: pd.DataFrame, metric: str, params: Sequence[str], path: Path, title: str = "",
               log_params: Sequence[str] = ()) -> Path:
    """A sweep at a glance: the metric of every trial in order (with the best so far), then the metric
    against each searched parameter. Pruned trials show the best epoch they reached; failed ones none."""
    import pandas as pd

    states = {"complete": ("tab:green", "o"), "pruned": ("tab:orange", "v")}
    shown = table[table["state"].isin(list(states)) & table[metric].notna()]
    panels = 1 + len(params)
    cols = min(3, panels)
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows), layout="constrained")
    ax = fig.add_subplot(rows, cols, 1)
    for state, (colour, marker) in states.items():
        part = shown[shown["state"] == state]
        ax.scatter(part["trial"], part[metric], c=colour, marker=marker, label=f"{state} ({len(part)})", s=24)
    done = table[table["state"] == "complete"].sort_values("trial")
    if not done.empty:
        best = done[metric].cummin() if metric.endswith("loss") else done[metric].cummax()
        ax.step(done["trial"], best, where="post", color="tab:blue", label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per trial", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    for i, key in enumerate(params, start=2):
        ax = fig.add_subplot(rows, cols, i)
        values = shown[key]
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if numeric:
            xs = values.astype("float64")
        else:  # choices (lists travel as JSON text): one position per distinct value, in sweep order
            labels = list(dict.fromkeys(str(v) for v in table[key] if not pd.isna(v)))
            xs = values.map(lambda v: labels.index(str(v)))
            ax.set_xticks(range(len(labels)), labels=labels, rotation=30 if len(labels) > 3 else 0, fontsize=7)
            ax.set_xlim(-0.5, len(labels) - 0.5)
        for state, (colour, marker) in states.items():
            mask = (shown["state"] == state).to_numpy()
            ax.scatter(xs[mask], shown[metric][mask], c=colour, marker=marker, s=24)
        # a sweep stopped before any trial finished has nothing to place on a log axis
        if numeric and key in log_params and bool((xs > 0).any()):
            ax.set_xscale("log")
            # 1, 2 and 5 per decade, plainly written: labelled minor ticks overlap on a short range
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.2g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.tick_params(axis="x", labelrotation=30, labelsize=7)  # less than a decade: many labelled ticks
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
