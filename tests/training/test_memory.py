"""Freed memory kept for reuse (`reuse_freed_memory`, on in the command line, the benchmarks and
these tests): the same bits, and far fewer page faults than glibc's defaults."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from ddcodec.devices import REUSE_MEMORY_ENV, reuse_freed_memory

glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or
                           not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"),
                           reason="mallopt is glibc's")

# A fresh process: a network trained for eight epochs (its weights' digest) and the page faults
# of its last seven, with the allocator set (or not) as the environment says.
PROBE = """
import hashlib, json, resource, torch
from ddcodec.devices import reuse_freed_memory
reused = reuse_freed_memory()
torch.set_num_threads(1)
from ddcodec.training.trainer import EvalConfig, train_network
g = torch.Generator().manual_seed(0)
x, y = torch.randn(64, 3, 32, 32, generator=g), torch.randint(0, 10, (64,), generator=g)
counts = []  # page faults so far, after each epoch: the first one touches memory anyway
net = train_network(x, y, 10, EvalConfig(epochs=8, batch_size=32), 0, torch.device("cpu"),
                    on_epoch=lambda _: counts.append(resource.getrusage(0).ru_minflt))
faults = counts[-1] - counts[0]
digest = hashlib.sha256(b"".join(w.numpy().tobytes() for w in net.state_dict().values()))
print(json.dumps({"reused": reused, "faults": faults, "digest": digest.hexdigest()}))
"""


def _probe(reuse: str) -> dict:
    env = {**os.environ, REUSE_MEMORY_ENV: reuse, "DDCODEC_COMPILE": "0"}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=ROOT, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@glibc
def test_reused_memory_gives_the_same_bits_with_far_fewer_page_faults():
    kept, released = _probe("1"), _probe("0")
    assert kept["reused"] and not released["reused"]
    assert kept["digest"] == released["digest"]
    assert kept["faults"] * 4 < released["faults"], (kept["faults"], released["faults"])


def test_it_can_be_turned_off(monkeypatch):
    monkeypatch.setenv(REUSE_MEMORY_ENV, "0")
    assert reuse_freed_memory() is False
