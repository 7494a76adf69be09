"""The command line's small promises: decoded names never collide with the source set, stdout
works where it makes sense, --threads, --arch choices, info -q, test --json, normal folder
permissions, no exception type names in messages, and a set file given to decode is named."""

import io
import json
import os
import stat
import subprocess
import sys

import pytest
import torch


@pytest.fixture
def encoded(run_cli, tmp_path):
    set_file = tmp_path / "a.pt"
    assert run_cli("distill", "--loss", "none", "--ipc", "2", "-o", str(set_file), "-q")[0] == 0
    assert run_cli("encode", str(set_file), "-q")[0] == 0
    return set_file, tmp_path / "a.ddz"


def test_default_names_never_collide(run_cli, encoded):
    set_file, ddz = encoded
    before = set_file.read_bytes()
    outputs = set()
    for form in ("pt", "imagefolder", "mtt", "grid"):
        code, _, err = run_cli("decode", str(ddz), "--format", form)
        assert code == 0, err
        outputs.add(err.split("wrote ")[1].split(" (")[0])
    assert len(outputs) == 4 and str(set_file) not in outputs
    assert set_file.read_bytes() == before  # the source set is untouched
    assert {p.name for p in set_file.parent.iterdir()} >= {
        "a.decoded.pt", "a.imagefolder", "a.mtt", "a.grid.png"}


def test_decode_to_stdout_loads_with_torch(encoded):
    _, ddz = encoded
    result = subprocess.run([sys.executable, "-m", "ddcodec", "decode", str(ddz), "-c"],
                            capture_output=True, check=True)
    loaded = torch.load(io.BytesIO(result.stdout), weights_only=True)
    assert loaded["format"] == "ddcodec-set" and loaded["images"].shape == (20, 3, 32, 32)
    assert not (ddz.parent / "-").exists()


def test_folder_formats_refuse_stdout(run_cli, encoded):
    _, ddz = encoded
    code, _, err = run_cli("decode", str(ddz), "--format", "imagefolder", "-o", "-")
    assert code == 2 and "writes a folder" in err
    assert not (ddz.parent / "-").exists()


def test_exported_folders_get_usual_permissions(run_cli, encoded):
    _, ddz = encoded
    umask = os.umask(0o022)
    try:
        assert run_cli("decode", str(ddz), "--format", "imagefolder", "-q")[0] == 0
    finally:
        os.umask(umask)
    folder = ddz.parent / "a.imagefolder"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert stat.S_IMODE((folder / "classes.json").stat().st_mode) == 0o644


def test_a_set_file_given_to_decode_is_named(run_cli, encoded):
    set_file, _ = encoded
    for command in ("decode", "info", "test"):
        code, _, err = run_cli(command, str(set_file))
        assert code == 1 and "is a ddcodec set file, not a .ddz: use encode" in err


def test_info_quiet_and_test_json(run_cli, encoded):
    set_file, ddz = encoded
    code, out, _ = run_cli("info", "-q", str(ddz))
    assert code == 0 and len(out.strip().splitlines()) == 1 and "bits/class" in out
    code, out, _ = run_cli("test", "--json", str(ddz))
    assert code == 0 and json.loads(out) == {"file": str(ddz), "ok": True, "error": None}
    damaged = ddz.parent / "bad.ddz"
    damaged.write_bytes(ddz.read_bytes()[:-3])
    code, out, _ = run_cli("test", "--json", str(damaged))
    report = json.loads(out)
    assert code == 1 and report["ok"] is False and report["error"]


def test_threads_and_arch_choices(run_cli, encoded):
    set_file, ddz = encoded
    threads = torch.get_num_threads()
    try:
        assert run_cli("info", "-q", "--threads", "1", str(ddz))[0] == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    code, out, _ = run_cli("measure", "--help")
    assert "[convnet|convnet-d4|convnet-d5|resnet18|resnet18-bn|vgg11]" in out
    code, _, err = run_cli("measure", str(set_file), "--arch", "ConvNet-D3", "--epochs", "1",
                           "--runs", "1", "-q")
    assert code == 0, err  # another spelling of convnet
    code, _, err = run_cli("measure", str(set_file), "--arch", "alexnet")
    assert code == 2 and "'alexnet' is not one of 'convnet'" in err


def test_messages_name_no_exception_types(run_cli, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    for args in (("measure", str(junk)), ("encode", str(junk), "--from", "set")):
        code, _, err = run_cli(*args)
        assert code == 1
        assert not any(name in err for name in ("Error:", "Exception", "BadZipFile",
                                                "UnpicklingError", "RuntimeError"))


def test_other_torch_files_and_folder_streams_are_named(tmp_path, encoded):
    import ddcodec
    from ddcodec.errors import DDCodecError

    tensors = tmp_path / "t.pt"
    torch.save({"image_tensor": torch.zeros(1, 3, 4, 4)}, tensors)
    with pytest.raises(DDCodecError, match="is a torch file, not a .ddz: use encode"):
        ddcodec.decode(tensors)
    with pytest.raises(DDCodecError, match="writes a folder, not a stream"):
        ddcodec.decode(encoded[1], "-", format="mtt")


def test_a_resized_sets_ddz_remembers_the_resize_so_measure_loads_the_data_alike(tmp_path):
    from conftest import write_npz
    from ddcodec import api

    npz = write_npz(tmp_path / "eight.npz", classes=3, per_class=4, test_per_class=2, size=8)
    out = tmp_path / "r.ddz"
    api.distill(f"npz:{npz}", out, resize=(16, 16), param="latent", spc=1, fit_iterations=8,
                iterations=1, batch_real=4, arm_context=8, levels=3)
    assert api.decode(out).to_set().provenance["resize"] == [16, 16]
    report = api.measure(out, epochs=1, runs=1)
    assert report["image_shape"] == [3, 16, 16]
