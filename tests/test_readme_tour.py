"""The README's commands on the tour's own data (the sampled shapes and digits) use only manifests
that an earlier README command creates (issue 11). Examples on a reader's own data (data/coco...)
are illustrations and are not checked."""

from __future__ import annotations

import re

from tests.conftest import REPO


def test_every_manifest_a_readme_command_reads_is_created_before() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    commands = [line.split("#")[0].strip() for block in re.findall(r"```bash\n(.*?)```", text, re.S)
                for line in block.splitlines() if line.strip().startswith("datakit ")]
    created: set[str] = set()
    for command in commands:
        words = command.split()
        outputs = {words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-o", "--output")}
        for word in words[2:]:
            tour_data = word.startswith(("data/shapes", "data/digits"))
            if tour_data and word.endswith(".manifest") and word not in outputs:
                assert word in created, f"README runs `{command}` but no earlier command creates {word}"
        created |= outputs
    assert "data/digits.manifest" in created
