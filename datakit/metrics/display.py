"""Rich tables for ``datakit eval --predictions``: protocol, metrics (n/a with its reason),
per-class results, worst images, skipped predictions and the files written."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from datakit.console import shown


def _value(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def show(console: Console, result: dict[str, Any]) -> None:
    console.print(f"[bold]{result['task']}[/] · {result['predictions']} ({result['predictions_format']}) against "
                  f"{result['manifest']} · split {result['split']} · {result['images']} images", highlight=False)
    for iou_type in ("bbox", "segm"):
        if iou_type in result:
            p = result[iou_type]["protocol"]
            console.print(f"[dim]{iou_type}: IoU {p['iou_thresholds'][0]}:{p['iou_thresholds'][-1]} step 0.05, "
                          f"{p['recall_points']} recall points, maxDets {p['max_dets']}, areas small<32²≤medium≤96²<large; "
                          f"{p['ap_at']}; crowd regions ignored; detection area from "
                          f"{'boxes' if 'box width' in p['area_source'] else 'masks'}[/]", highlight=False)
    if "protocol" in result and isinstance(result["protocol"], dict) and "text" in result["protocol"]:
        console.print(f"[dim]{result['protocol']['text']}[/]", highlight=False)
    table = Table(title="metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("note")
    for name, value in result["metrics"].items():
        table.add_row(name, _value(value), result.get("na", {}).get(name, ""))
    console.print(table)
    per_class = None
    for key in ("segm", "bbox"):
        if key in result:
            per_class = result[key]["per_class"]
            break
    if per_class is None:
        per_class = result.get("per_class")
    if per_class:
        table = Table(title="per class")
        columns = [k for k in next(iter(per_class.values())) if k not in ("note", "category_id")]
        table.add_column("class")
        for c in columns:
            table.add_column(c, justify="right")
        for name, row in per_class.items():
            table.add_row(shown(name), *(_value(row.get(c)) for c in columns))
        console.print(table)
    worst = result.get("worst_images") or []
    if worst:
        table = Table(title=f"worst images (of {len(worst)} listed)")
        for c in worst[0]:
            table.add_column(c, justify="left" if c == "image" else "right")
        for row in worst[:10]:
            table.add_row(*(shown(_value(v)) for v in row.values()))
        console.print(table)
    for entry in result.get("skipped", []):
        console.print(f"[yellow]skipped:[/] {entry['count']} {entry['problem']} "
                      f"(e.g. {shown(', '.join(entry['examples']))})", highlight=False)
    for note in result.get("notes", []):
        console.print(f"[dim]note: {shown(note)}[/]", highlight=False)
    console.print(f"written: {result['output']}/ ({', '.join(result['files'])})", highlight=False)
