"""docs/cli.md, written from the command line itself: every command, its usage and every option
with its default, so the reference cannot fall behind the code (tests/cli/test_reference.py
compares the file with this output).

    python -m ddcodec.cli.reference > docs/cli.md
"""

from __future__ import annotations

import click

from ddcodec.cli.commands import cli

HEADER = ("# Command reference\n\n"
          "Every `ddcodec` command and option, generated from the command line itself by "
          "`python -m ddcodec.cli.reference > docs/cli.md` (a test keeps it current). The "
          "README and the topic pages explain what the options are for.\n")


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _kind(param: click.Parameter) -> str:
    if isinstance(param, click.Option) and param.is_flag and not param.count:
        return "flag"
    if isinstance(param.type, click.Choice):
        return " | ".join(str(c) for c in param.type.choices)
    return param.type.name.upper() if param.type.name else ""


def _default(param: click.Parameter, ctx: click.Context) -> str:
    if isinstance(param, click.Option) and param.is_flag and not param.count:
        return ""
    value = param.get_default(ctx, call=False)
    if callable(value) or value is getattr(click.core, "UNSET", object()) or value in (
            None, (), []):
        return ""
    if isinstance(value, (tuple, list)):
        value = ",".join(str(v) for v in value)
    return f"`{value}`"


def command_section(name: str, command: click.Command) -> str:
    ctx = click.Context(command, info_name=f"ddcodec {name}")
    lines = [f"## `ddcodec {name}`", "", _cell((command.help or "").split("\n\n")[0]), "",
             "```text", command.get_usage(ctx), "```", ""]
    options = [p for p in command.params if isinstance(p, click.Option) and not p.hidden]
    if options:
        lines += ["| option | value | default | what |", "|---|---|---|---|"]
        for p in options:
            names = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
            lines.append(f"| {names} | {_cell(_kind(p))} | {_default(p, ctx)} | "
                         f"{_cell(p.help or '')} |")
        lines.append("")
    return "\n".join(lines)


def reference_markdown() -> str:
    parts = [HEADER]
    for name in sorted(cli.commands):
        parts.append(command_section(name, cli.commands[name]))
    return "\n".join(parts).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
