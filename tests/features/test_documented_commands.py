"""Every `ddcodec ...` command written in the README, docs/ and examples/ must parse against the
real CLI: options that exist, values its types and choices accept, architectures it knows.

Long reference-sized runs (100 experts, 1000-epoch protocols, full CIFAR-10) cannot run in the
test suite; this makes sure that at least the line a reader copies is not out of date."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from ddcodec.cli.commands import cli
from ddcodec.errors import DDCodecError
from ddcodec.training.networks import canonical_arch

from conftest import ROOT
SEPARATORS = {"|", "||", "&&", ";"}
REDIRECT = re.compile(r"^[<>]+&?$")


def _code_lines(path: Path) -> list[str]:
    """Shell lines of a document: inside its fenced code blocks (Markdown; not those marked
    `text`, which show trees and tables) or the whole file (shell scripts), with backslash
    continuations joined."""
    text = path.read_text()
    if path.suffix == ".md":
        blocks = re.findall(r"```([a-z]*)\n(.*?)```", text, flags=re.S)
        text = "\n".join(body for language, body in blocks if language != "text")
    lines, pending = [], ""
    for line in text.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return lines


def _invocations(line: str) -> list[list[str]]:
    """The argument lists of each `ddcodec` call in a shell line: pipes, && and ; split calls;
    redirections (`> file`, `< file`) are the shell's, not arguments."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    calls, current, skip_next = [], None, False
    for token in lexer:
        if skip_next:
            skip_next = False
        elif token in SEPARATORS:
            current = None
        elif REDIRECT.match(token):
            skip_next = True
        elif current is None:
            if token in ("ddcodec", ".venv/bin/ddcodec"):
                current = []
                calls.append(current)
            else:
                current = False  # some other program: skip to the next separator
        elif current is not False:
            if re.fullmatch(r"\$\{?\w+\}?", token):  # a shell variable (a job's block index)
                token = "0"
            current.append(token.strip("[]"))  # `[--json]`: an optional flag in usage notation
    return calls


def documented_calls() -> list[tuple[str, list[str]]]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
             *sorted((ROOT / "examples").glob("*.sh"))]
    calls = []
    for path in files:
        for line in _code_lines(path):
            for args in _invocations(line):
                calls.append((f"{path.relative_to(ROOT)}: ddcodec {' '.join(args)}", args))
    return calls


CALLS = documented_calls()


def test_the_docs_do_show_commands():
    commands = {args[0] for _, args in CALLS if args}
    assert {"distill", "encode", "decode", "measure", "info", "test", "experts", "curve",
            "demo"} <= commands
    assert len(CALLS) > 40


def _parse(args: list[str]) -> click.Context | None:
    """Parse as `ddcodec ARGS` would, without running anything; None for the group's own eager
    options (--version, --help), which end parsing successfully. Raises click.UsageError on a
    stale line."""
    if not args or args[0].startswith("-"):
        try:
            cli.make_context("ddcodec", list(args))
        except click.exceptions.Exit as done:
            if done.exit_code == 0:
                return None
        raise click.UsageError(f"ddcodec {' '.join(args)} does not end in --version or --help")
    group_ctx = click.Context(cli, info_name="ddcodec")
    command = cli.get_command(group_ctx, args[0])
    if command is None:
        raise click.UsageError(f"no such command {args[0]!r}")
    return command.make_context(args[0], list(args[1:]), parent=group_ctx)


@pytest.mark.parametrize("where,args", CALLS, ids=[where for where, _ in CALLS])
def test_documented_command_parses(where, args):
    try:
        ctx = _parse(args)
    except click.UsageError as error:
        pytest.fail(f"{where}\n  {error.format_message()}")
    arch = ctx.params.get("arch") if ctx else None
    if arch is not None:
        canonical_arch(arch)


def test_a_stale_line_is_caught():
    """The check itself must fail on a wrong option, choice or value, and split pipelines."""
    for stale in (["distill", "--no-such-option", "-o", "x.pt"],
                  ["distill", "--loss", "mtt", "-o", "x.pt"],
                  ["measure", "set.pt", "--runs", "0"],
                  ["no-such-command"],
                  ["--no-such-global-option"]):
        with pytest.raises(click.UsageError):
            _parse(stale)
    with pytest.raises(DDCodecError, match="unknown architecture 'resnet99'"):
        canonical_arch("resnet99")
    assert _invocations("ddcodec encode a.pt -c | ddcodec decode - -o b.pt  # note") == [
        ["encode", "a.pt", "-c"], ["decode", "-", "-o", "b.pt"]]
    assert _invocations("ddcodec decode - -o s.pt < a.ddz && ddcodec info a.ddz > i.txt") == [
        ["decode", "-", "-o", "s.pt"], ["info", "a.ddz"]]


def _run_example(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
def test_loading_examples_train_on_a_decoded_set(run_cli, tmp_path):
    """examples/train_from_ddz.py (the .ddz itself), train_on_set.py (a set file) and
    imagefolder_training.py (the PNG export) run as written on a .ddz of the bundled subset
    and its exports, and their networks learn."""
    set_file, ddz = tmp_path / "r2.pt", tmp_path / "r2.ddz"
    assert run_cli("distill", "--loss", "none", "--ipc", "2", "-o", str(set_file), "-q")[0] == 0
    assert run_cli("encode", str(set_file), "-o", str(ddz), "-q")[0] == 0
    assert run_cli("decode", str(ddz), "-o", str(tmp_path / "decoded.pt"), "-q")[0] == 0
    assert run_cli("decode", str(ddz), "--format", "imagefolder", "-o", str(tmp_path / "png"),
                   "-q")[0] == 0

    out = _run_example("train_from_ddz.py", str(ddz))  # no file in between
    assert "20 images of 10 classes" in out
    assert float(re.search(r"final training loss ([\d.]+)", out).group(1)) < 1.6
    assert re.search(r"test accuracy [\d.]+ %", out)

    out = _run_example("train_on_set.py", str(tmp_path / "decoded.pt"))
    loss = float(re.search(r"final training loss ([\d.]+)", out).group(1))
    assert loss < 1.6  # 20 images, 100 full-batch steps: well below chance's ln 10 = 2.30
    assert re.search(r"test accuracy [\d.]+ %", out)

    out = _run_example("imagefolder_training.py", str(tmp_path / "png"))
    assert "20 images of 10 classes: airplane, automobile, bird" in out
    # 50 epochs of one mini-batch each with a fixed seed: 1.80 here, against chance's 2.30
    assert float(re.search(r"final training loss ([\d.]+)", out).group(1)) < 2.0
