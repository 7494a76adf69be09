"""`distill --nproc N`: the same command again under torchrun, N processes on this machine, with
torchrun's own log lines and failure reports left out of what the user sees."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

import click

from ddcodec.errors import DDCodecError

STATUS_FILE_ENV = "DDCODEC_STATUS_FILE"  # `--nproc`: a missed target (3) or a stopped block (130)


def relaunch_under_torchrun(nproc: int) -> None:
    """`distill --nproc N`: this very command under torchrun with N processes; exits with its
    status."""
    if "WORLD_SIZE" in os.environ:
        raise DDCodecError("--nproc starts torchrun itself: leave it out under torchrun")
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", str(nproc), "-m", "ddcodec", *args]
    with tempfile.TemporaryDirectory() as folder:  # the processes' own exit status
        status = Path(folder) / "status"
        code = _relay_without_torchrun_reports(
            command, {**os.environ, STATUS_FILE_ENV: str(status)})
        if status.is_file():
            saved = int(status.read_text())
            if saved == 130 or code == 0:  # a stopped block, or a missed target (clean exit)
                code = saved
    raise click.exceptions.Exit(code)


# torchrun's own log lines ("E1206 12:00:00.000000 123 .../torch/distributed/elastic/...") and,
# once a process has failed, the traceback and report it adds after the process's own one line
TORCHRUN_LOG = re.compile(r"^[DIWE]\d{4} \S+ \d+ \S*torch/distributed/")
TORCHRUN_FAILED = re.compile(r"torch/distributed/elastic/\S+\] failed \(exitcode")
OWN_LINE = re.compile(r"^(ddcodec:|\[\d\d:\d\d:\d\d\] )")  # a message or a progress line


def _relay_without_torchrun_reports(command: list[str], env: dict) -> int:
    """Run torchrun, passing on everything the processes print but torchrun's own log lines
    and failure report: a failed block has already said what failed in one line."""
    import signal
    import subprocess

    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, bufsize=1)

    stopping = []  # once a failure or a stop: only the processes' own lines pass

    def forward(signum, frame):  # `kill WRAPPER`: torchrun stops its workers, which save
        stopping.append(signum)
        process.send_signal(signum)

    stops = [signal.SIGINT, signal.SIGTERM]
    previous = {sig: signal.signal(sig, forward) for sig in stops}
    try:
        for line in process.stderr:
            if TORCHRUN_FAILED.search(line):
                stopping.append("failed")
            if TORCHRUN_LOG.match(line) or (stopping and not OWN_LINE.match(line)):
                continue
            sys.stderr.write(line)
            sys.stderr.flush()
        return process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
