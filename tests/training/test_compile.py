"""`--compile`: the same training through torch.compile, and a compiler that cannot run is one
clear line. Compiling takes tens of seconds, so one small network is compiled, once."""

import shutil

import pytest
import torch

from conftest import make_arrays
from ddcodec.devices import compiled, compiling, set_compiling
from ddcodec.distillation.objectives import embed, embed_without_grad
from ddcodec.errors import DDCodecError
from ddcodec.training.networks import seeded_network
from ddcodec.training.trainer import EvalConfig, train_network


def _images(per_class=16, classes=3, size=8):
    x, y = make_arrays(per_class=per_class, classes=classes, size=size)
    images = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1
    return images, torch.from_numpy(y).long()


def test_without_compile_networks_run_as_they_are():
    assert not compiling()
    net = torch.nn.Linear(2, 2)
    assert compiled(net) is net and compiled(embed) is embed


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="torch.compile on CPU needs a C compiler")
def test_compiled_training_and_matching_give_the_eager_results_within_rounding():
    import torch._dynamo

    images, labels = _images()
    config = EvalConfig(epochs=2, batch_size=20)  # 48 images: batches of 20, 20 and 8
    cpu = torch.device("cpu")
    eager = train_network(images, labels, 3, config, 0, cpu)
    torch._dynamo.reset()
    set_compiling(True)
    try:
        fast = train_network(images, labels, 3, config, 0, cpu)
        graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        net = seeded_network("convnet", 3, 3, (8, 8), 5, cpu)
        matched = embed_without_grad(net, images, compiled(embed))
    finally:
        set_compiling(False)
    assert graphs >= 2  # compiled for real: one graph per batch shape
    for name, weight in eager.state_dict().items():  # the same arithmetic, rounded otherwise
        assert torch.allclose(weight, fast.state_dict()[name], atol=1e-4), name
    assert torch.allclose(matched, embed_without_grad(net, images), atol=1e-4)


def test_a_compiler_that_cannot_run_is_one_clear_error(monkeypatch):
    from torch._dynamo.exc import TorchDynamoException

    def fails(error):
        def forward(*_):
            raise error
        return forward

    monkeypatch.setattr(torch, "compile", lambda fn, **_: fn)  # errors as if from the compiler
    set_compiling(True)
    try:
        no_compiler = TorchDynamoException("InvalidCxxCompiler: No working C compiler found\n...")
        with pytest.raises(DDCodecError, match="^--compile: torch.compile could not compile "
                                               "the network here .*No working C compiler found"
                                               r"\); run without --compile$"):
            compiled(fails(no_compiler))(torch.zeros(1, 2))
        with pytest.raises(ValueError, match="not the compiler's"):  # the code's own errors
            compiled(fails(ValueError("not the compiler's")))(torch.zeros(1, 2))
    finally:
        set_compiling(False)


def test_the_option_reaches_the_networks_and_child_processes(run_cli, tmp_path):
    import os

    for flag, expected in (("--compile", "1"), ("--no-compile", "0")):
        code, _, err = run_cli("distill", "--loss", "none", "--ipc", "1", flag, "-q", "-o",
                               str(tmp_path / f"{flag}.pt"))
        assert code == 0, err
        assert os.environ["DDCODEC_COMPILE"] == expected and compiling() == (expected == "1")
