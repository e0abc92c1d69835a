"""`--allow-outside` on every command that loads a manifest (issue 11, security item 2): without it a
manifest whose image root leaves the data set is refused with one line; with it the command gets
past that check; and the opt-in never outlives the command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datakit.cli import app
from datakit.ingest import ingest

runner = CliRunner()


@pytest.fixture
def outside(class_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A good manifest whose image root is absolute (as a crafted one, or one moved by hand)."""
    monkeypatch.delenv("DATAKIT_ALLOW_OUTSIDE", raising=False)
    manifest = tmp_path / "work" / "m"
    ingest(class_folder, manifest, workers=1, show_progress=False, allow_outside=True)
    header = json.loads((manifest / "manifest.json").read_text())
    header["image_root"] = str(class_folder.resolve())
    (manifest / "manifest.json").write_text(json.dumps(header))
    monkeypatch.chdir(tmp_path / "work")
    Path("space.yaml").write_text("sampler: grid\nmetric: val_map\nparams:\n  optim.lr: [0.01]\n")
    Path("pipe.yaml").write_text(f"name: look\nsteps:\n  - info: {{manifest: {manifest}}}\n")
    return manifest


# command -> (arguments ({o}: a fresh output each time), exit code with --allow-outside, what its output then says)
COMMANDS = {
    "info": (["info", "{m}"], 0, "usable images"),
    "balance-report": (["balance-report", "{m}", "--json", "--workers", "1"], 0, '"imbalance'),
    "export": (["export", "{m}", "--format", "imagefolder", "-o", "exported{o}"], 0, "exported"),
    "split": (["split", "{m}", "-o", "split{o}"], 0, "train"),
    "augment": (["augment", "{m}", "-o", "augmented{o}", "--preset", "light", "--split", "all"], 0, "augmented"),
    "train": (["train", "{m}", "--print-config"], 0, "optim:"),
    "eval": (["eval", "--predictions", "missing.json", "--manifest", "{m}"], 2, "missing.json"),
    "sweep": (["sweep", "{m}", "--space", "space.yaml", "-o", "sweep{o}"], 2, "val_map"),
    "run": (["run", "pipe.yaml", "-o", "piped{o}"], 0, "usable images"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_manifest_command_refuses_then_takes_the_flag(command: str, outside: Path) -> None:
    args, code, says = COMMANDS[command]
    refused = runner.invoke(app, [a.format(m=outside, o="-refused") for a in args])
    assert refused.exit_code == 2, refused.output
    assert "image_root" in refused.output and "--allow-outside" in refused.output
    assert "Traceback" not in refused.output
    trusted = runner.invoke(app, [*(a.format(m=outside, o="") for a in args), "--allow-outside"])
    assert trusted.exit_code == code, trusted.output
    assert "image_root" not in trusted.output and says in trusted.output
    assert "DATAKIT_ALLOW_OUTSIDE" not in os.environ  # the opt-in ends with the command


def test_the_flag_is_one_definition_on_each_manifest_command() -> None:
    import typer.main

    group = typer.main.get_command(app)
    helps = {name: next((p.help for p in command.params if p.name == "allow_outside"), None)
             for name, command in group.commands.items()}
    manifest_commands = set(COMMANDS) | {"ingest"}  # ingest: also symlinks leaving SRC
    assert {name for name, text in helps.items() if text} == manifest_commands
    assert len({helps[name] for name in COMMANDS}) == 1


def test_the_api_functions_take_the_same_argument(outside: Path) -> None:
    """datakit.X(..., allow_outside=True) as `datakit X ... --allow-outside` (CLI == API)."""
    import inspect

    import datakit
    from datakit.errors import DatakitError

    names = ("augment", "balance_report", "evaluate", "evaluate_predictions", "export", "info", "ingest",
             "run_pipeline", "split", "sweep", "train")
    assert all("allow_outside" in inspect.signature(getattr(datakit, n)).parameters for n in names)
    with pytest.raises(DatakitError, match="image_root"):
        datakit.run_pipeline("pipe.yaml", "api-refused", show_progress=False)
    assert datakit.run_pipeline("pipe.yaml", "api", show_progress=False, allow_outside=True).steps
    with pytest.raises(DatakitError, match="val_map"):  # past the manifest, stopped by the space
        datakit.sweep(outside, "space.yaml", "api-sweep", show_progress=False, allow_outside=True)
    with pytest.raises(DatakitError, match="missing.json"):
        datakit.evaluate_predictions("missing.json", outside, allow_outside=True)
    assert "DATAKIT_ALLOW_OUTSIDE" not in os.environ
