"""docs/cli.md is the command line's own description: regenerated, it is the same file, so no
option can be missing from it or outlive its removal."""

from conftest import ROOT
from ddcodec.cli.commands import cli
from ddcodec.cli.reference import reference_markdown


def test_docs_cli_md_is_current():
    written = (ROOT / "docs" / "cli.md").read_text()
    assert written == reference_markdown(), (
        "docs/cli.md is stale: python -m ddcodec.cli.reference > docs/cli.md")


def test_every_command_and_option_is_in_it():
    text = reference_markdown()
    for name, command in cli.commands.items():
        assert f"## `ddcodec {name}`" in text
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("-"):
                    assert f"`{opt}`" in text, (name, opt)
