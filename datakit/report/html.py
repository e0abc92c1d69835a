"""One self-contained HTML page: inline CSS, plots as PNG data URIs, nothing from the network.

Readable on a phone: the layout is one fluid column, wide tables scroll inside their own box,
images never exceed the column, so a 390-px viewport has no horizontal scroll.
"""

from __future__ import annotations

import base64
import html as _html
import io
from typing import TYPE_CHECKING, Any, Iterable, Sequence

if TYPE_CHECKING:  # matplotlib is imported only when a page with plots is written (~1 s saved otherwise)
    from matplotlib.figure import Figure

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;padding:12px;line-height:1.4;
color:#1d2330;background:#fafbfc;overflow-wrap:anywhere}
main{max-width:980px;margin:0 auto}
h1{font-size:1.4rem;margin:.2em 0} h2{font-size:1.15rem;margin:1.4em 0 .4em;border-bottom:2px solid #dde3ea}
h3{font-size:1rem;margin:1em 0 .3em}
.meta{color:#5b6577;font-size:.9rem}
.scroll{max-width:100%;overflow-x:auto;margin:.4em 0}
table{border-collapse:collapse;font-size:.85rem;background:#fff}
th,td{border:1px solid #dde3ea;padding:3px 6px;text-align:right;vertical-align:top;overflow-wrap:normal}
th:first-child,td:first-child{text-align:left}
th{background:#eef2f6}
figure{margin:.6em 0} figure img{max-width:100%;height:auto;display:block}
figcaption{font-size:.8rem;color:#5b6577}
.bad{color:#b42318;font-weight:600} .ok{color:#067647;font-weight:600}
ul.findings{padding-left:1.2em} code{background:#eef2f6;padding:1px 4px;border-radius:3px;word-break:break-all}
.fail{border:2px solid #b42318;padding:6px 10px;background:#fef3f2}
"""


def esc(value: Any) -> str:
    return _html.escape(str(value), quote=True)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], caption: str | None = None) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "" if value is None else str(value)


def para(text: str, cls: str | None = None) -> str:
    return f'<p{f" class={cls!r}" if cls else ""}>{esc(text)}</p>'


def findings(items: Sequence[str], empty: str) -> str:
    if not items:
        return f'<p class="ok">{esc(empty)}</p>'
    return '<ul class="findings">' + "".join(f'<li class="bad">{esc(t)}</li>' for t in items) + "</ul>"


def figure(fig: Figure, alt: str) -> str:
    """A matplotlib figure as an inline PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{data}"><figcaption>{esc(alt)}</figcaption></figure>'


def new_figure(width: float = 6.0, height: float = 3.0) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def bar_figure(labels: Sequence[str], series: dict[str, Sequence[float]], title: str, ylabel: str) -> str:
    """Grouped bars: one group per label, one bar per series (e.g. per split)."""
    import numpy as np

    fig = new_figure(max(4.0, min(10.0, 0.5 * len(labels) * max(1, len(series)) + 2)), 3.0)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + i * width - 0.4 + width / 2, values, width, label=name)
    ax.set_xticks(x, [str(v) for v in labels], rotation=30 if len(labels) > 6 else 0, ha="right" if len(labels) > 6 else "center")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(series) > 1:
        ax.legend(fontsize=8)
    return figure(fig, title)


def page(title: str, subtitle: str, sections: list[tuple[str, str, str]], failed: list[str]) -> str:
    """The whole document; ``sections`` are (anchor, heading, fragment)."""
    nav = " · ".join(f'<a href="#{esc(a)}">{esc(h)}</a>' for a, h, _ in sections)
    fail = ""
    if failed:
        fail = '<div class="fail"><b>Failed checks:</b>' + findings(failed, "") + "</div>"
    body = "".join(f'<section id="{esc(a)}"><h2>{esc(h)}</h2>{frag}</section>' for a, h, frag in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>"
        f'<body><main><h1>{esc(title)}</h1><p class="meta">{esc(subtitle)}</p><nav class="meta">{nav}</nav>'
        f"{fail}{body}</main></body></html>\n"
    )
