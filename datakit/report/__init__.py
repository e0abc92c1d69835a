"""`datakit balance-report`: is this data set good enough to train on?

One module per section; ``SECTIONS`` is the registry, in report order. ``runner.balance_report``
computes every section that applies, evaluates ``--fail-on`` and writes the HTML page.
"""

from __future__ import annotations

from datakit.report import balance, duplicates, objects, overview, shortcuts, variance
from datakit.report.base import ReportContext, Section

SECTIONS: dict[str, Section] = {
    s.name: s for s in (
        overview.SECTION,
        balance.SECTION,
        variance.SECTION,
        shortcuts.SECTION,
        duplicates.SECTION,
        objects.SECTION,
    )
}

__all__ = ["SECTIONS", "ReportContext", "Section"]
