"""Contract test over the SECTIONS registry: every section computes plain JSON, renders as tables and as HTML."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from datakit.manifest import load_manifest
from datakit.report import SECTIONS, fail_on
from datakit.report.base import ReportContext, Section
from tests.report_data import full_manifest


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> ReportContext:
    manifest = full_manifest(tmp_path_factory.mktemp("contract"))
    return ReportContext(load_manifest(manifest), manifest, workers=1, show_progress=False)


def test_registry_names_match_sections():
    assert list(SECTIONS) == ["overview", "balance", "variance", "shortcuts", "duplicates", "objects"]
    for name, section in SECTIONS.items():
        assert isinstance(section, Section) and section.name == name and section.title


@pytest.mark.parametrize("name", list(SECTIONS))
def test_section_contract(context: ReportContext, name: str):
    section = SECTIONS[name]
    assert section.applies(context)
    data = section.compute(context)
    json.dumps(data, allow_nan=False)  # plain JSON: no NaN, no numpy scalars, no inf
    metrics = section.metrics(data)
    assert set(metrics) <= set(fail_on.METRICS)
    buffer = io.StringIO()
    section.render(Console(file=buffer, width=100), data)
    assert buffer.getvalue().strip()
    fragment = section.html(data)
    assert fragment and "<script" not in fragment and "http" not in fragment


def test_every_fail_on_metric_is_published(context: ReportContext):
    published = set()
    for section in SECTIONS.values():
        published |= set(section.metrics(section.compute(context)))
    assert published == set(fail_on.METRICS)
