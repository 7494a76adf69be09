"""`distill --labels`: a teacher's soft labels on the distilled set, their bits inside the same
budget as the images (rate control measures the labelled file), the split reported."""

import json

import pytest
import torch

import ddcodec
from conftest import data_and_teacher
from ddcodec.bitstream.codec import decode_bytes
from ddcodec.distillation import DistillConfig
from ddcodec.distillation.budget import decoder_parameters, samples_for_budget
from ddcodec.distillation.rate_control import RateControl
from ddcodec.data.datasets import load_dataset
from ddcodec.errors import DDCodecError
from ddcodec.distillation.labelling import LabelPlan, Labeller, label_bits
from ddcodec.labels.rungs.vq import as_vq
from ddcodec.sets.setfile import load_set

DECODER_PARAMETERS = 1173  # the shared v0 decoder of 16 x 16 images, checked below
SMALL = dict(param="latent", spc=4, fit_iterations=40, fit_candidates=2, iterations=20,
             batch_real=8, shared_decoder=True, dsa_strategy="flip")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Three classes of 16 x 16 images and a teacher for them."""
    root = tmp_path_factory.mktemp("distill-labels")
    npz, teacher = data_and_teacher(root, size=16)
    return f"npz:{npz}", teacher, root


def test_soft_label_bits_come_out_of_the_budget(small):
    data, teacher, root = small
    out = root / "vq.pt"
    distilled = ddcodec.distill(data, out, device="cpu", target_bpc=3000, labels="vq",
                                teacher=str(teacher), **SMALL)
    soft = distilled.soft_labels
    assert soft is not None and soft.codec == "vq"
    encoded, _ = ddcodec.encode(out)
    bpc = 8 * len(encoded) / 3
    rate = distilled.provenance["rate_control"]
    # rate control measured the labelled file: what it reports is the real .ddz with labels
    assert rate["achieved_bpc"] == pytest.approx(bpc)
    assert rate["within_tolerance"] and abs(bpc / 3000 - 1) <= 0.05
    # the codebook is the largest that fits 10 % of the budget
    cap = 0.1 * 3000 * 3
    assert label_bits(soft) <= cap
    probabilities, fitting = _teacher_probabilities(teacher, distilled), []
    for k in (1, 2, 4, 8):  # powers of two up to one entry per image (12)
        candidate = as_vq(probabilities, k, soft.payload.step_log2, temperature=1.0)
        if label_bits(candidate) <= cap:
            fitting.append(candidate)
    assert torch.equal(fitting[-1].payload.codebook, soft.payload.codebook)
    decoded = decode_bytes(encoded).to_set()
    assert torch.equal(decoded.soft_labels.probabilities, soft.probabilities)
    assert distilled.provenance["config"]["labels"]["labels"] == "vq"


def _teacher_probabilities(teacher, distilled):
    from ddcodec.labels.teacher import load_teacher

    return load_teacher(teacher).probabilities(distilled.images, 1.0, torch.device("cpu"))


def test_labels_a_budget_cannot_hold_are_refused_at_once(small, run_cli):
    data, teacher, root = small
    out = root / "never.pt"
    # 12 float16 rows of 3 classes: 576 bits per class before any image; without them this
    # budget passes the first check (the measured side information decides later)
    RateControl.start(2000, 3, 0.05, 0.1, 5e-6, 20, DECODER_PARAMETERS)
    code, _, err = run_cli("distill", "--data", data, "--param", "latent", "--spc", "12",
                           "--shared-decoder", "--target-bpc", "2000", "--labels", "soft",
                           "--teacher", str(teacher), "-o", str(out), "--device", "cpu")
    assert code == 1 and "--target-bpc 2,000" in err
    assert "soft labels 619 of them" in err  # 576 and the section's framing
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_float16_labels_leave_fewer_samples_for_the_budget(small):
    data, teacher, _ = small
    dataset = load_dataset(data)
    assert decoder_parameters(dataset, DistillConfig.of(**SMALL)) == DECODER_PARAMETERS
    plain = samples_for_budget(dataset, DistillConfig.of(param="latent", target_bpc=20_000))
    soft = samples_for_budget(dataset, DistillConfig.of(param="latent", target_bpc=20_000,
                                                        labels="float16", teacher=str(teacher)))
    assert soft < plain


def test_a_random_subset_with_top_k_labels_reports_its_split(small, run_cli):
    data, teacher, root = small
    out = root / "rr.pt"
    code, stdout, err = run_cli("distill", "--data", data, "--loss", "none", "--ipc", "5",
                                "--labels", "topk", "--label-k", "2", "--teacher", str(teacher),
                                "-o", str(out), "--json", "--device", "cpu")
    assert code == 0, err
    split = json.loads(stdout)["label_split"]
    labelled = load_set(out)
    assert labelled.soft_labels.codec == "topk" and labelled.soft_labels.payload.classes.shape[1] == 2
    assert split["rung"] == "top-2" and split["label_bits"] == label_bits(labelled.soft_labels)
    encoded, _ = ddcodec.encode(out)
    assert split["file_bpc"] == pytest.approx(8 * len(encoded) / 3)
    assert split["label_bpc"] + split["rest_bpc"] == pytest.approx(split["file_bpc"])


@pytest.mark.parametrize("args, message", [
    (["--labels", "vq"], "needs --teacher"),
    (["--labels", "vq", "--teacher", "missing.pt"], "not found"),
    (["--labels", "vq", "--teacher", "TEACHER", "--data", "cifar10-subset"], "teacher was made"),
    (["--labels", "fuzzy", "--teacher", "TEACHER"], "fuzzy"),
])
def test_bad_label_options_are_refused_with_one_line(small, run_cli, args, message):
    data, teacher, root = small
    args = [str(teacher) if a == "TEACHER" else a for a in args]
    if "--data" not in args:
        args += ["--data", data]
    out = root / "bad.pt"
    code, _, err = run_cli("distill", "--loss", "none", "--ipc", "2", *args, "-o", str(out),
                           "--device", "cpu")
    assert code != 0 and message in err and not out.exists(), err


def test_the_vq_codebook_grows_to_the_share_it_may_take():
    torch.manual_seed(0)
    probabilities = torch.softmax(3 * torch.randn(64, 10), 1)
    fake = type("T", (), {"arch": "convnet", "info": {}})()
    sizes = []
    for share in (0.02, 0.1, 0.5):
        plan = LabelPlan("vq", budget_bits=20_000, share=share)
        soft = Labeller(fake, plan, torch.device("cpu")).rung(probabilities)
        assert label_bits(soft) <= share * 20_000
        sizes.append(soft.payload.codebook.shape[0])
    assert sizes[0] < sizes[1] < sizes[2]
    with pytest.raises(DDCodecError, match="label codec"):
        LabelPlan("float32")
